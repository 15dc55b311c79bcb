"""The paper-sized recipe (configs/movie_tv.yaml) builds and takes one optimizer step on CPU."""
import torch
from torch import nn

import registry
from avplug.config import load_config
from avplug.engine.train import autocast_dtype, build_optimizer
from avplug.models import build_model


def test_movie_tv_recipe_one_optimizer_step():
    torch.manual_seed(0)
    cfg = load_config("movie_tv.yaml")
    model = build_model(cfg)
    loss_fn = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module)
    optimizer = build_optimizer(cfg, model.parameters())
    assert isinstance(optimizer, torch.optim.Adam)
    assert autocast_dtype(cfg, torch.device("cpu")) is None  # "auto": bf16 on GPU only

    frames = cfg.DATA.SNIPPET_FRAMES
    crop = cfg.INPUT.VIDEO.CROP
    mel_frames = int(cfg.DATA.SNIPPET_SECONDS * cfg.DATA.AUDIO_RATE) // cfg.INPUT.AUDIO.HOP + 1
    video = torch.randn(2, 3, frames, crop, crop)
    audio = torch.randn(2, 1, cfg.INPUT.AUDIO.MEL_BINS, mel_frames)
    assert (video.shape, audio.shape) == ((2, 3, 16, 158, 158), (2, 1, 96, 301))

    before = [p.detach().clone() for p in model.parameters()]
    z_video, z_audio = model(video, audio)
    assert z_video.shape == z_audio.shape == (2, 512)
    loss = loss_fn(z_video, z_audio)
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert changed > 0.9 * len(before)
