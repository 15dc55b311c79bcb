"""AudioVisualModel built from cfgs: shapes, parameter counts, channels-last, bf16 autocast."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import registry
from avplug.config import load_config
from avplug.losses import CrossModalNCE
from avplug.models import AudioVisualModel, build_model


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def demo_cfg():
    return load_config("demo")


def _demo_batch(cfg, batch: int = 2):
    """Demo-shaped inputs, spatially smaller than the demo's crop to keep the tests cheap."""
    g = torch.Generator().manual_seed(0)
    video = torch.randn(batch, 3, cfg.DATA.SNIPPET_FRAMES, 32, 32, generator=g)
    audio = torch.randn(batch, 1, cfg.INPUT.AUDIO.MEL_BINS, 32, generator=g)
    return video, audio


def test_paper_model_parameter_counts():
    model = build_model(load_config("movie_tv"))
    head = 512 * 512 + 2 * 512 + 512 * 512 + 512  # conv1 (no bias), BatchNorm, conv2 (+ bias)
    assert _count(model.video_backbone) == 31_300_125
    assert _count(model.audio_backbone) == 11_170_240
    assert _count(model.video_head) == _count(model.audio_head) == head
    assert _count(model) == 31_300_125 + 11_170_240 + 2 * head
    model.eval()
    with torch.no_grad():
        z_video, z_audio = model(torch.randn(1, 3, 4, 32, 32), torch.randn(1, 1, 40, 64))
    assert z_video.shape == z_audio.shape == (1, 512)


def test_tiny_model_forward_backward(demo_cfg):
    torch.manual_seed(0)
    model = build_model(demo_cfg)
    video, audio = _demo_batch(demo_cfg, batch=3)
    z_video, z_audio = model(video, audio)
    assert z_video.shape == z_audio.shape == (3, demo_cfg.MODEL.HEAD.DIM)
    CrossModalNCE()(z_video, z_audio).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.embed_video(video).shape == (3, 64)
    with pytest.raises(ValueError, match="differ in size"):
        model(video, audio[:2])


def test_channels_last_3d_conversion_keeps_the_function(demo_cfg):
    torch.manual_seed(0)
    model = build_model(demo_cfg).eval()
    video, audio = _demo_batch(demo_cfg)
    with torch.no_grad():
        expected = model(video, audio)
    assert model.to(memory_format=torch.channels_last_3d) is model
    for m in model.video_backbone.modules():
        if isinstance(m, nn.Conv3d):
            assert m.weight.is_contiguous(memory_format=torch.channels_last_3d)
    for m in model.audio_backbone.modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = model(video.contiguous(memory_format=torch.channels_last_3d), audio)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # Device/dtype arguments still work alongside (and without) a memory format.
    model.to(torch.float64, memory_format=torch.channels_last)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    model.to(torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_bf16_autocast_training_step(demo_cfg):
    torch.manual_seed(0)
    model = build_model(demo_cfg).to(memory_format=torch.channels_last_3d)
    video, audio = _demo_batch(demo_cfg, batch=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_video, z_audio = model(video, audio)
        loss = CrossModalNCE()(z_video, z_audio)
    assert z_video.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_backbone_without_out_channels_is_rejected(monkeypatch, demo_cfg):
    def no_channels(node):
        return nn.Identity()

    monkeypatch.setitem(registry.BACKBONES._obj_map, "NoChannels", no_channels)
    cfg = demo_cfg.clone()
    cfg.defrost()
    cfg.MODEL.VIDEO.NAME = "NoChannels"
    with pytest.raises(TypeError, match="MODEL.VIDEO.NAME = 'NoChannels'.*out_channels"):
        build_model(cfg)


def test_model_is_assembled_from_the_registries(demo_cfg):
    model = build_model(demo_cfg)
    assert isinstance(model, AudioVisualModel)
    assert type(model.video_backbone).__name__ == "R2Plus1D"
    assert type(model.audio_backbone).__name__ == "AudioResNet"
    assert model.video_head.in_channels == model.video_backbone.out_channels == 64
    assert model.audio_head.in_channels == model.audio_backbone.out_channels == 64
