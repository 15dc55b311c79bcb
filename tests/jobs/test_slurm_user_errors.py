"""A user error inside a Slurm job, on the real local cluster (issue 14, section 2):
``tools/launch.py --slurm --wait`` prints it as one ``launch.py: ...`` line (not twice inside
submitit's traceback) and exits 2; the job keeps the traceback in its log and fails with status 2.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs import slurm

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SLURM_FLAGS = ["--gpus-per-node", "0", "--cpus-per-task", "1", "--time", "10", "--partition", "debug"]


def test_launch_wait_prints_a_job_side_user_error_in_one_line(demo_data, shared_tmp, slurm_cli_env):
    out = shared_tmp / "run"
    # 4 training titles cannot fill a batch of 32 in groups of 2: found by the sampler, inside the job.
    opts = ["DATA.CATALOG_DIR", str(demo_data["catalog"]), "DATA.STORE_DIR", str(demo_data["store"]), "OUTPUT_DIR", str(out),
            "SAMPLER.K", "2", "SOLVER.BATCH_SIZE", "32", "DATA.NUM_WORKERS", "0"]
    proc = subprocess.run([sys.executable, "tools/launch.py", "--cfg", "demo.yaml", "--slurm", "--wait", *SLURM_FLAGS, *opts],
                          cwd=REPO, env=slurm_cli_env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("launch.py: HierarchicalSampler: a global batch of SOLVER.BATCH_SIZE = 32 may need"), line
    assert "set SOLVER.BATCH_SIZE" in line and "Slurm job" in line
    job_id = line.split("Slurm job ")[1].split()[0]
    user_error = out / "slurm" / job_id / f"{job_id}_0_user_error.txt"
    assert f"traceback in {user_error}" in line
    kept = user_error.read_text()
    assert kept.splitlines()[0] == line.removeprefix("launch.py: ").split(" (Slurm job")[0]
    assert "Traceback (most recent call last)" in kept and "SamplerError" in kept
    assert "Traceback (most recent call last)" in (out / "log.txt").read_text()
    assert slurm.job_state(job_id).state == "FAILED"
