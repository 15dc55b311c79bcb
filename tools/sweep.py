#!/usr/bin/env python
"""Run an ablation sweep: each grid point pretrained, measured on held-out titles, evaluated downstream.

    tools/sweep.py --cfg demo.yaml --grid "SAMPLER.K=1,4,8" --out output/sweeps/k --eval eval_demo.yaml --prepare demo
    tools/sweep.py --cfg demo.yaml --preset fig1-k --only "SAMPLER.K=1,4,8" --out output/sweeps/fig1k --eval eval_demo.yaml
    tools/sweep.py --cfg demo.yaml --grid "SAMPLER.K=4,8" --grid "SAMPLER.WINDOW=0,16" --out output/sweeps/kw SOLVER.MAX_STEPS 50
    tools/sweep.py --cfg movie_tv.yaml --preset table1 --out /shared/sweeps/table1 \\
        --eval eval_ucf101.yaml --eval eval_hmdb51.yaml --eval eval_esc50.yaml --slurm --partition gpu
    tools/sweep.py --out output/sweeps/k --status

The CPU reproduction of Figures 1a, 1c, 3a and Table 1 at demo scale (the repro-cpu preset, 3 seeds
per point: 15 pretrained runs and 3 random inits, random_init_seed0..2; at 8 epochs a demo run
trains in about 4-5 minutes on one core, sized for the 90 minutes on 2 cores the issue allows):

    tools/sweep.py --cfg demo.yaml --preset repro-cpu --grid SEED=0,1,2 --prepare demo --out output/repro \\
        --eval eval_demo.yaml --eval eval_demo_hmdb51.yaml --eval eval_demo_esc50.yaml SOLVER.MAX_EPOCHS 8

Its report (OUT/report, see tools/report.py) opens with the seed-aggregated results: each point's
mean over seeds with a 95% t-interval across seeds, Figures 1a/1c/3a with error bars, Table 1 with
the baseline, and claims.md, each paper claim's verdict (reproduced, opposite, not resolved) from
those intervals.  Add --dry-run to see the 18 planned runs first.

Every run goes to OUT/<run name> (k4_w0, k1_iid_w0, ...); OUT/sweep.json records the runs, their
overrides and status (invalid grid points with their validation error).  Locally the runs go one
after another: pretraining, discrepancy measures of the final model, each --eval recipe (applied
with the run's overrides), plus the randomly initialized baseline (random_init; one per seed,
random_init_seed0, ..., when the grid sets SEED) unless --no-baseline; then the report
(tools/report.py) is written to OUT/report.  With --slurm each run is one task of a Slurm array,
followed by a report job.  Rerunning the same command skips finished runs and resumes interrupted
ones.  Presets are the paper's grids (table1, table2, fig1-k, fig1-w, repro-cpu), fitted to the
catalog: points whose k exceeds the median title length, or whose window covers every title, are
dropped with a printed note.  Exit status: 0 when every run finished, 1 when some failed or were
invalid, 2 on bad usage.
"""
from __future__ import annotations

import sys
from pathlib import Path

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config import resolve_config_path
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.engine.log import setup_logging
from avplug.models.export import check_weights_file
from jobs import slurm


def build_parser():
    from avplug.experiments.presets import PRESETS

    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--out", required=True, help="sweep folder (one sub-folder per run, sweep.json, report/)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="one axis of the grid (repeatable; the runs are the cartesian product)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="the paper's grid: " + "; ".join(f"{k}: {v}" for k, v in PRESETS.items()))
    parser.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                        help="keep only the points with these values (repeatable), e.g. --only SAMPLER.K=1,4,8")
    parser.add_argument("--eval", action="append", default=[], metavar="RECIPE",
                        help="downstream evaluation recipe run on every run (repeatable), e.g. eval_demo.yaml")
    parser.add_argument("--no-baseline", action="store_true", help="skip the randomly initialized baseline run")
    parser.add_argument("--prepare", choices=("none", "data", "demo"), default="none",
                        help="first ingest + preprocess the cfg's data ('data'), after generating the demo corpus ('demo'); idempotent")
    parser.add_argument("--status", action="store_true", help="print the runs of OUT and their status, then exit")
    parser.add_argument("--dry-run", action="store_true", help="record and print the plan (and the sbatch scripts with --slurm), run nothing")
    parser.add_argument("--slurm", action="store_true", help="submit one Slurm array task per run, then a report job")
    parser.add_argument("--array-parallelism", type=int, default=None, metavar="N", help="with --slurm: at most N runs at once")
    slurm.add_slurm_args(parser)
    return parser


def _fmt_overrides(overrides) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "(base cfg)"


def print_runs(runs) -> None:
    width = max((len(r["name"]) for r in runs), default=4)
    for r in runs:
        label = "random init (baseline)" if r.get("baseline") else _fmt_overrides(r["overrides"])
        line = f"  {r['name']:<{width}}  {r.get('status', 'planned'):<8}  {label}"
        if r.get("error"):
            line += f"\n  {'':<{width}}            {r['error']}"
        print(line)


def plan(args, cfg):
    """(points, notes) from --preset / --grid / --only, fitted to the catalog for presets."""
    from avplug.experiments.catalog_fit import catalog_stats, fit_to_catalog
    from avplug.experiments.grids import combine_points, expand_grid, filter_points, parse_grid
    from avplug.experiments.presets import preset_points
    from avplug.experiments.run_configs import flat_cfg

    notes: list[str] = []
    grid = expand_grid([parse_grid(g) for g in args.grid])
    if args.preset:
        points, notes = fit_to_catalog(preset_points(args.preset), catalog_stats(cfg))
        points = combine_points(points, grid)
    else:
        points = grid
    if args.only:
        points = filter_points(points, dict(parse_grid(o) for o in args.only), flat_cfg(cfg))
    return points, notes


@exits_on_user_error("sweep.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from avplug.experiments import SweepError
    from avplug.experiments.local_sweep import run_sweep
    from avplug.experiments.planning import plan_runs
    from avplug.experiments.sweep_record import sweep_status, update_sweep_record

    out = Path(args.out).resolve()
    if args.status:
        try:
            print_runs(sweep_status(out))
        except SweepError as exc:
            print(f"sweep.py: {exc}", file=sys.stderr)
            return 2
        return 0
    if not args.cfg:
        print("sweep.py: --cfg is required (a path or a shipped recipe such as demo.yaml)", file=sys.stderr)
        return 2
    if not (args.grid or args.preset):
        print("sweep.py: give --grid KEY=V1,V2 (repeatable) and/or --preset", file=sys.stderr)
        return 2
    cfg = cfg_from_args(args)
    if cfg.MODEL.WEIGHTS:
        check_weights_file(cfg.MODEL.WEIGHTS, "MODEL.WEIGHTS")
    evals = [str(resolve_config_path(e)) for e in args.eval]
    setup_logging(out)
    if args.prepare != "none" and not args.dry_run:
        from avplug.pipeline import prepare_data

        prepare_data(cfg, demo=args.prepare == "demo")
    if args.slurm:
        opts = slurm.resolve_slurm_options(cfg, args)
        world = slurm.tasks_per_node(cfg, opts)
    else:
        from avplug.engine.launch import default_num_procs

        world = cfg.LAUNCH.PROCS_PER_NODE or default_num_procs()
    try:
        points, notes = plan(args, cfg)
        if not points:
            print("sweep.py: no grid point left (after fitting to the catalog and --only)", file=sys.stderr)
            for note in notes:
                print(f"  note: {note}", file=sys.stderr)
            return 2
        runs = plan_runs(points, cfg_file=str(resolve_config_path(args.cfg)), opts=[o for o in args.opts if o != "--"],
                         plugins=args.plugin, evals=evals, baseline=not args.no_baseline, world_size=world)
        runs = update_sweep_record(out, runs, notes)
    except SweepError as exc:
        print(f"sweep.py: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    print(f"sweep {out}: {len(runs)} run(s)")
    print_runs([{**r, **{k: v for k, v in s.items() if k in ('status', 'error')}} for r, s in zip(runs, _statuses(out, runs))])

    if args.slurm:
        from jobs.sweep_array import submit_sweep

        try:
            submit_sweep(cfg, out, runs, args)
        except (ValueError, slurm.SlurmError) as exc:
            print(f"sweep.py: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.dry_run:
        return 0
    final = run_sweep(out, runs, world_size=world)
    from avplug.experiments.reports import build_report
    from avplug.experiments.sweep_record import refresh_sweep_record

    counts = refresh_sweep_record(out)
    report = build_report([out], out / "report")
    print(report["markdown"])
    print(f"sweep {out}: {counts}; report in {out / 'report'}")
    return 0 if all(s == "finished" for s in final.values()) else 1


def _statuses(out, runs):
    from avplug.experiments.sweep_record import run_status

    return [run_status(out, r) for r in runs]


if __name__ == "__main__":
    sys.exit(main())
