"""Preprocessing a large catalog on Slurm: one job array over shards, then one merge job.

``tools/preprocess.py --slurm --array-size K`` calls :func:`submit_preprocess_array`:

* a Slurm array of K tasks; task I runs ``avplug.data.store_writer.preprocess(shard=I, num_shards=K,
  merge=False)``, which takes a fixed, duration-balanced share of the titles
  (``avplug.data.store_writer.shard_titles``: deterministic, so a rerun or a requeued task gets the same
  titles) and skips titles already finished, so every task is resumable: on preemption or time-out
  it requeues itself (:class:`PreprocessShardJob` is a submitit ``Checkpointable``) and carries on;
* a merge job that starts when every array task has ended (``afterany``) and writes
  ``STORE/index.json`` with ``avplug.data.store_writer.build_index``: the same store a single local run
  writes.  It fails, naming them, when catalog titles are neither finished nor recorded as broken
  (a shard crashed): resubmit the same command; finished titles are skipped.

Each task uses ``--workers`` processes, or (0) the CPUs Slurm gave it (``SLURM_CPUS_PER_TASK``).
The job logs, pickles and the code snapshot go next to the store, into ``<STORE>.slurm/``, so
the store itself holds only what a local run writes.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import submitit
from fvcore.common.config import CfgNode

from avplug.config import ConfigError
from jobs import slurm, snapshot

_log = logging.getLogger("avplug.jobs")


def _task_workers(workers: int) -> int:
    """``workers``, or the CPUs Slurm allocated to this task (0 = all of them)."""
    if workers and workers > 0:
        return workers
    return int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0)


class PreprocessShardJob(submitit.helpers.Checkpointable):
    """One array task: preprocess shard ``shard`` of ``num_shards`` into the store (no index).

    Returns the shard's summary as a dict (done, skipped, failed title ids, source seconds, wall
    seconds).  A requeued copy re-runs the shard and skips the titles already written.
    """

    def __init__(self, catalog_dir: str, store_dir: str, cfg: CfgNode, num_shards: int, workers: int = 0) -> None:
        self.catalog_dir, self.store_dir, self.cfg = catalog_dir, store_dir, cfg
        self.num_shards, self.workers = num_shards, workers

    @slurm.job_exits_on_user_error
    def __call__(self, shard: int) -> dict[str, Any]:
        from avplug.data.store import StoreSpec
        from avplug.data.store_writer import preprocess
        from avplug.engine.log import setup_logging

        slurm.guard_signal_handlers()
        slurm.check_code_snapshot()
        setup_logging()
        summary = preprocess(
            self.catalog_dir, self.store_dir, StoreSpec.from_cfg(self.cfg), workers=_task_workers(self.workers),
            shard=shard, num_shards=self.num_shards, merge=False, progress=False,
        )
        return {
            "shard": shard, "done": summary.done, "skipped": summary.skipped,
            "failed": [f["title_id"] for f in summary.failed],
            "source_seconds": summary.source_seconds, "wall_seconds": summary.wall_seconds,
        }

    def checkpoint(self, shard: int) -> submitit.helpers.DelayedSubmission:
        """A fresh task for the same shard; finished titles are on disk and will be skipped."""
        job = PreprocessShardJob(self.catalog_dir, self.store_dir, self.cfg, self.num_shards, self.workers)
        return submitit.helpers.DelayedSubmission(job, shard)


def unaccounted_titles(catalog_dir: str, store_dir: str) -> list[str]:
    """Catalog titles that are neither finished in the store nor recorded there as broken."""
    from avplug.data.catalog import load_catalog
    from avplug.data.store import ERRORS_DIR, META_FILE, TITLES_DIR, title_dir_name

    store = Path(store_dir)
    return sorted(
        e["title_id"] for e in load_catalog(catalog_dir)
        if not (store / TITLES_DIR / title_dir_name(e["title_id"]) / META_FILE).is_file()
        and not (store / ERRORS_DIR / f"{title_dir_name(e['title_id'])}.json").is_file()
    )


def merge_store(catalog_dir: str, store_dir: str) -> dict[str, Any]:
    """Write ``STORE/index.json`` from every finished title; fail if catalog titles are missing.

    Returns ``{"titles", "snippets", "failed", "store"}``.
    """
    from avplug.data.store import ERRORS_FILE
    from avplug.data.store_writer import build_index
    from avplug.engine.log import setup_logging

    setup_logging()
    missing = unaccounted_titles(catalog_dir, store_dir)
    if missing:
        raise slurm.SlurmError(
            f"merge of {store_dir}: {len(missing)} catalog titles were not preprocessed (a shard did not finish), "
            f"e.g. {', '.join(missing[:5])}; submit the same tools/preprocess.py --slurm command again "
            "(finished titles are skipped) or run the missing shards with --shard I --num-shards K, then --merge"
        )
    index = build_index(store_dir, catalog_dir)
    return {
        "titles": len(index["titles"]), "snippets": sum(t["num_snippets"] for t in index["titles"]),
        "failed": sum(1 for line in (Path(store_dir) / ERRORS_FILE).read_text().splitlines() if line.strip()),
        "store": str(store_dir),
    }


def preprocess_shard_then_merge(cfg: CfgNode, catalog_dir: str, store_dir: str, shard: int, num_shards: int, workers: int = 0) -> dict[str, Any]:
    """Preprocess one shard, then write the index if every title of the catalog is now accounted for.

    For schedulers without job dependencies (TorchX): every replica runs this for its shard;
    a title is on disk before its replica checks, so the replica that checks last sees all of
    them and merges.  Returns the shard summary with ``"merged"`` (the merge result or None).
    """
    result = PreprocessShardJob(catalog_dir, store_dir, cfg, num_shards, workers)(shard)
    result["merged"] = None if unaccounted_titles(catalog_dir, store_dir) else merge_store(catalog_dir, store_dir)
    return result


def add_preprocess_slurm_args(parser: argparse.ArgumentParser) -> None:
    """``--slurm``, ``--array-size K``, ``--dry-run`` and the Slurm flags of :func:`jobs.slurm.add_slurm_args`."""
    parser.add_argument("--slurm", action="store_true", help="run as a Slurm job array of --array-size tasks plus a merge job")
    parser.add_argument("--array-size", type=int, default=None, metavar="K", help="with --slurm: number of array tasks (shards)")
    parser.add_argument("--dry-run", action="store_true", help="with --slurm: print the sbatch scripts instead of submitting")
    slurm.add_slurm_args(parser)


def _logs_dir(store_dir: str) -> Path:
    store = Path(store_dir).resolve()
    return store.with_name(store.name + ".slurm")


def submit_preprocess_array(cfg: CfgNode, args: argparse.Namespace, *, catalog_dir: str, store_dir: str):
    """Submit the array of ``args.array_size`` shard tasks and the dependent merge job.

    Returns ``(shard_jobs, merge_job)`` (``None`` on ``--dry-run``, which prints both scripts).
    With ``--wait`` it follows the jobs and raises :class:`jobs.slurm.SlurmError` if a shard or
    the merge failed.  Reads ``workers`` from ``args`` (default: ``DATA.PREPROCESS_WORKERS``).
    """
    from avplug.data.catalog import load_catalog
    from avplug.data.store import StoreSpec
    from avplug.data.store_writer import check_spec

    k = args.array_size
    if not k or k < 1:
        raise ConfigError("--slurm needs --array-size K (the number of array tasks), K >= 1")
    catalog_dir, store_dir = str(Path(catalog_dir).resolve()), str(Path(store_dir).resolve())
    opts = slurm.resolve_slurm_options(cfg, args)
    workers = args.workers if getattr(args, "workers", None) is not None else cfg.DATA.PREPROCESS_WORKERS
    logs = _logs_dir(store_dir)
    opts_cpu = {"nodes": 1, "ntasks_per_node": 1, "gpus_per_node": 0}

    if getattr(args, "dry_run", False):
        setup = snapshot.python_path_setup(snapshot.snapshot_dir(logs))
        print(f"# would submit a Slurm array of {k} preprocessing tasks over {catalog_dir} -> {store_dir}, then a merge job")
        print(slurm.sbatch_script(logs / "%j", slurm.sbatch_parameters(opts, setup=setup, **opts_cpu), array_size=k))
        merge_params = slurm.sbatch_parameters(opts, setup=setup, **opts_cpu)
        merge_params["dependency"] = "afterany:ARRAY_JOB_ID"
        print(slurm.sbatch_script(logs / "%j", merge_params))
        return None

    num_titles = len(load_catalog(catalog_dir))  # fails early, naming the folder, without a catalog
    check_spec(store_dir, StoreSpec.from_cfg(cfg))  # a store built with another spec fails here, not in K tasks
    code = snapshot.snapshot_code(logs)
    setup = snapshot.python_path_setup(code)
    params = slurm.sbatch_parameters(opts, setup=setup, **opts_cpu)
    array_ex = slurm.make_executor(logs / "%j", params, max_requeues=opts.max_requeues)
    array_ex.update_parameters(job_name=f"{opts.job_name}-preprocess")
    shard_job = PreprocessShardJob(catalog_dir, store_dir, cfg, k, workers)
    with slurm.sbatch_errors(f"the preprocessing array ({k} tasks)"):
        shards = array_ex.map_array(shard_job, list(range(k)))
    array_id = shards[0].job_id.split("_")[0]

    merge_params = slurm.sbatch_parameters(opts, setup=setup, **opts_cpu)
    merge_params.update(dependency=f"afterany:{array_id}", job_name=f"{opts.job_name}-merge")
    with slurm.sbatch_errors("the merge job"):
        merge = slurm.make_executor(logs / "%j", merge_params, max_requeues=opts.max_requeues).submit(slurm.job_exits_on_user_error(merge_store), catalog_dir, store_dir)
    print(
        f"submitted Slurm array {array_id} ({k} tasks over {num_titles} titles) and merge job {merge.job_id}\n"
        f"  store: {store_dir}\n  logs:  {logs}\n  code:  {code}",
        flush=True,
    )
    if getattr(args, "wait", False):
        wait_preprocess(shards, merge)
    return shards, merge


def wait_preprocess(shards, merge, *, poll_s: float = 2.0, timeout_s: float | None = None) -> dict[str, Any]:
    """Wait for the shard array and the merge job, print a line per finished shard, return the merge result."""
    array_id = shards[0].job_id.split("_")[0]
    reported: set[str] = set()

    def progress() -> None:
        for job in shards:
            if job.job_id not in reported and job.paths.result_pickle.exists():
                reported.add(job.job_id)
                print(f"shard task {job.job_id} finished ({len(reported)}/{len(shards)})", flush=True)

    slurm.wait_for_jobs([array_id, merge.job_id], poll_s=poll_s, timeout_s=timeout_s, on_poll=progress)
    errors = []
    for job in shards:
        try:
            result = slurm.job_results(job)[0]
            if result["failed"]:
                print(f"shard {result['shard']}: titles failed (see STORE/errors.jsonl): {', '.join(result['failed'])}", file=sys.stderr)
        except slurm.SlurmError as exc:
            errors.append(str(exc))
    try:
        merged = slurm.job_results(merge)[0]
    except slurm.SlurmError as exc:
        errors.append(str(exc))
        merged = None
    if errors:
        raise slurm.SlurmError("preprocessing on Slurm failed:\n" + "\n".join(errors))
    print(f"merged: {merged}", flush=True)
    return merged
