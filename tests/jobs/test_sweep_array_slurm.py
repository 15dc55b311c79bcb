"""jobs.sweep_array against a real Slurm cluster: an array task per unfinished run, then the report job.

The runs here need no data: two finish locally with stand-in stages, and the array task of the
third fails on the cluster (its snippet store does not exist), which the report job and --wait
must both report.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from avplug.config import CONFIG_DIR, load_config
from avplug.experiments.local_sweep import run_sweep
from avplug.experiments.planning import plan_runs
from avplug.experiments.presets import sampler_point
from avplug.experiments.sweep_record import read_sweep_record, update_sweep_record
from jobs import slurm
from jobs.sweep_array import submit_sweep

pytestmark = pytest.mark.slurm

DEMO = str(CONFIG_DIR / "demo.yaml")


def _pretrain(cfg):
    """Stands in for pretraining: a checkpoint file and the summary (fails for k4_w0, as a node would)."""
    out = Path(cfg.OUTPUT_DIR)
    if out.name == "k4_w0":
        raise RuntimeError("node died")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / "model_0000002.pth").write_bytes(b"weights")
    return {"final_loss": 3.0, "steps": 2, "last_checkpoint": str(out / "checkpoints" / "model_0000002.pth")}


def _discrepancy(cfg, weights, out, device):
    return {"KL(S-||S+)": 0.1, "KL(S!=||S+)": 0.3, "KL(S-||S!=)": 0.05, "gap": 0.2}


def test_sweep_array_runs_unfinished_runs_and_the_report_job_records_them(shared_tmp, capsys):
    opts = ["DATA.STORE_DIR", str(shared_tmp / "no-store"), "DATA.CATALOG_DIR", str(shared_tmp / "no-catalog"),
            "DATA.NUM_WORKERS", "0"]
    runs = plan_runs([sampler_point(4), sampler_point(8)], cfg_file=DEMO, opts=opts)
    out = shared_tmp / "sweep"
    runs = update_sweep_record(out, runs)
    assert run_sweep(out, runs, pretrain=_pretrain, discrepancy=_discrepancy)["k4_w0"] == "failed"

    args = argparse.Namespace(dry_run=False, wait=True, array_parallelism=None, partition=None, account=None, qos=None,
                              time=15, constraint=None, mem_gb=None, gpus_per_node=0, cpus_per_task=1,
                              sbatch_extra=None, job_name="avplug-test")
    with pytest.raises(slurm.SlurmError, match="k4_w0"):
        submit_sweep(load_config(DEMO, opts), out, runs, args)
    text = capsys.readouterr().out
    assert "array" in text and "1 run(s) (k4_w0)" in text

    state = json.loads((out / "k4_w0" / "run.json").read_text())
    assert state["status"] == "failed" and "no-store" in state["error"]
    record = read_sweep_record(out)
    assert {r["name"]: r["status"] for r in record["runs"]} == {"random_init": "finished", "k4_w0": "failed", "k8_w0": "finished"}
    assert (out / "report" / "report.md").is_file() and (out / "report" / "table1.csv").is_file()
    assert (out / "code").is_dir() and list((out / "slurm").iterdir())
