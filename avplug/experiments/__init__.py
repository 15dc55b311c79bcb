"""Experiments: ablation sweeps of pretraining configs and the reports of their runs.

This layer sits above :mod:`avplug.engine` and :mod:`avplug.evaluation`: it pretrains, measures and
evaluates runs with them, and neither imports it.  A sweep is a list of *runs*; a run is a dict of
config overrides (``{"SAMPLER.K": 4}``) applied to one base recipe.  From pure to effectful:

- :mod:`~avplug.experiments.grids`: ``"SAMPLER.K=1,4,8"`` axes, their cartesian product, filters;
- :mod:`~avplug.experiments.presets`: the paper's grids (Table 1/2, Figure 1, the CPU reproduction);
- :mod:`~avplug.experiments.catalog_fit`: dropping the points a small catalog cannot support;
- :mod:`~avplug.experiments.run_names`: readable run folder names (``k4_w0``, ``k1_iid_w0``);
- :mod:`~avplug.experiments.planning`: run entries (with the random-init baselines), validated;
- :mod:`~avplug.experiments.sweep_record`: ``SWEEP_DIR/sweep.json`` and each run's ``run.json``;
- :mod:`~avplug.experiments.run_configs`: the pretraining and evaluation cfgs of a run;
- :mod:`~avplug.experiments.run_stages`: one run: pretraining, held-out measures, downstream
  evaluation, each resumable;
- :mod:`~avplug.experiments.local_sweep`: the runs one after another in this process
  (``tools/sweep.py``; on Slurm: ``jobs/sweep_array.py``);
- :mod:`~avplug.experiments.reports`: finished runs in the paper's table and figure shapes
  (``tools/report.py``), built from :mod:`~avplug.experiments.run_folders` (what a run folder
  holds), :mod:`~avplug.experiments.report_tables`, :mod:`~avplug.experiments.report_figures` and
  :mod:`~avplug.experiments.seed_report`; the last aggregates runs that differ only in SEED
  (:mod:`~avplug.experiments.seeds`) and gives each paper claim a verdict
  (:mod:`~avplug.experiments.claims`).

Files of a run ``SWEEP_DIR/<name>/``: the engine's (``config.yaml``, ``metrics.jsonl``,
``checkpoints/``, ``loss_curve.png``, ``log.txt``) plus ``run.json``, ``pretrain.json``,
``discrepancy.json`` (+ ``score_histograms.png``), ``eval/<recipe>/`` and ``results.json``.

Submodules are imported on use; importing this package defines :class:`SweepError` only.
"""
from avplug.errors import UserError


class SweepError(UserError, ValueError):
    """A malformed grid, an unknown preset, or a sweep folder that contradicts the request."""
