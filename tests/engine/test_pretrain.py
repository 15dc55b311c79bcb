"""Pretraining end to end on a tiny demo store: metrics, plots, exact kill-and-resume."""
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from avplug.config import load_config
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.metrics import read_metrics

TINY = ["SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
        "MODEL.VIDEO.WIDTH", "0.0625", "MODEL.AUDIO.WIDTH", "0.0625", "MODEL.HEAD.DIM", "16",
        "INPUT.VIDEO.SHORT_SIDE", "40", "INPUT.VIDEO.CROP", "32", "DATA.NUM_WORKERS", "1", "SOLVER.MAX_EPOCHS", "3"]


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r}


def _final_weights(out: Path) -> dict:
    path, state = Checkpointer(out / "checkpoints").load_latest()
    return state


def _launch(opts, out, python_exe, repo_root, **kw):
    cmd = [python_exe, str(repo_root / "tools" / "launch.py"), "--cfg", "demo.yaml", "--nodes", "1", *opts, "OUTPUT_DIR", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_run(tiny_demo, tmp_path, python_exe, repo_root):
    opts = tiny_demo + TINY + ["SOLVER.MAX_STEPS", "6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = _launch(opts, tmp_path / "full", python_exe, repo_root, env=env)
    log, _ = full.communicate(timeout=600)
    assert full.returncode == 0, log

    # Run again and SIGKILL it as soon as the step-2 checkpoint exists (no chance to save more).
    killed = _launch(opts, tmp_path / "resumed", python_exe, repo_root, env=env)
    ckpt = tmp_path / "resumed" / "checkpoints" / "model_0000002.pth"
    deadline = time.time() + 600
    while not ckpt.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert ckpt.exists()
    steps_before = _final_weights(tmp_path / "resumed")["step"]
    assert steps_before < 6, "the run finished before it could be killed"

    again = _launch(opts, tmp_path / "resumed", python_exe, repo_root, env=env)
    log, _ = again.communicate(timeout=600)
    assert again.returncode == 0, log
    assert "resumed from" in log

    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    assert a == b, (a, b)  # bit-for-bit on CPU
    wa, wb = _final_weights(tmp_path / "full"), _final_weights(tmp_path / "resumed")
    assert wa["step"] == wb["step"] == 6
    for key in wa["model"]:
        assert torch.equal(wa["model"][key], wb["model"][key]), key


def test_pretraining_writes_metrics_config_plots_and_checkpoints(tiny_demo, tmp_path):
    from avplug.engine.train import run_pretraining

    out = tmp_path / "run"
    cfg = load_config("demo.yaml", tiny_demo + TINY + ["SOLVER.MAX_STEPS", "3", "DATA.NUM_WORKERS", "0", "OUTPUT_DIR", str(out)])
    summary = run_pretraining(cfg)
    assert summary["steps"] == 3 and summary["world_size"] == 1
    assert abs(summary["final_loss"] - math.log(2 * 8 - 1)) < 1.0  # an untrained batch of 8 scores near chance
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    loss_rows = [r for r in records if "loss" in r]
    assert [r["step"] for r in loss_rows] == [1, 2, 3]
    assert {"step", "epoch", "loss", "lr", "clips_per_s", "world_size"} <= set(loss_rows[0])
    assert loss_rows[0]["lr"] == pytest.approx(cfg.SOLVER.WARMUP_START_LR)
    assert (out / "config.yaml").is_file() and load_config(out / "config.yaml").SAMPLER.K == 4
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert list((out / "tensorboard").glob("events.*"))
    assert Path(summary["last_checkpoint"]).name == "model_0000003.pth"
    state = torch.load(summary["last_checkpoint"], weights_only=True)
    assert {"model", "optimizer", "scaler", "step", "sampler", "rng", "cfg"} <= set(state)


@pytest.fixture(scope="module")
def two_heldout_titles(tiny_demo, tmp_path_factory):
    """The tiny demo corpus ingested again with half of its titles held out (2 of 4), for held-out measures."""
    from avplug import pipeline

    root = tmp_path_factory.mktemp("two_heldout")
    opts = tiny_demo + ["DATA.CATALOG_DIR", str(root / "catalog"), "DATA.STORE_DIR", str(root / "store"),
                        "DATA.HELDOUT_FRACTION", "0.5"]
    cfg = load_config("demo.yaml", opts)
    pipeline.ingest_from_cfg(cfg, progress=False)
    pipeline.preprocess_from_cfg(cfg, progress=False)
    return opts


def test_held_out_measures_are_logged_every_discrepancy_period(two_heldout_titles, tmp_path, one_intra_op_thread):
    """EVAL.DISCREPANCY_PERIOD 2 over 5 steps measures at steps 2, 4 and the last one, with intervals."""
    from avplug.engine.metrics import plot_heldout_curve
    from avplug.engine.train import run_pretraining

    out = tmp_path / "run"
    cfg = load_config("demo.yaml", two_heldout_titles + TINY + ["SOLVER.MAX_STEPS", "5", "DATA.NUM_WORKERS", "0",
                                                       "EVAL.DISCREPANCY_PERIOD", "2", "EVAL.BOOTSTRAP_REPLICATES", "50",
                                                       "SOLVER.CHECKPOINT_PERIOD", "0", "SOLVER.MAX_EPOCHS", "10", "OUTPUT_DIR", str(out)])
    run_pretraining(cfg)
    measured = [r for r in read_metrics(out / "metrics.jsonl") if "v2a_R@1" in r]
    assert [r["step"] for r in measured] == [2, 4, 5]
    last = measured[-1]
    assert last["v2a_R@1_chance"] == pytest.approx(1 / last["num_snippets"])
    assert last["v2a_R@1_ci_low"] <= last["v2a_R@1"] <= last["v2a_R@1_ci_high"]
    assert last["num_titles"] == 2 and "KL(S-||S!=)" in last and "KL(S-||S!=)_ci_low" not in last  # no KL interval from 2 titles
    assert plot_heldout_curve(out / "metrics.jsonl", tmp_path / "heldout.png").read_bytes()[:4] == b"\x89PNG"


def test_exported_encoders_load_from_a_checkpoint(tiny_demo, tmp_path):
    from avplug.engine.train import run_pretraining
    from avplug.models.export import load_encoders

    out = tmp_path / "run"
    cfg = load_config("demo.yaml", tiny_demo + TINY + ["SOLVER.MAX_STEPS", "1", "DATA.NUM_WORKERS", "0",
                                                       "EVAL.DISCREPANCY_PERIOD", "-1", "OUTPUT_DIR", str(out)])
    summary = run_pretraining(cfg)
    video, audio = load_encoders(summary["last_checkpoint"])
    assert video.pooled(torch.randn(2, 3, 8, 32, 32)).shape == (2, video.out_channels)
    assert audio.pooled(torch.randn(2, 1, 40, 51)).shape == (2, audio.out_channels)


def test_trainer_uses_a_sampler_plugin_selected_in_yaml(tiny_demo, tmp_path, python_exe, repo_root):
    """The examples/ sampler plugin, loaded through --plugin and selected in a YAML, drives training."""
    recipe = tmp_path / "show_level.yaml"
    recipe.write_text(f"_BASE_: {repo_root / 'configs' / 'demo.yaml'}\nSAMPLER:\n  NAME: ShowLevelSampler\n  K: 4\n"
                      "  SHOW_LEVEL:\n    MODE: pooled\n    INCLUDE_MOVIES: True\n")
    out = tmp_path / "run"
    opts = tiny_demo + TINY + ["SOLVER.MAX_STEPS", "2", "DATA.NUM_WORKERS", "0",
                                                           "EVAL.DISCREPANCY_PERIOD", "-1", "OUTPUT_DIR", str(out)]
    plugin_path = [str(repo_root / "examples" / "sampler_plugin"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(plugin_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python_exe, str(repo_root / "tools" / "launch.py"), "--cfg", str(recipe), "--plugin",
                           "avplug_example_sampler", *opts], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ShowLevelSampler" in proc.stdout + proc.stderr
    assert "avplug_example_sampler" in (out / "config.yaml").read_text()  # the resolved cfg names its plugin
    assert _final_weights(out)["step"] == 2
