"""SOLVER.CHANNELS_LAST / CUDNN_BENCHMARK / FUSED_OPTIMIZER / COMPILE: what they do, and that they
change nothing but the speed (same step on tiny models, same checkpoints)."""
import pytest
import torch
from torch import nn

import registry
from avplug.config import load_config
from avplug.engine.train import build_optimizer, compile_model, prepare_model
from avplug.models import build_model

torch.set_num_threads(1)

TINY_MODEL = ["MODEL.VIDEO.WIDTH", "0.0625", "MODEL.AUDIO.WIDTH", "0.0625", "MODEL.HEAD.DIM", "8",
              "SOLVER.BATCH_SIZE", "4", "SAMPLER.K", "2"]


def _cfg(*opts):
    return load_config("demo.yaml", TINY_MODEL + list(opts))


def _model(cfg, dtype=torch.float32):
    torch.manual_seed(0)
    model = build_model(cfg).to(dtype)
    prepare_model(cfg, model, torch.device("cpu"))
    return model


def _gradients(cfg, video, audio):
    model = _model(cfg, video.dtype)
    loss = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module)(*model(video, audio))
    loss.backward()
    return model, loss.detach(), {k: p.grad for k, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
def test_fused_optimizer_key_selects_the_fused_implementation(name):
    params = [nn.Parameter(torch.randn(3))]
    assert build_optimizer(_cfg("SOLVER.OPTIMIZER", name, "SOLVER.FUSED_OPTIMIZER", "True"), params).defaults["fused"]
    assert not build_optimizer(_cfg("SOLVER.OPTIMIZER", name), params).defaults["fused"]


def test_defaults_leave_the_step_as_it_was():
    cfg = _cfg()
    assert not (cfg.SOLVER.CHANNELS_LAST or cfg.SOLVER.CUDNN_BENCHMARK or cfg.SOLVER.FUSED_OPTIMIZER or cfg.SOLVER.COMPILE)
    model = build_model(cfg)
    prepare_model(cfg, model, torch.device("cpu"))
    assert model.video_backbone.stem[0].weight.is_contiguous()
    assert compile_model(cfg, model) is model


def test_channels_last_gives_the_same_loss_and_gradients():
    """A channels-last model computes the same loss and gradients, keeps its weights in channels-last
    layout, and its state dict loads into a plain model.  In float64: in float32 the two layouts'
    different summation orders can flip a ReLU whose input is within rounding of 0, which in a model
    this small visibly changes the gradients of everything below it."""
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(4, 3, 8, 32, 32, generator=generator, dtype=torch.float64)
    audio = torch.randn(4, 1, 40, 51, generator=generator, dtype=torch.float64)
    _, loss, grads = _gradients(_cfg(), video, audio)
    fast, fast_loss, fast_grads = _gradients(_cfg("SOLVER.CHANNELS_LAST", "True"), video, audio)
    assert fast.video_backbone.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert fast.audio_backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast_loss, loss, rtol=1e-10, atol=0)
    for key, grad in grads.items():
        torch.testing.assert_close(fast_grads[key], grad, rtol=0, atol=1e-9 * float(grad.abs().max()), msg=key)
    reloaded = build_model(_cfg())
    reloaded.load_state_dict(fast.state_dict())
    assert reloaded.video_backbone.stem[0].weight.is_contiguous()


def test_fused_adam_takes_the_same_steps():
    """Fused and default Adam: the same weights after two steps (in float64, as above)."""
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(4, 3, 8, 32, 32, generator=generator, dtype=torch.float64)
    audio = torch.randn(4, 1, 40, 51, generator=generator, dtype=torch.float64)
    weights = []
    for cfg in (_cfg(), _cfg("SOLVER.FUSED_OPTIMIZER", "True")):
        model = _model(cfg, torch.float64)
        loss_fn = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module)
        optimizer = build_optimizer(cfg, model.parameters())
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(*model(video, audio)).backward()
            optimizer.step()
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=1e-9, atol=1e-12, msg=key)


def test_compile_wraps_the_model_and_checkpoints_see_through_it():
    cfg = _cfg("SOLVER.COMPILE", "True")
    model = build_model(cfg)
    compiled = compile_model(cfg, model)  # compilation itself happens lazily, at the first call
    assert compiled is not model and compiled._orig_mod is model
    assert compiled.state_dict().keys() != model.state_dict().keys()  # why the engine saves model, not compiled
