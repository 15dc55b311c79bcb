"""jobs.slurm against a real Slurm cluster (scripts/slurm_local.sh: nodes n1, n2, one CPU each).

These use small jobs that need no data: torch.distributed across the two nodes, and the error
of a failed job; preemption and requeue are tested end to end in test_slurm_pretrain.py.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import pytest

from avplug.config import get_cfg
from jobs import pretrain, slurm

pytestmark = pytest.mark.slurm



def _executor(folder: Path, *, nodes: int, max_requeues: int = 3):
    cfg = get_cfg()
    opts = slurm.resolve_slurm_options(cfg, argparse.Namespace(gpus_per_node=0, cpus_per_task=1, time=60, job_name="avplug-test"))
    params = slurm.sbatch_parameters(opts, nodes=nodes, ntasks_per_node=1, setup=["export OMP_NUM_THREADS=1"])
    return slurm.make_executor(folder / "%j", params, max_requeues=max_requeues)


def test_torch_distributed_all_reduce_across_two_nodes(shared_tmp, capsys):
    from jobs.diagnostics import main

    assert main(["--nodes", "2", "--gpus-per-node", "0", "--cpus-per-task", "1", "--time", "10", "--backend", "gloo",
                 "--folder", str(shared_tmp)]) == 0
    out = capsys.readouterr().out
    results = [ast.literal_eval(line) for line in out.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert {r["node"] for r in results} == {"n1", "n2"}  # one task on each Slurm node
    assert all(r["world_size"] == 2 and r["sum"] == 3.0 and r["backend"] == "gloo" for r in results)
    assert len({r["master"] for r in results}) == 1
    assert "all_reduce over 2 ranks: OK" in out
    (job_dir,) = [p for p in shared_tmp.iterdir() if p.is_dir()]
    assert slurm.job_state(job_dir.name).state == "COMPLETED"


def test_follow_raises_with_the_log_when_the_job_fails(shared_tmp):
    job = _executor(shared_tmp, nodes=1).submit(int, "not a number")
    with pytest.raises(slurm.SlurmError, match="invalid literal"):
        slurm.follow(job, timeout_s=120, stdout=sys.stderr)


def test_a_request_sbatch_refuses_raises_slurm_error(tmp_path):
    from avplug.config import load_config

    cfg = load_config("demo.yaml", ["OUTPUT_DIR", str(tmp_path / "run")])
    parser = argparse.ArgumentParser()
    slurm.add_slurm_args(parser)
    args = parser.parse_args(["--gpus-per-node", "1", "--cpus-per-task", "1", "--time", "5"])  # the local nodes have no GPUs
    args.nodes = 2
    with pytest.raises(slurm.SlurmError, match=r"sbatch refused the pretraining job \(2 node\(s\) x 1 task\(s\)\).*gres"):
        pretrain.submit_pretraining(cfg, args)
