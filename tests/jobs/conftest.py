"""Slurm test gating for tests/jobs: ``@pytest.mark.slurm`` tests need a controller that answers.

Without one they are skipped with the reason, except when ``AVPLUG_REQUIRE_SLURM=1`` (CI, where
``scripts/slurm_local.sh start`` brought the two-node cluster up): then a missing Slurm fails them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REQUIRE_ENV = "AVPLUG_REQUIRE_SLURM"
_STATUS: dict[str, str | None] = {}


def _slurm_available() -> bool:
    """True when this machine can submit to a Slurm controller that answers."""
    if not (shutil.which("sbatch") and shutil.which("scontrol")):
        return False
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "UP" in out.stdout


def _slurm_problem() -> str | None:
    """None when sbatch works against a controller with two idle-or-busy nodes, else why not."""
    if "problem" not in _STATUS:
        if not _slurm_available():
            _STATUS["problem"] = "no Slurm controller answers here (start one with: sudo scripts/slurm_local.sh start)"
        else:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=30, check=False)
            usable = [line.split()[0] for line in out.stdout.splitlines() if line.split()[1].rstrip("*") in ("idle", "alloc", "mix", "comp")]
            _STATUS["problem"] = None if len(usable) >= 2 else f"the Slurm cluster needs two usable nodes, sinfo says: {out.stdout.strip()!r}"
    return _STATUS["problem"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is None:
        return
    problem = _slurm_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """A folder every Slurm node sees (all nodes of the local cluster are this host)."""
    return tmp_path


def _release(job_id: str, timeout_s: float = 120.0) -> None:
    import time

    from jobs.slurm import TERMINAL_STATES, job_state

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = job_state(job_id)
        if state is None or state.state == "RUNNING" or state.state in TERMINAL_STATES:
            return
        if state.state == "PENDING":  # while still COMPLETING, Slurm would reset the begin time
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True, text=True, timeout=30, check=False)
        time.sleep(1.0)
    raise AssertionError(f"requeued Slurm job {job_id} did not start again within {timeout_s:.0f} s")


@pytest.fixture
def release_requeued():
    """``release(job_id)``: wait for a requeued job to start again, without Slurm's requeue delay.

    Slurm holds a requeued batch job for about two minutes (PENDING, reason BeginTime); tests set
    its start time to now once it is pending rather than wait that out.
    """
    return _release


@pytest.fixture
def slurm_cli_env() -> dict[str, str]:
    """Environment for running tools/ as subprocesses: unbuffered, one intra-op thread per rank."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------------------------------------
# Demo-sized data and the local reference run shared by the Slurm and TorchX end-to-end tests
# ---------------------------------------------------------------------------------------------
def _train_opts(data: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    # 4 training titles of 5 snippets, a global batch of 8 (one group of k = 4 per rank):
    # 2 steps per epoch, 12 steps, a checkpoint every 2.
    return [
        "DATA.CATALOG_DIR", str(data["catalog"]), "DATA.STORE_DIR", str(data["store"]), "OUTPUT_DIR", str(output_dir),
        "SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "SOLVER.MAX_EPOCHS", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.LOG_PERIOD", "1",
        "EVAL.DISCREPANCY_PERIOD", "-1", *extra,
    ]


@pytest.fixture(scope="session")
def train_opts():
    """``train_opts(demo_data, output_dir, *extra)``: the cfg overrides of the end-to-end runs."""
    return _train_opts


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, Path]:
    """A tiny demo corpus (6 titles of 8 s: 2 held out, 4 trained on), its catalog and its store from one
    local preprocess run."""
    from avplug.config import load_config
    from avplug.data.catalog import ingest
    from avplug.data.demo import generate_demo_corpus
    from avplug.data.store import StoreSpec
    from avplug.data.store_writer import preprocess

    root = tmp_path_factory.mktemp("jobs-demo")
    cfg = load_config("demo.yaml")
    generate_demo_corpus(root / "corpus", num_movies=4, num_shows=1, episodes_per_show=2, title_seconds=8.0,
                         downstream=False, broken=False, workers=1, progress=False)
    ingest(str(root / "corpus"), str(root / "catalog"), snippet_seconds=cfg.DATA.SNIPPET_SECONDS,
           meta=str(root / "corpus" / "meta.csv"), heldout_fraction=0.2, seed=0, workers=1, progress=False)
    preprocess(str(root / "catalog"), str(root / "store"), StoreSpec.from_cfg(cfg), workers=1, progress=False)
    return {"root": root, "catalog": root / "catalog", "store": root / "store"}


@pytest.fixture(scope="session")
def local_run(demo_data) -> Path:
    """The reference: the end-to-end config trained by two local processes (``launch_local``, gloo)."""
    from avplug.config import load_config
    from avplug.engine.launch import launch_local

    out = demo_data["root"] / "local"
    cfg = load_config("demo.yaml", _train_opts(demo_data, out), world_size=2)
    summary = launch_local(cfg, 2)
    assert summary["world_size"] == 2
    return out


def _losses(output_dir: Path) -> dict[int, float]:
    import json

    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _final_weights(output_dir: Path):
    from avplug.engine.checkpoint import Checkpointer

    _, state = Checkpointer(output_dir / "checkpoints").load_latest()
    return state["step"], state["model"]


def _assert_same_weights(a, b, rel: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name, tensor in a.items():
        x, y = tensor.double(), b[name].double()
        scale = max(y.abs().max().item(), 1e-12)
        assert (x - y).abs().max().item() <= rel * scale, f"{name} differs by more than {rel} relative"


@pytest.fixture(scope="session")
def runs():
    """Readers of a run's folder: ``losses(dir)`` {step: loss}, ``final_weights(dir)`` (step,
    state_dict) and ``assert_same_weights(a, b, rel=1e-6)``."""
    import types

    return types.SimpleNamespace(losses=_losses, final_weights=_final_weights, assert_same_weights=_assert_same_weights)
