#!/usr/bin/env python
"""Bias, RMSE and interval coverage of the two KL estimators against analytic Gaussian cases.

Held-out sets are drawn from ``avplug.evaluation.synthetic.CASES`` (title-clustered Gaussian
scores whose four discrepancy measures have closed forms) at the sizes of a held-out set: 5-20
titles of 40-50 snippets, 16 pairs per snippet.  For each estimator (``"histogram"``, the
default, and ``"knn"``) and each measure it prints, side by side: the analytic value, the bias,
standard deviation and RMSE of the estimate over the seeded sets, and how often the 95% interval
of ``discrepancy_intervals`` (estimate +- t_{T-1} * title-bootstrap standard error) covers the
analytic value, next to the coverage of the plain percentile interval of the same replicates.
Two further tables: the histogram's bin-count rule (point estimates only), and the interval
half-width of the all-zero case against the number of titles and of snippets, from which the
warning thresholds of ``avplug.evaluation.discrepancy`` are read.

    python benchmarks/kl_estimators.py --json benchmarks/results/kl_estimators.json   # the recorded run
    python benchmarks/kl_estimators.py --quick        # a smoke run, a few seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from avplug.evaluation.discrepancy import MEASURE_KEYS, measure_replicates
from avplug.evaluation.intervals import kl_interval, percentile_interval, t_interval
from avplug.evaluation.kl import histogram_kl
from avplug.evaluation.synthetic import CASES

SIZES = [(5, 40), (10, 50), (20, 50)]  # (titles, snippets per title)
BIN_RULES = {"2 m^(1/3)": lambda m: 2 * m ** (1 / 3), "3 m^(1/3)": lambda m: 3 * m ** (1 / 3), "4 m^(1/3)": lambda m: 4 * m ** (1 / 3),
             "8 m^(1/3)": lambda m: 8 * m ** (1 / 3), "sqrt(m)": lambda m: m**0.5}


def study(case, titles: int, per_title: int, estimator: str, sets: int, replicates: int) -> dict:
    """Bias, sd, RMSE, coverage (t and percentile) and mean half-width of each measure."""
    truth = case.truth()
    estimates = {name: [] for name in MEASURE_KEYS}
    covered = {name: [0, 0, 0] for name in MEASURE_KEYS}
    half = {name: [] for name in MEASURE_KEYS}
    start = time.process_time()
    for seed in range(sets):
        scores = case.draw(seed, titles=titles, snippets_per_title=per_title)
        reps = measure_replicates(scores, titles, estimator=estimator, replicates=replicates, seed=10_000 + seed)
        for name in MEASURE_KEYS:
            value = reps.point[name]
            se, _, lo, hi = kl_interval(value, reps.bootstrap[name], reps.jackknife[name], titles)
            alternatives = (t_interval(value, se, titles), percentile_interval(reps.bootstrap[name]))
            estimates[name].append(value)
            for i, (low, high) in enumerate(((lo, hi), *alternatives)):
                covered[name][i] += low <= truth[name] <= high
            half[name].append((hi - lo) / 2)
    rows = {}
    for name in MEASURE_KEYS:
        e = np.asarray(estimates[name])
        rows[name] = {
            "truth": round(truth[name], 4), "bias": round(float(e.mean() - truth[name]), 4), "sd": round(float(e.std()), 4),
            "rmse": round(float(np.sqrt(np.mean((e - truth[name]) ** 2))), 4), "coverage": covered[name][0] / sets,
            "coverage_t_only": covered[name][1] / sets, "coverage_percentile": covered[name][2] / sets, "half_width": round(float(np.mean(half[name])), 4),
        }
    return {"case": case.name, "titles": titles, "snippets_per_title": per_title, "estimator": estimator, "sets": sets,
            "replicates": replicates, "cpu_s": round(time.process_time() - start, 1), "measures": rows}


def bin_rules(case, titles: int, per_title: int, sets: int) -> dict:
    """Bias and RMSE of the histogram's point estimates under each bin-count rule."""
    truth = case.truth()
    errors = {rule: {name: [] for name in MEASURE_KEYS} for rule in BIN_RULES}
    pairs = {"KL(S-||S+)": ("S-", "S+"), "KL(S!=||S+)": ("S!=", "S+"), "KL(S-||S!=)": ("S-", "S!=")}
    for seed in range(sets):
        scores = case.draw(seed, titles=titles, snippets_per_title=per_title)
        for rule, bins in BIN_RULES.items():
            kl = {n: histogram_kl(scores[p].values, scores[q].values, bins=max(2, round(bins(scores[q].values.size))))
                  for n, (p, q) in pairs.items()}
            kl["gap"] = kl["KL(S!=||S+)"] - kl["KL(S-||S+)"]
            for name in MEASURE_KEYS:
                errors[rule][name].append(kl[name] - truth[name])
    return {"case": case.name, "titles": titles, "snippets_per_title": per_title, "sets": sets,
            "rules": {rule: {name: {"bias": round(float(np.mean(e)), 4), "rmse": round(float(np.sqrt(np.mean(np.square(e)))), 4)}
                             for name, e in by_name.items()} for rule, by_name in errors.items()}}


def print_tables(result: dict) -> None:
    print(f"## Estimators side by side ({result['settings']['sets']} sets per row, knn on the first "
          f"{result['settings']['knn_sets']}, {result['settings']['replicates']} bootstrap replicates)\n")
    print("Coverage of the 95% interval: `cover` = the library's (kl_interval: estimate and jackknife-corrected "
          "estimate, each +- t_(T-1) se), `t` = estimate +- t_(T-1) se alone, `pct` = percentile of the replicates.\n")
    print("| case | titles x snippets | measure | truth | histogram bias | RMSE | cover | t | pct |"
          " knn bias | RMSE | cover | t | pct |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_key = {(r["case"], r["titles"], r["snippets_per_title"], r["estimator"]): r for r in result["comparison"]}
    for case, titles, per in sorted({k[:3] for k in by_key}):
        for name in MEASURE_KEYS:
            cells = []
            for estimator in ("histogram", "knn"):
                m = by_key[(case, titles, per, estimator)]["measures"][name]
                cells += [f"{m['bias']:+.3f}", f"{m['rmse']:.3f}", f"{m['coverage']:.2f}", f"{m['coverage_t_only']:.2f}",
                          f"{m['coverage_percentile']:.2f}"]
            truth = by_key[(case, titles, per, "histogram")]["measures"][name]["truth"]
            print(f"| {case} | {titles} x {per} | {name} | {truth:.3f} | " + " | ".join(cells) + " |")
    print("\n## Histogram bin rule (point estimates; bias / RMSE)\n")
    rules = list(BIN_RULES)
    print("| case | titles x snippets | measure | " + " | ".join(rules) + " |")
    print("| --- | --- | --- | " + " | ".join("---:" for _ in rules) + " |")
    for row in result["bin_rules"]:
        for name in MEASURE_KEYS:
            cells = [f"{row['rules'][r][name]['bias']:+.3f} / {row['rules'][r][name]['rmse']:.3f}" for r in rules]
            print(f"| {row['case']} | {row['titles']} x {row['snippets_per_title']} | {name} | " + " | ".join(cells) + " |")
    totals = {r: sum(row["rules"][r][n]["rmse"] for row in result["bin_rules"] for n in MEASURE_KEYS) for r in rules}
    print("| all | | summed RMSE | " + " | ".join(f"{totals[r]:.3f}" for r in rules) + " |")
    print("\n## All-zero case, histogram: 95% half-width (coverage) against the sample size\n")
    print("| titles x snippets | " + " | ".join(MEASURE_KEYS) + " |")
    print("| --- | " + " | ".join("---:" for _ in MEASURE_KEYS) + " |")
    for row in result["sample_size"]:
        cells = [f"{row['measures'][n]['half_width']:.3f} ({row['measures'][n]['coverage']:.2f})" for n in MEASURE_KEYS]
        print(f"| {row['titles']} x {row['snippets_per_title']} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sets", type=int, default=100, help="seeded held-out sets per row (histogram)")
    parser.add_argument("--knn-sets", type=int, default=40, help="the first this many sets for the k-NN (its bootstrap is slow)")
    parser.add_argument("--replicates", type=int, default=200, help="title-bootstrap replicates per set")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 sets of 5 titles x 20 snippets, 10 replicates")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args()
    sets, knn_sets, replicates = (2, 1, 10) if args.quick else (args.sets, min(args.knn_sets, args.sets), args.replicates)
    sizes = [(5, 20)] if args.quick else SIZES

    comparison = []
    for case in CASES.values():
        for titles, per in sizes:
            comparison.append(study(case, titles, per, "histogram", sets, replicates))
            comparison.append(study(case, titles, per, "knn", knn_sets, replicates))
    bins = [bin_rules(case, titles, per, sets) for case in CASES.values() for titles, per in sizes]
    scan = [(3, 25), (5, 25), (10, 25), (20, 25), (40, 25), (10, 5), (10, 10), (10, 50), (10, 100)]
    sample_size = [study(CASES["equal"], t, m, "histogram", sets, replicates) for t, m in (sizes if args.quick else scan)]
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "logical_cores": os.cpu_count()},
        "settings": {"sets": sets, "knn_sets": knn_sets, "replicates": replicates, "pairs_per_snippet": 16,
                     "cases": {c.name: {"means": c.means, "sds": c.sds, "title_sd": c.title_sd, "truth": c.truth()} for c in CASES.values()}},
        "comparison": comparison,
        "bin_rules": bins,
        "sample_size": sample_size,
    }
    print_tables(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
