"""ConvProjectionHead is the paper's conv(k=1) -> BN -> ReLU -> conv(k=1) -> global average pool."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import registry
from avplug.config import load_config
from avplug.models import ConvProjectionHead


def _explicit_conv_head(head: ConvProjectionHead, rank: int) -> nn.Sequential:
    """The same head written with Conv{2,3}d kernel 1 and BatchNorm{2,3}d, sharing its weights."""
    conv, norm = {4: (nn.Conv2d, nn.BatchNorm2d), 5: (nn.Conv3d, nn.BatchNorm3d)}[rank]
    ones = (1,) * (rank - 2)
    conv1 = conv(head.in_channels, head.hidden_dim, 1, bias=False)
    bn = norm(head.hidden_dim)
    conv2 = conv(head.hidden_dim, head.dim, 1)
    with torch.no_grad():
        conv1.weight.copy_(head.conv1.weight.view(*head.conv1.weight.shape, *ones))
        bn.weight.copy_(head.norm.weight)
        bn.bias.copy_(head.norm.bias)
        conv2.weight.copy_(head.conv2.weight.view(*head.conv2.weight.shape, *ones))
        conv2.bias.copy_(head.conv2.bias)
    return nn.Sequential(conv1, bn, nn.ReLU(), conv2, nn.Flatten(2))


@pytest.mark.parametrize("shape", [(4, 6, 2, 3, 3), (4, 6, 3, 5)])
def test_equals_kernel1_convolutions_with_batchnorm_then_pooling(shape):
    torch.manual_seed(0)
    head = ConvProjectionHead(6, 5, hidden_dim=7)
    with torch.no_grad():
        head.norm.weight.uniform_(0.5, 1.5)
        head.norm.bias.uniform_(-0.5, 0.5)
    explicit = _explicit_conv_head(head, len(shape))
    x = torch.randn(*shape, dtype=torch.float32)
    # Training mode: batch statistics over the batch and every position, running averages updated.
    out = head(x)
    expected = explicit(x).mean(dim=2)
    assert out.shape == (shape[0], 5)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head.norm.running_mean, explicit[1].running_mean)
    torch.testing.assert_close(head.norm.running_var, explicit[1].running_var)
    head.eval()
    explicit.eval()
    torch.testing.assert_close(head(x), explicit(x).mean(dim=2), rtol=1e-5, atol=1e-5)


def test_hidden_dim_defaults_to_in_channels_and_channels_last_input():
    head = ConvProjectionHead(8, 3)
    assert head.hidden_dim == 8
    x = torch.randn(2, 8, 2, 4, 4)
    head.eval()
    torch.testing.assert_close(head(x.contiguous(memory_format=torch.channels_last_3d)), head(x))


def test_rejects_a_feature_map_of_other_channels():
    with pytest.raises(ValueError, match=r"\[B, 8, \.\.\.\]"):
        ConvProjectionHead(8, 3)(torch.randn(2, 7, 4, 4))
    with pytest.raises(ValueError, match="at least one spatial axis"):
        ConvProjectionHead(8, 3)(torch.randn(2, 8))


def test_built_from_the_cfg():
    cfg = load_config("demo", opts=["MODEL.HEAD.HIDDEN_DIM", "32"])
    head = registry.build(registry.HEADS, cfg.MODEL.HEAD, 16, expected_type=nn.Module)
    assert isinstance(head, ConvProjectionHead)
    assert (head.in_channels, head.hidden_dim, head.dim) == (16, 32, 64)
    assert head(torch.randn(3, 16, 2, 2)).shape == (3, 64)
    paper = registry.build(registry.HEADS, load_config("movie_tv").MODEL.HEAD, 512)
    assert (paper.hidden_dim, paper.dim) == (512, 512)
    assert sum(p.numel() for p in paper.parameters()) == 512 * 512 + 2 * 512 + 512 * 512 + 512
