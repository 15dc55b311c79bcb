"""R(2+1)D-18 and the audio ResNet-18 against torchvision's definitions; width multiplier; builders."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import registry
from avplug.config import load_config
from avplug.models import create_audio_resnet18, create_r2plus1d_18
from avplug.models.r2plus1d import block_midplanes


def _count(module: nn.Module, skip_prefix: str | None = None) -> int:
    return sum(p.numel() for name, p in module.named_parameters() if not (skip_prefix and name.startswith(skip_prefix)))


def _without_fc(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@pytest.fixture(scope="module")
def torchvision_r2plus1d():
    torch.manual_seed(0)
    return torchvision.models.video.r2plus1d_18().eval()


@pytest.fixture(scope="module")
def torchvision_resnet18_one_channel():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model.eval()


def test_r2plus1d_18_full_size_is_torchvisions_without_fc(torchvision_r2plus1d):
    model = create_r2plus1d_18()
    assert _count(model) == _count(torchvision_r2plus1d, skip_prefix="fc.") == 31_300_125
    assert model.out_channels == 512
    reference = _without_fc(torchvision_r2plus1d.state_dict())
    ours = model.state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}
    # Same weights, same function: torchvision's trunk (everything before avgpool/fc).
    model.load_state_dict(reference, strict=True)
    model.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = torchvision_r2plus1d.stem(x)
        for layer in (torchvision_r2plus1d.layer1, torchvision_r2plus1d.layer2, torchvision_r2plus1d.layer3, torchvision_r2plus1d.layer4):
            expected = layer(expected)
        features = model(x)
        pooled = model.pooled(x)
    assert features.shape == (1, 512, 1, 2, 2)
    torch.testing.assert_close(features, expected)
    assert pooled.shape == (1, 512)
    torch.testing.assert_close(pooled, expected.mean(dim=(2, 3, 4)))


def test_audio_resnet18_full_size_is_torchvisions_on_one_channel(torchvision_resnet18_one_channel):
    tv = torchvision_resnet18_one_channel
    model = create_audio_resnet18()
    assert _count(model) == _count(tv, skip_prefix="fc.") == 11_170_240
    assert model.out_channels == 512
    model.load_state_dict(_without_fc(tv.state_dict()), strict=True)
    model.eval()
    mel = torch.randn(1, 1, 40, 64)  # [B, 1, n_mels, frames]
    with torch.no_grad():
        expected = tv.maxpool(tv.relu(tv.bn1(tv.conv1(mel))))
        for layer in (tv.layer1, tv.layer2, tv.layer3, tv.layer4):
            expected = layer(expected)
        features = model(mel)
    assert features.shape == (1, 512, 2, 2)
    torch.testing.assert_close(features, expected)
    assert model.pooled(mel).shape == (1, 512)


def test_midplanes_follow_torchvision_formula():
    assert block_midplanes(64, 64) == 144
    assert block_midplanes(64, 128) == 230
    assert block_midplanes(512, 512) == 1152
    model = create_r2plus1d_18(width=0.125)
    first = model.layer2[0].conv1[0]  # Conv2Plus1D of the strided block, 8 -> 16 channels
    assert first[0].out_channels == block_midplanes(8, 16)
    assert model.layer2[0].conv2[0][0].out_channels == block_midplanes(8, 16)  # both convs of a block share it
    assert model.stem[0].out_channels == 6  # round(45 * 0.125)


@pytest.mark.parametrize("width", [0.125, 0.25])
def test_width_multiplier_scales_channels(width):
    video = create_r2plus1d_18(width=width)
    audio = create_audio_resnet18(width=width)
    assert video.out_channels == audio.out_channels == round(512 * width)
    assert [getattr(video, f"layer{i}")[-1].conv2[1].num_features for i in range(1, 5)] == [
        round(c * width) for c in (64, 128, 256, 512)
    ]
    assert _count(video) < 31_300_125 * width and _count(audio) < 11_170_240 * width


def test_tiny_backbones_forward_backward():
    torch.manual_seed(0)
    video = create_r2plus1d_18(width=0.125)
    audio = create_audio_resnet18(width=0.125)
    v = torch.randn(2, 3, 8, 32, 32)
    a = torch.randn(2, 1, 40, 50)
    loss = video.pooled(v).square().mean() + audio.pooled(a).square().mean()
    loss.backward()
    for module in (video, audio):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    assert video(v).shape == (2, 64, 1, 2, 2)
    assert audio(a).shape == (2, 64, 2, 2)


def test_norm_and_activation_are_callables():
    video = create_r2plus1d_18(width=0.125, norm=lambda c: nn.GroupNorm(1, c), activation=nn.SiLU)
    assert not any(isinstance(m, (nn.BatchNorm3d, nn.ReLU)) for m in video.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in video.modules())
    assert video(torch.randn(1, 3, 4, 16, 16)).shape == (1, 64, 1, 1, 1)
    audio = create_audio_resnet18(width=0.125, input_channels=2, activation=nn.GELU)
    assert audio(torch.randn(2, 2, 32, 32)).shape == (2, 64, 1, 1)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        create_r2plus1d_18(width=0.125)(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="mel image"):
        create_audio_resnet18(width=0.125)(torch.randn(1, 1, 4, 16, 16))


def test_registered_builders_read_the_width_from_the_cfg():
    cfg = load_config("demo", opts=["MODEL.VIDEO.WIDTH", "0.25"])
    video = registry.build(registry.BACKBONES, cfg.MODEL.VIDEO, expected_type=nn.Module)
    audio = registry.build(registry.BACKBONES, cfg.MODEL.AUDIO, expected_type=nn.Module)
    assert (video.out_channels, audio.out_channels) == (128, 64)
    assert {"R2Plus1D18", "AudioResNet18"} <= set(registry.BACKBONES.names())
