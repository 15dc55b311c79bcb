"""Evaluation recipes take the checkpoint's input settings unless the user set them explicitly."""
from __future__ import annotations

import os
import subprocess

import pytest
import torch

from avplug.config import CONFIG_DIR, ConfigError, load_config
from avplug.evaluation.checkpoint_inputs import describe_inherited, explicit_keys, inherit_checkpoint_inputs
from avplug.evaluation.downstream_classifier import check_front_end

DEMO_AUDIO = {"DATA.AUDIO_RATE": (48000, 16000), "INPUT.AUDIO.MEL_BINS": (96, 40), "INPUT.AUDIO.N_FFT": (2048, 512),
              "INPUT.AUDIO.HOP": (512, 256)}
DEMO_VIDEO_SIZE = {"EVAL.DOWNSTREAM.CROP": (158, 40), "EVAL.DOWNSTREAM.SCALE_JITTER": ((181, 226), (46, 57))}


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    """A file holding what a demo pretraining checkpoint stores beside its weights: the resolved cfg."""
    path = tmp_path_factory.mktemp("ckpt") / "model_0000010.pth"
    torch.save({"model": {}, "cfg": load_config("demo.yaml").dump(), "step": 10}, path)
    return str(path)


def evaluation_cfg(recipe, opts, weights):
    cfg = load_config(recipe, opts)
    return inherit_checkpoint_inputs(cfg, weights, explicit_keys(recipe, opts))


def test_esc50_recipe_takes_the_demo_checkpoints_audio_front_end(demo_checkpoint):
    cfg, changed = evaluation_cfg("eval_esc50.yaml", ["EVAL.DOWNSTREAM.ROOT", "/data/esc50"], demo_checkpoint)
    assert changed == {**DEMO_AUDIO, **DEMO_VIDEO_SIZE}
    assert (cfg.DATA.AUDIO_RATE, cfg.INPUT.AUDIO.MEL_BINS, cfg.INPUT.AUDIO.N_FFT, cfg.INPUT.AUDIO.HOP) == (16000, 40, 512, 256)
    assert cfg.EVAL.DOWNSTREAM.CLIP_SECONDS == 3.0 and cfg.EVAL.DOWNSTREAM.EPOCHS == 200  # the protocol's own
    assert cfg.is_frozen()
    check_front_end(cfg, demo_checkpoint, "audio")  # passes: the encoder sees its own front end
    line = describe_inherited(demo_checkpoint, changed)
    assert line.startswith(f"input settings taken from the checkpoint {demo_checkpoint}: DATA.AUDIO_RATE 16000 (recipe: 48000), ")


def test_a_command_line_override_wins_and_a_mismatch_is_refused_naming_it(demo_checkpoint):
    opts = ["INPUT.AUDIO.MEL_BINS", "64", "EVAL.DOWNSTREAM.CROP", "64"]
    cfg, changed = evaluation_cfg("eval_esc50.yaml", opts, demo_checkpoint)
    assert cfg.INPUT.AUDIO.MEL_BINS == 64 and cfg.DATA.AUDIO_RATE == 16000
    assert cfg.EVAL.DOWNSTREAM.CROP == 64 and cfg.EVAL.DOWNSTREAM.SCALE_JITTER == (181, 226)  # the size group is the user's
    assert set(changed) == set(DEMO_AUDIO) - {"INPUT.AUDIO.MEL_BINS"}
    with pytest.raises(ConfigError, match=r"INPUT.AUDIO.MEL_BINS = 64 but the checkpoint was pretrained with 40\. Drop"):
        check_front_end(cfg, demo_checkpoint, "audio")


def test_keys_set_in_the_recipe_file_win_but_not_those_of_its_base(demo_checkpoint, tmp_path):
    recipe = tmp_path / "my_eval.yaml"
    recipe.write_text(f"_BASE_: {CONFIG_DIR / 'eval_ucf101.yaml'}\nDATA:\n  AUDIO_RATE: 16000\nINPUT:\n  VIDEO:\n"
                      "    MEAN: (0.5, 0.5, 0.5)\nEVAL:\n  DOWNSTREAM:\n    SCALE_JITTER: (170, 200)\n")
    cfg, changed = evaluation_cfg(str(recipe), [], demo_checkpoint)
    assert cfg.INPUT.VIDEO.MEAN == (0.5, 0.5, 0.5) and cfg.EVAL.DOWNSTREAM.CROP == 158  # explicit in the file
    assert changed == {k: v for k, v in DEMO_AUDIO.items() if k != "DATA.AUDIO_RATE"}  # from eval_ucf101's base: inherited
    assert explicit_keys(str(recipe), ["A.B", "1"]) >= {"DATA.AUDIO_RATE", "INPUT.VIDEO.MEAN", "A.B"}
    assert "INPUT.AUDIO.MEL_BINS" not in explicit_keys(str(recipe), [])


def test_random_init_changes_nothing_and_the_demo_recipes_keep_their_audio(demo_checkpoint):
    """eval_demo_esc50.yaml already has the demo's front end (its base is demo.yaml): only the video
    size, unused by an audio dataset, follows the checkpoint; eval_demo.yaml sets its size itself."""
    cfg = load_config("eval_demo_esc50.yaml")
    assert inherit_checkpoint_inputs(cfg, "none", set()) == (cfg, {})
    assert inherit_checkpoint_inputs(cfg, demo_checkpoint, explicit_keys("eval_demo_esc50.yaml", []))[1] == DEMO_VIDEO_SIZE
    ucf = load_config("eval_demo.yaml")
    assert inherit_checkpoint_inputs(ucf, demo_checkpoint, explicit_keys("eval_demo.yaml", [])) == (ucf, {})
    assert "match the checkpoint" in describe_inherited(demo_checkpoint, {})


def test_evaluate_tool_refuses_an_explicit_front_end_that_differs_in_one_line(demo_checkpoint, esc50_layout, tmp_path,
                                                                              repo_root, python_exe):
    root = esc50_layout(tmp_path / "ESC-50-master")
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [python_exe, str(repo_root / "tools" / "evaluate.py"), "--cfg", "eval_esc50.yaml", "--weights", demo_checkpoint,
         "--protocol", "linear", "EVAL.DOWNSTREAM.ROOT", str(root), "INPUT.AUDIO.MEL_BINS", "64", "OUTPUT_DIR", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("evaluate.py:")]  # torch warns on import
    assert line.startswith(f"evaluate.py: {demo_checkpoint}: the audio input of this cfg differs from pretraining: "
                           "INPUT.AUDIO.MEL_BINS = 64 but the checkpoint was pretrained with 40. Drop")
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "DATA.AUDIO_RATE 16000 (recipe: 48000)" in log and "INPUT.AUDIO.MEL_BINS 40" not in log
