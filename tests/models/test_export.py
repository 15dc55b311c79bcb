"""Pretrained encoders out of a pretraining checkpoint, and the small exported file."""
from __future__ import annotations

import pytest
import torch

from avplug.config import ConfigError, load_config
from avplug.models import build_model
from avplug.models.export import CheckpointFormatError, export_encoders, load_encoders


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A pretraining checkpoint as the engine writes it (with extra keys the export ignores)."""
    cfg = load_config("demo", opts=["MODEL.AUDIO.WIDTH", "0.25"])
    torch.manual_seed(0)
    model = build_model(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "model_0000010.pth"
    torch.save({"model": model.state_dict(), "cfg": cfg.dump(), "optimizer": {"step": 10}, "iteration": 10}, path)
    return path, model, cfg


def _assert_same_weights(module, reference):
    state, expected = module.state_dict(), reference.state_dict()
    assert state.keys() == expected.keys()
    for key in state:
        torch.testing.assert_close(state[key], expected[key], rtol=0, atol=0)


def test_load_encoders_rebuilds_the_cfg_from_the_checkpoint(checkpoint):
    path, model, _ = checkpoint
    video, audio = load_encoders(path)
    assert (video.out_channels, audio.out_channels) == (64, 128)
    _assert_same_weights(video, model.video_backbone)
    _assert_same_weights(audio, model.audio_backbone)


def test_load_encoders_with_a_given_cfg(checkpoint):
    path, model, cfg = checkpoint
    video, _ = load_encoders(path, cfg)
    _assert_same_weights(video, model.video_backbone)
    wrong = load_config("demo")  # audio width 0.125, not 0.25
    with pytest.raises(RuntimeError, match=r"model_0000010\.pth: the audio_backbone weights do not fit .*WIDTH = 0\.125"):
        load_encoders(path, wrong)


def test_export_writes_only_the_encoders(checkpoint, tmp_path):
    path, model, _ = checkpoint
    out = export_encoders(path, tmp_path / "export" / "encoders.pth")
    data = torch.load(out, weights_only=True)
    assert set(data) == {"format", "video_backbone", "audio_backbone", "cfg"}
    assert out.stat().st_size < path.stat().st_size
    video, audio = load_encoders(out)
    _assert_same_weights(video, model.video_backbone)
    _assert_same_weights(audio, model.audio_backbone)
    clips = torch.randn(2, 3, 8, 32, 32)
    assert video.eval().pooled(clips).shape == (2, 64)
    assert audio.eval().pooled(torch.randn(2, 1, 40, 50)).shape == (2, 128)


def test_files_that_are_not_checkpoints(tmp_path, checkpoint):
    _, model, cfg = checkpoint
    plain = tmp_path / "weights.pth"
    torch.save(model.state_dict(), plain)
    with pytest.raises(CheckpointFormatError, match="weights.pth: expected a dict with a 'cfg'"):
        load_encoders(plain)
    heads_only = tmp_path / "heads.pth"
    torch.save({"model": model.video_head.state_dict(), "cfg": cfg.dump()}, heads_only)
    with pytest.raises(CheckpointFormatError, match="no keys starting with 'video_backbone.'"):
        load_encoders(heads_only)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointFormatError, match="garbage.pth: cannot be read"):
        load_encoders(garbage)
    bad_cfg = tmp_path / "bad_cfg.pth"
    torch.save({"model": model.state_dict(), "cfg": cfg.dump().replace("WIDTH: 0.25", "WIDTH: -1.0")}, bad_cfg)
    with pytest.raises(ConfigError, match="bad_cfg.pth: the stored cfg is not valid"):
        load_encoders(bad_cfg)
