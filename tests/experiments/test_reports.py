"""Reports from hand-written run folders: Table 1 / Table 2 rows and values, CSV columns, valid PNGs, missing data."""
import csv
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from avplug.experiments.reports import build_report
from avplug.experiments.seeds import DATASETS

MEASURES = ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap")


def write_config(run: Path, k: int, w: int = 0, sampler: str = "HierarchicalSampler", sigma: float = 0.0,
                 normalize: bool = False, tau: float = 1.0, catalog: str = "/data/movies/catalog", seed: int = 0,
                 batch: int = 512) -> None:
    """The keys of a resolved config.yaml that the report reads (a real one holds every key)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(
        f"DATA:\n  CATALOG_DIR: {catalog}\nINPUT:\n  VIDEO:\n    COLOR_JITTER: {sigma}\n"
        f"LOSS:\n  NAME: CrossModalNCE\n  NORMALIZE: {normalize}\n  TEMPERATURE: {tau}\n"
        f"OUTPUT_DIR: {run}\nSEED: {seed}\n"
        f"SAMPLER:\n  K: {k}\n  NAME: {sampler}\n  WINDOW: {w}\nSOLVER:\n  BATCH_SIZE: {batch}\n"
    )


def write_metrics(run: Path, losses, measures=None, step=None, garbage: bool = False) -> None:
    lines = [json.dumps({"step": i + 1, "epoch": (i + 1) / 10, "loss": v, "lr": 0.001, "clips_per_s": 10.0, "world_size": 1})
             for i, v in enumerate(losses)]
    if measures is not None:
        lines.append(json.dumps({"step": step or len(losses), **dict(zip(MEASURES, measures))}))
    if garbage:
        lines.append('{"step": 99, "loss"')  # a line cut by a crash
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def write_result(run: Path, dataset: str, top1, protocol: str = "finetune", weights: str = "ckpt.pth",
                 ci=(None, None), chance: float = 0.1, clips: int = 200) -> None:
    """An aggregate results.json as avplug.evaluation.downstream_protocols.run_evaluation writes it."""
    top1 = list(top1) if isinstance(top1, (list, tuple)) else [top1]
    splits = list(range(1, len(top1) + 1))
    mean = sum(top1) / len(top1)
    std = (sum((t - mean) ** 2 for t in top1) / (len(top1) - 1)) ** 0.5 if len(top1) > 1 else 0.0
    out = run / "eval" / f"eval_{dataset.lower()}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({
        "dataset": dataset, "protocol": protocol, "weights": weights, "splits": splits,
        "per_split": {str(s): {"top1": t, "top5": 1.0} for s, t in zip(splits, top1)},
        "mean": {"top1": mean, "top5": 1.0}, "std": {"top1": std, "top5": 0.0},
        "mean_ci95": {"top1": list(ci), "top5": [None, None]}, "chance": chance, "num_test_clips": clips,
    }))


def write_state(run: Path, status: str) -> None:
    (run / "run.json").write_text(json.dumps({"version": 1, "name": run.name, "status": status}))


# The paper's Table 1 (movies) numbers, as fractions, for the runs below.
PAPER = {
    "k1_iid_w0": (0.6032, 0.8650, 0.8569), "k4_w0": (0.6137, 0.8991, 0.8538), "k16_w0": (0.6292, 0.8833, 0.8630),
    "k16_w64": (0.6026, 0.8700, 0.8361), "k16_w256": (0.6202, 0.8775, 0.8485), "k4_w4": (0.6019, 0.8800, 0.8466),
}


@pytest.fixture
def sweep_dir(tmp_path) -> Path:
    """A sweep folder: the baseline, 6 Table 1 runs, 3 Table 2 runs, a run without HMDB51, an invalid and a planned run."""
    root = tmp_path / "sweep"
    root.mkdir()
    entries = []

    def add(name, overrides=None, baseline=False, **record):
        entries.append({"name": name, "overrides": overrides or {}, "baseline": baseline, "cfg": "movie_tv.yaml",
                        "opts": [], "plugins": [], "evals": [], **record})
        return root / name

    run = add("random_init", baseline=True)
    write_config(run, 16)
    write_state(run, "finished")
    (run / "discrepancy.json").write_text(json.dumps({**dict(zip(MEASURES, (0.05, 0.18, 0.04, 0.13))), "weights": "none"}))
    for ds, v in zip(DATASETS, (0.20, 0.30, 0.40)):
        write_result(run, ds, v, weights="none")
    (run / "results.json").write_text(json.dumps({"name": "random_init", "baseline": True, "checkpoint": "none"}))

    shapes = {"k1_iid_w0": (1, 0, "IIDSampler"), "k4_w0": (4, 0, None), "k16_w0": (16, 0, None),
              "k16_w64": (16, 64, None), "k16_w256": (16, 256, None), "k4_w4": (4, 4, None)}
    # discrepancy shrinks with k; the gap too
    measures = {"k1_iid_w0": (0.5, 1.5, 0.6, 1.0), "k4_w0": (0.4, 1.1, 0.3, 0.7), "k16_w0": (0.3, 0.8, 0.2, 0.5),
                "k16_w64": (0.2, 0.5, 0.1, 0.3), "k16_w256": (0.25, 0.6, 0.15, 0.35), "k4_w4": (0.1, 0.3, 0.05, 0.2)}
    for i, (name, (k, w, sampler)) in enumerate(shapes.items()):
        run = add(name, {"SAMPLER.K": k, "SAMPLER.WINDOW": w})
        write_config(run, k, w, sampler or "HierarchicalSampler")
        write_state(run, "finished")
        write_metrics(run, [5.0 - 0.1 * i - 0.2 * s for s in range(10)], measures[name], garbage=name == "k4_w0")
        for ds, v in zip(DATASETS, PAPER[name]):
            write_result(run, ds, v)
    # the k16_w0 run's final model was measured again by the sweep: discrepancy.json wins over the record
    (root / "k16_w0" / "discrepancy.json").write_text(json.dumps(dict(zip(MEASURES, (0.31, 0.81, 0.21, 0.51)))))

    for name, k, sigma, normalize, tau, accs in (
        ("k1_iid_w0_sigma1", 1, 1.0, False, 1.0, (0.6045, 0.8766, 0.8482)),
        ("k16_w0_sigma0.5", 16, 0.5, False, 1.0, (0.6013, 0.8775, 0.8598)),
        ("k16_w0_l2on_tau0.07", 16, 0.0, True, 0.07, (0.6078, 0.8708, 0.8686)),
    ):
        run = add(name, {"SAMPLER.K": k})
        write_config(run, k, 0, "IIDSampler" if k == 1 else "HierarchicalSampler", sigma=sigma, normalize=normalize, tau=tau)
        write_state(run, "finished")
        write_metrics(run, [4.0, 3.5], (0.3, 0.9, 0.2, 0.6))
        for ds, v in zip(DATASETS, accs):
            write_result(run, ds, v)

    run = add("k8_w0", {"SAMPLER.K": 8, "SAMPLER.WINDOW": 0})  # evaluated on two ESC folds, no HMDB51 yet
    write_config(run, 8, 0)
    write_state(run, "running")
    write_metrics(run, [5.0, 4.8, 4.7])
    write_result(run, "ESC50", [0.88, 0.90])
    write_result(run, "UCF101", 0.86)
    add("k64_w0", {"SAMPLER.K": 64}, status="invalid", error="SOLVER.BATCH_SIZE = 32: the global batch must be a multiple of SAMPLER.K = 64")
    add("k32_w0", {"SAMPLER.K": 32, "SAMPLER.WINDOW": 0})  # planned, no folder
    (root / "sweep.json").write_text(json.dumps({"version": 1, "runs": entries, "notes": []}))
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _md_rows(markdown: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table under the bold ``title``."""
    block = markdown.split(f"**{title}")[1]
    lines = [line for line in block.split("\n\n")[1].splitlines() if line.startswith("|")]
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip("|"))] for line in lines[2:]]


def test_table1_rows_values_and_order(sweep_dir, tmp_path):
    report = build_report([sweep_dir], tmp_path / "report")
    rows = _md_rows(report["markdown"], "Table 1")
    assert [r[0] for r in rows] == ["random_init", "k1_iid_w0", "k4_w0", "k8_w0", "k16_w0", "k32_w0", "k16_w64", "k16_w256", "k4_w4"]
    by_run = {r[0]: r[1:] for r in rows}
    assert by_run["random_init"] == ["-", "-", "20.00", "30.00", "40.00"]
    assert by_run["k1_iid_w0"] == ["1", "-", "60.32", "86.50", "85.69"]  # Table 1's first row
    assert by_run["k16_w0"] == ["16", "M_n", "62.92", "88.33", "86.30"]
    assert by_run["k16_w64"] == ["16", "64", "60.26", "87.00", "83.61"]
    assert by_run["k4_w4"] == ["4", "4", "60.19", "88.00", "84.66"]
    # missing entries are "-" (no HMDB51 for k8; nothing for the planned k32), std shown over 2 folds
    assert by_run["k8_w0"] == ["8", "M_n", "-", "89.00 ± 1.41", "86.00"]
    assert by_run["k32_w0"] == ["32", "M_n", "-", "-", "-"]
    notes = report["markdown"].split("**Table 1")[1].split("**Table 2")[0]
    assert "HMDB51: no result for k8_w0, k32_w0" in notes
    assert "ESC50: finetune, split(s) [1]; finetune, split(s) [1, 2]" in notes
    assert "random_init: randomly initialized encoders" in notes and "IIDSampler" in notes

    table = _csv(tmp_path / "report" / "table1.csv")
    assert list(table[0]) == ["run", "block", "k", "w", "HMDB51", "HMDB51_std", "ESC50", "ESC50_std", "UCF101", "UCF101_std"]
    assert [r["block"] for r in table] == ["baseline", "w=M_n", "w=M_n", "w=M_n", "w=M_n", "w=M_n", "window", "window", "w=k"]
    k16 = next(r for r in table if r["run"] == "k16_w0")
    assert float(k16["HMDB51"]) == pytest.approx(62.92) and float(k16["UCF101_std"]) == 0.0
    k8 = next(r for r in table if r["run"] == "k8_w0")
    assert k8["HMDB51"] == "" and float(k8["ESC50"]) == pytest.approx(89.0) and float(k8["ESC50_std"]) == pytest.approx(1.4142, abs=1e-3)
    assert (tmp_path / "report" / "table1.md").read_text().startswith("**Table 1")


def test_table2_sigma_and_tau_rows(sweep_dir, tmp_path):
    report = build_report([sweep_dir], tmp_path / "report")
    rows = _md_rows(report["markdown"], "Table 2")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("k1_iid_w0", "1", "0", "unnormalized"), ("k16_w0", "16", "0", "unnormalized"),
        ("k1_iid_w0_sigma1", "1", "1", "unnormalized"), ("k16_w0_sigma0.5", "16", "0.5", "unnormalized"),
        ("k16_w0_l2on_tau0.07", "16", "0", "0.07"),
    ]
    assert rows[-1][4:] == ["60.78", "87.08", "86.86"]  # Table 2's tau = 0.07 row
    table = _csv(tmp_path / "report" / "table2.csv")
    assert list(table[0])[:5] == ["run", "block", "k", "σ", "τ"]
    assert [r["block"] for r in table] == ["sigma"] * 4 + ["tau"]
    # the sigma/tau runs are not in Table 1
    assert "k16_w0_sigma0.5" not in [r["run"] for r in _csv(tmp_path / "report" / "table1.csv")]


def test_figure1_curves_use_the_final_measures(sweep_dir, tmp_path):
    build_report([sweep_dir], tmp_path / "report")
    fig_k = _csv(tmp_path / "report" / "fig1_k.csv")
    assert list(fig_k[0]) == ["series", "k", "run", *MEASURES]
    m_n = [(r["k"], r["run"], r["KL(S-||S!=)"], r["gap"]) for r in fig_k if r["series"] == "w = M_n"]
    assert m_n == [("1", "k1_iid_w0", "0.6", "1.0"), ("4", "k4_w0", "0.3", "0.7"), ("8", "k8_w0", "", ""),
                   ("16", "k16_w0", "0.21", "0.51"), ("32", "k32_w0", "", "")]  # k16: discrepancy.json, not metrics
    assert [(r["k"], r["run"]) for r in fig_k if r["series"] == "w = k"] == [("4", "k4_w4")]
    fig_w = _csv(tmp_path / "report" / "fig1_w.csv")
    assert [(r["series"], r["w"], r["run"], r["gap"]) for r in fig_w] == [
        ("k = 16", "64", "k16_w64", "0.3"), ("k = 16", "256", "k16_w256", "0.35"), ("k = 16", "M_n", "k16_w0", "0.51")]
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "no discrepancy measures for k8_w0, k32_w0" in markdown
    assert "![Figure 1: discrepancy against k](fig1_k.png)" in markdown


def test_figure3_loss_curves_and_valid_pngs(sweep_dir, tmp_path):
    report = build_report([sweep_dir], tmp_path / "report")
    out = tmp_path / "report"
    for name in ("fig1_k.png", "fig1_w.png", "fig3_k.png", "fig3_w.png", "fig3_adjacent.png"):
        assert report["files"][name] == str(out / name)
        with Image.open(out / name) as image:
            image.verify()
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
    losses = _csv(out / "fig3_loss.csv")
    assert list(losses[0]) == ["figure", "curve", "run", "step", "loss"]
    k4 = [(int(r["step"]), float(r["loss"])) for r in losses if r["run"] == "k4_w0" and r["figure"] == "fig3_k"]
    assert k4[0] == (1, pytest.approx(4.9)) and len(k4) == 10  # the cut line of metrics.jsonl is skipped
    assert {r["curve"] for r in losses if r["figure"] == "fig3_w"} == {"k = 16, w = 64", "k = 16, w = 256", "k = 16, w = M_n"}
    assert {r["curve"] for r in losses if r["figure"] == "fig3_k"} >= {"k = 1 (iid)", "k = 4", "k = 8", "k = 16"}
    rows = _md_rows(report["markdown"], "Figure 3")
    k8 = next(r for r in rows if r[2] == "k8_w0")
    assert k8[3:] == ["3", "5.0000", "4.7000", "4.7000"]
    assert next(r for r in rows if r[2] == "k32_w0")[3:] == ["-", "-", "-", "-"]
    assert "1 unreadable line(s) skipped" in report["markdown"]


def test_all_runs_table_statuses_and_notes(sweep_dir, tmp_path):
    report = build_report([sweep_dir], tmp_path / "report")
    runs = {r["run"]: r for r in _csv(tmp_path / "report" / "runs.csv")}
    assert len(runs) == 13 and report["runs"] == 13
    assert runs["k64_w0"]["status"] == "invalid" and runs["k32_w0"]["status"] == "planned" and runs["k8_w0"]["status"] == "running"
    assert runs["random_init"]["baseline"] == "True" and float(runs["random_init"]["KL(S-||S!=)"]) == 0.04
    assert float(runs["k4_w0"]["final_loss"]) == pytest.approx(3.1) and runs["k4_w0"]["steps"] == "10"
    assert "k64_w0: invalid grid point, not run: SOLVER.BATCH_SIZE = 32" in report["markdown"]


def test_run_folders_without_a_sweep_and_nothing_at_all(tmp_path):
    # a plain pretraining OUTPUT_DIR with evaluation results under eval/, and a folder of such runs
    runs = tmp_path / "runs"
    for k in (1, 4):
        run = runs / f"mine_k{k}"
        write_config(run, k, 0, "IIDSampler" if k == 1 else "HierarchicalSampler", catalog=f"/data/cat{k}")
        write_metrics(run, [3.0, 2.0], (0.1, 0.2, 0.3, 0.4) if k == 4 else None)
        write_result(run, "UCF101", 0.5 + k / 100, protocol="linear")
    report = build_report([runs / "mine_k4", runs], tmp_path / "r1")  # the k4 folder named twice: once in the report
    assert report["runs"] == 2
    rows = _md_rows(report["markdown"], "Table 1")
    assert [r[0] for r in rows] == ["mine_k1", "mine_k4"]
    assert rows[1][-4:] == ["cat4", "-", "-", "54.00"]  # two catalogs: a pretraining data column
    assert "UCF101: linear, split(s) [1]" in report["markdown"]
    assert "fig1_w.png" not in report["files"] and "no runs for this curve" in report["markdown"]
    assert "Table 2**: no run with color jitter" in report["markdown"]

    empty = build_report([tmp_path / "nothing", tmp_path / "r1"], tmp_path / "r2")
    assert empty["runs"] == 0
    assert any("nothing: not found" in n for n in empty["notes"])
    assert _csv(tmp_path / "r2" / "table1.csv") == [] and (tmp_path / "r2" / "report.md").is_file()


def test_unreadable_files_are_notes(tmp_path):
    run = tmp_path / "broken"
    write_config(run, 4)
    (run / "discrepancy.json").write_text("{not json")
    (run / "eval" / "x").mkdir(parents=True)
    (run / "eval" / "x" / "results.json").write_text("[]")
    (run / "metrics.jsonl").write_text("garbage\n")
    report = build_report([run], tmp_path / "r")
    assert report["runs"] == 1
    assert any("discrepancy.json: unreadable" in n for n in report["notes"])
    assert _md_rows(report["markdown"], "Table 1") == [["broken", "4", "M_n", "-", "-", "-"]]


def test_report_tool(sweep_dir, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("report_tool", Path(__file__).parents[2] / "tools" / "report.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(sweep_dir), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "| k16_w0 | 16 | M_n | 62.92 | 88.33 | 86.30 |" in out and "report of 13 run(s)" in out
    assert tool.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "rep2"), "--quiet"]) == 2


# ---------------------------------------------------------------------------------------------
# Seed-aggregated report and the claims' verdicts
# ---------------------------------------------------------------------------------------------
T3, T2 = 4.302652729911275, 12.706204736174707  # t_{0.975} with 2 and 1 degrees of freedom


def _half(values, t):
    n = len(values)
    mean = sum(values) / n
    return t * (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 / n**0.5


def write_heldout(run: Path, kl: float, gap: float, r1: float, ci: float | None = None, counts=(10, 460)) -> None:
    """A discrepancy.json with the held-out keys of evaluate_discrepancy (intervals +- ci around each value)."""
    values = {"KL(S-||S+)": 0.1, "KL(S!=||S+)": 0.1 + gap, "KL(S-||S!=)": kl, "gap": gap, "v2a_R@1": r1,
              "v2a_within_title": 0.5 + r1}
    chance = {"v2a_R@1": 1 / 460, "v2a_within_title": 0.5}
    out = {"num_titles": counts[0], "num_snippets": counts[1], "weights": "ckpt.pth"}
    for key, value in values.items():
        out.update({key: value, f"{key}_ci_low": None if ci is None else value - ci,
                    f"{key}_ci_high": None if ci is None else value + ci, f"{key}_chance": chance.get(key, 0.0)})
    (run / "discrepancy.json").write_text(json.dumps(out))


# point -> (k, w, sampler, seeds: [(KL(S-||S!=), gap, v2a_R@1, final-epoch loss level, (HMDB51, ESC50, UCF101))])
SEED_POINTS = {
    "random_init": (16, 0, "HierarchicalSampler", [(0.04, 0.10, 0.002, None, (0.10, 0.40, 0.20)),
                                                   (0.05, 0.12, 0.003, None, (0.12, 0.42, 0.21)),
                                                   (0.06, 0.14, 0.001, None, (0.14, 0.44, 0.22))]),
    "k1_iid_w0": (1, 0, "IIDSampler", [(0.60, 1.0, 0.10, 1.0, (0.20, 0.70, 0.52)), (0.62, 1.1, 0.12, 1.1, (0.21, 0.72, 0.53)),
                                       (0.64, 0.9, 0.14, 0.9, (0.22, 0.74, 0.54))]),
    "k4_w0": (4, 0, "HierarchicalSampler", [(0.30, 0.7, 0.10, 1.8, (0.25, 0.71, 0.45)), (0.31, 0.8, 0.12, 1.9, (0.26, 0.73, 0.46)),
                                            (0.29, 0.6, 0.11, 2.0, (0.27, 0.75, 0.47))]),
    "k16_w0": (16, 0, "HierarchicalSampler", [(0.20, 0.8, 0.12, 2.4, (0.30, 0.73, 0.40)),
                                              (0.22, 1.2, 0.13, 2.5, (0.32, 0.70, 0.41)),
                                              (0.18, 1.0, 0.14, 2.6, (0.34, 0.76, 0.42))]),
    "k4_w4": (4, 4, "HierarchicalSampler", [(0.05, 0.3, 0.05, 2.2, (0.18, 0.70, 0.40))]),  # one seed: its own intervals
    "k16_w16": (16, 16, "HierarchicalSampler", [(0.50, 0.4, 0.05, 3.0, (0.25, 0.60, 0.35)),
                                                (0.54, 0.5, 0.06, 3.1, (0.27, 0.62, 0.37))]),  # two seeds: t = 12.71
}


@pytest.fixture
def seed_sweep(tmp_path) -> Path:
    """A repro-cpu sweep: 3 seeds per point (k4_w4 one, k16_w16 two), 3 baselines, a run still going."""
    root = tmp_path / "repro"
    entries = []
    for point, (k, w, sampler, seeds) in SEED_POINTS.items():
        for seed, (kl, gap, r1, loss, probes) in enumerate(seeds):
            name = f"{point}_seed{seed}"
            baseline = point == "random_init"
            overrides = {"SEED": seed} if baseline else {"SAMPLER.K": k, "SAMPLER.NAME": sampler, "SAMPLER.WINDOW": w, "SEED": seed}
            entries.append({"name": name, "overrides": overrides, "baseline": baseline, "cfg": "demo.yaml", "opts": [],
                            "plugins": [], "evals": []})
            run = root / name
            write_config(run, k, w, sampler, seed=seed, batch=32)
            write_state(run, "finished")
            own = 0.02 if point == "k4_w4" else None  # a single seed's measures come with their bootstrap interval
            write_heldout(run, kl, gap, r1, ci=own, counts=(10.0, 460.0) if seed == 2 else (10, 460))  # as metrics.jsonl
            if loss is not None:  # 2 epochs of 10 steps; the last epoch's losses average to `loss`
                write_metrics(run, [5.0 - 0.1 * s for s in range(10)] + [loss + d for d in (-0.09, 0.09) * 5])
            for ds, top1 in zip(DATASETS, probes):
                write_result(run, ds, top1, weights="none" if baseline else "ckpt.pth", ci=(top1 - 0.03, top1 + 0.03),
                             chance={"HMDB51": 1 / 51, "ESC50": 1 / 50, "UCF101": 1 / 101}[ds], clips=300)
    run = root / "k16_w0_seed3"  # not finished: left out of the aggregation
    write_config(run, 16, 0, seed=3, batch=32)
    write_state(run, "running")
    write_metrics(run, [9.0, 9.0])
    entries.append({"name": run.name, "overrides": {"SAMPLER.K": 16, "SEED": 3}, "baseline": False, "cfg": "demo.yaml",
                    "opts": [], "plugins": [], "evals": []})
    (root / "sweep.json").write_text(json.dumps({"version": 1, "runs": entries, "notes": []}))
    return root


def _seed_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["point"], r["figure"]): r for r in _csv(path)}


def test_seed_points_mean_and_t_interval_across_seeds(seed_sweep, tmp_path):
    report = build_report([seed_sweep], tmp_path / "rep")
    rows = _seed_rows(tmp_path / "rep" / "seeds_measures.csv")
    assert {p for p, _ in rows} == {"random_init", "k1_iid_w0", "k4_w0", "k16_w0", "k4_w4", "k16_w16"}
    kl = rows[("k1_iid_w0", "KL(S-||S!=)")]
    assert (kl["block"], kl["k"], kl["w"], kl["seeds"], kl["interval"]) == ("w=M_n", "1", "-", "3", "t over seeds")
    half = _half([0.60, 0.62, 0.64], T3)  # 4.303 * 0.02 / sqrt(3) = 0.0497
    assert float(kl["mean"]) == pytest.approx(0.62) and half == pytest.approx(0.04969, abs=1e-5)
    assert float(kl["ci_low"]) == pytest.approx(0.62 - half) and float(kl["ci_high"]) == pytest.approx(0.62 + half)
    assert kl["values"] == "0.6;0.62;0.64" and kl["runs"] == "k1_iid_w0_seed0;k1_iid_w0_seed1;k1_iid_w0_seed2"
    assert float(kl["chance"]) == 0.0 and kl["sample"] == "460 snippets of 10 held-out titles"
    # the final loss: the mean of the last epoch's logged losses (steps 11-20), then over seeds
    loss = rows[("k16_w0", "final_loss")]
    assert float(loss["mean"]) == pytest.approx(2.5) and float(loss["ci_high"]) == pytest.approx(2.5 + _half([2.4, 2.5, 2.6], T3))
    assert float(loss["chance"]) == pytest.approx(4.143135)  # log(2 * 32 - 1)
    assert loss["sample"] == "mean of the 10 logged step(s) of the last epoch"
    # two seeds: t with one degree of freedom; the unfinished fourth k16 seed is not among them
    two = rows[("k16_w16", "KL(S-||S!=)")]
    assert two["seeds"] == "2" and float(two["ci_low"]) == pytest.approx(0.52 - _half([0.50, 0.54], T2))
    assert rows[("k16_w0", "KL(S-||S!=)")]["seeds"] == "3"
    # one seed: the run's own interval; its loss has none
    own = rows[("k4_w4", "KL(S-||S!=)")]
    assert (own["interval"], float(own["ci_low"]), float(own["ci_high"])) == ("run's own", pytest.approx(0.03), pytest.approx(0.07))
    assert rows[("k4_w4", "final_loss")]["interval"] == "none" and rows[("k4_w4", "final_loss")]["ci_low"] == ""
    notes = report["markdown"].split("## Seed-aggregated results")[1]
    assert "left out of the seed aggregation (not finished): k16_w0_seed3" in notes
    assert "fewer than 3 seeds: k4_w4 (1), k16_w16 (2)" in notes


def test_seed_table1_probes_with_intervals_baseline_and_chance(seed_sweep, tmp_path):
    report = build_report([seed_sweep], tmp_path / "rep")
    rows = _md_rows(report["markdown"], "Seed-aggregated Table 1")
    assert [r[0] for r in rows] == ["random_init", "k1_iid_w0", "k4_w0", "k16_w0", "k4_w4", "k16_w16", "chance"]
    by_point = {r[0]: r[1:] for r in rows}
    h = 100 * _half([0.30, 0.32, 0.34], T3)
    assert by_point["k16_w0"][:5] == ["16", "M_n", "3", "t, 3 seeds", f"32.00 [{32 - h:.2f}, {32 + h:.2f}]"]
    assert by_point["random_init"][:4] == ["-", "-", "3", "t, 3 seeds"]
    assert by_point["k4_w4"][3:5] == ["run's own", "18.00 [15.00, 21.00]"]  # its own test-clip interval
    assert by_point["chance"][4:] == ["1.96", "2.00", "0.99"]
    table = _seed_rows(tmp_path / "rep" / "seeds_table1.csv")
    ucf = table[("random_init", "UCF101")]
    assert ucf["block"] == "baseline" and float(ucf["mean"]) == pytest.approx(0.21) and ucf["sample"] == "300 test clips"


def _verdicts(path: Path) -> dict[tuple[str, str], str]:
    return {(r["source"], r["claim"]): r["verdict"] for r in _csv(path)}


def test_claims_verdicts_from_planted_intervals(seed_sweep, tmp_path):
    report = build_report([seed_sweep], tmp_path / "rep")
    got = _verdicts(tmp_path / "rep" / "claims.csv")
    assert got == {
        ("Figure 1a", "KL(S-||S!=) is lower at k = 16 than at k = 1"): "reproduced",  # 0.20 +- 0.05 vs 0.62 +- 0.05
        ("Figure 1a", "the gap is lower at k = 16 than at k = 1"): "not resolved",  # 1.0 +- 0.5 vs 1.0 +- 0.25
        ("Figure 1c", "adjacent snippets (w = k) give a lower KL(S-||S!=) than no window at k = 4"): "reproduced",
        ("Figure 1c", "adjacent snippets (w = k) give a lower KL(S-||S!=) than no window at k = 16"): "opposite",
        ("Figure 3a", "k = 1's loss falls fastest: its final loss is below k = 16's"): "reproduced",
        ("Table 1", "k = 4 (w = M_n) beats k = 1 on HMDB51"): "reproduced",  # 0.26 +- 0.025 vs 0.21 +- 0.025
        ("Table 1", "k = 4 (w = M_n) beats k = 1 on ESC50"): "not resolved",
        ("Table 1", "k = 4 (w = M_n) beats k = 1 on UCF101"): "opposite",  # [43.5, 48.5] vs [50.5, 55.5]
        ("Table 1", "k = 16 (w = M_n) beats k = 1 on HMDB51"): "reproduced",
        ("Table 1", "k = 16 (w = M_n) beats k = 1 on ESC50"): "not resolved",
        ("Table 1", "k = 16 (w = M_n) beats k = 1 on UCF101"): "opposite",
        ("Table 1", "w = k is worse than no window on HMDB51 at k = 4"): "reproduced",  # own [15, 21] vs [23.5, 28.5]
        ("Table 1", "w = k is worse than no window on ESC50 at k = 4"): "not resolved",
        ("Table 1", "w = k is worse than no window on UCF101 at k = 4"): "reproduced",
        ("Table 1", "w = k is worse than no window on HMDB51 at k = 16"): "not resolved",
        ("Table 1", "w = k is worse than no window on ESC50 at k = 16"): "not resolved",
        ("Table 1", "w = k is worse than no window on UCF101 at k = 16"): "not resolved",
    }
    rows = {r[1]: r for r in _md_rows(report["markdown"], "Claims")}
    fig1a = rows["KL(S-||S!=) is lower at k = 16 than at k = 1"]
    h = _half([0.20, 0.22, 0.18], T3)
    assert fig1a[2:5] == ["k16_w0", "k1_iid_w0", f"0.200 [{0.2 - h:.3f}, {0.2 + h:.3f}] (n = 3)"]
    assert fig1a[6:] == ["-0.420", "-", "**reproduced**"]
    assert rows["k = 16 (w = M_n) beats k = 1 on HMDB51"][7] == "62.92 vs 60.32"  # the paper's Table 1
    claims = (tmp_path / "rep" / "claims.md").read_text()
    assert "7 reproduced, 3 opposite, 7 not resolved" in claims


def test_seed_figures_are_pngs_and_the_loss_band_is_the_mean_over_seeds(seed_sweep, tmp_path):
    report = build_report([seed_sweep], tmp_path / "rep")
    for name in ("seeds_fig1a.png", "seeds_fig1c.png", "seeds_fig3a.png"):
        with Image.open(report["files"][name]) as image:
            assert image.format == "PNG" and image.size[0] > 300
        assert f"]({name})" in report["markdown"]
    curves = [r for r in _csv(tmp_path / "rep" / "seeds_fig3a.csv") if r["step"] == "20"]
    k1 = next(r for r in curves if r["point"] == "k1_iid_w0")
    assert float(k1["mean"]) == pytest.approx(1.09) and k1["seeds"] == "3"  # (1.09 + 1.19 + 0.99) / 3
    assert float(k1["ci_high"]) == pytest.approx(1.09 + _half([1.09, 1.19, 0.99], T3))
    assert {r["point"] for r in curves} == {"k1_iid_w0", "k4_w0", "k16_w0"}  # Figure 3a: w = M_n only


def test_verdict_rules():
    from avplug.experiments.claims import NOT_MEASURED, NOT_RESOLVED, OPPOSITE, REPRODUCED, verdict
    from avplug.experiments.seeds import Estimate, across_seeds

    low, high, touching, none = Estimate(1.0, 0.8, 1.2), Estimate(2.0, 1.5, 2.5), Estimate(1.6, 1.2, 2.0), Estimate(1.0)
    assert verdict(low, high, "<") == REPRODUCED and verdict(high, low, "<") == OPPOSITE
    assert verdict(high, low, ">") == REPRODUCED and verdict(low, high, ">") == OPPOSITE
    assert verdict(low, touching, "<") == NOT_RESOLVED  # 1.2 is not below 1.2
    assert verdict(none, high, "<") == NOT_RESOLVED and verdict(Estimate(None), high, "<") == NOT_MEASURED
    assert verdict(None, high, ">") == NOT_MEASURED
    with pytest.raises(ValueError):
        verdict(low, high, "<=")
    mean, lo, hi = across_seeds([1.0, 2.0, 3.0])
    assert (mean, hi - mean, mean - lo) == (2.0, pytest.approx(T3 / 3**0.5), pytest.approx(T3 / 3**0.5))
    with pytest.raises(ValueError):
        across_seeds([1.0])
