#!/usr/bin/env python
"""Tables and figures of finished runs in the paper's shapes (Table 1, Table 2, Figure 1, Figure 3).

    tools/report.py output/sweeps/fig1k --out output/reports/fig1k
    tools/report.py output/sweeps/table1 output/sweeps/table2 --out output/reports/tables
    tools/report.py output/runs/k4 output/runs/k16 --out output/reports/mine     # run folders

Takes sweep folders (tools/sweep.py --out), run folders (a pretraining OUTPUT_DIR, with
evaluation results under RUN/eval/<recipe>/), or folders of run folders.  Writes OUT/report.md
(every table, the figures and the notes), OUT/table1.md, CSV files (table1, table2, fig1_k, fig1_w,
fig3_loss, runs) and PNG figures (fig1_k, fig1_w, fig3_k, fig3_w, fig3_adjacent), and prints the
Markdown.  Runs that differ only in SEED are aggregated first: OUT/claims.md and claims.csv (each
paper claim of Figures 1a, 1c, 3a and Table 1 with its verdict: reproduced, opposite or not
resolved, from the 95% intervals), seeds_table1.csv and seeds_measures.csv (mean over seeds with a
t-interval across seeds, chance and sample size per point), seeds_fig1a/1c/3a.png.  Missing
results show as "-" with a note; exit status 2 only when no run was found.
"""
from __future__ import annotations

import argparse
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import exits_on_user_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("paths", nargs="+", metavar="SWEEP_DIR_OR_RUN_DIR", help="sweep folders, run folders, or folders of runs")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--quiet", action="store_true", help="do not print the Markdown")
    return parser


@exits_on_user_error("report.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from avplug.experiments.reports import build_report

    report = build_report(args.paths, args.out)
    if not args.quiet:
        print(report["markdown"])
    print(f"report of {report['runs']} run(s): {', '.join(sorted(report['files']))} in {args.out}")
    if report["runs"] == 0:
        print("report.py: no run found under " + ", ".join(args.paths), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
