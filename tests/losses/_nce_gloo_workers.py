"""Worker processes for the distributed CrossModalNCE tests (spawned by test_nce.py).

Kept out of the test module so that spawned children can import it by a plain name: test_nce.py
puts this folder on sys.path, which spawn passes on to the children.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from avplug.losses import CrossModalNCE


class TinyTwoTower(nn.Module):
    """A linear "video encoder" and a linear "audio encoder" standing in for the real towers."""

    def __init__(self, video_features: int = 5, audio_features: int = 3, dim: int = 4) -> None:
        super().__init__()
        self.video = nn.Linear(video_features, dim)
        self.audio = nn.Linear(audio_features, dim)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.video(video), self.audio(audio)


def single_process_reference(case: dict) -> dict:
    """Loss and gradients on the whole batch, computed without a process group."""
    z_video = case["z_video"].clone().requires_grad_(True)
    z_audio = case["z_audio"].clone().requires_grad_(True)
    loss = CrossModalNCE(case["normalize"], case["temperature"])(z_video, z_audio)
    loss.backward()
    model = TinyTwoTower().double()
    model.load_state_dict(case["model_state"])
    model_loss = CrossModalNCE(case["normalize"], case["temperature"])(*model(case["x_video"], case["x_audio"]))
    model_loss.backward()
    return {
        "loss": loss.detach(),
        "grad_video": z_video.grad,
        "grad_audio": z_audio.grad,
        "model_loss": model_loss.detach(),
        "param_grads": {name: p.grad.clone() for name, p in model.named_parameters()},
    }


def run(rank: int, world: int, port: int, cases: list[dict], expected: list[dict]) -> None:
    """Check every case on this rank's rows against the single-process reference."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for case, ref in zip(cases, expected):
            _check_embeddings(rank, world, case, ref)
            _check_ddp(rank, world, case, ref)
    finally:
        dist.destroy_process_group()


def _rows(tensor: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    rows = tensor.shape[0] // world
    return tensor[rank * rows : (rank + 1) * rows]


def _check_embeddings(rank: int, world: int, case: dict, ref: dict) -> None:
    z_video = _rows(case["z_video"], rank, world).clone().requires_grad_(True)
    z_audio = _rows(case["z_audio"], rank, world).clone().requires_grad_(True)
    loss = CrossModalNCE(case["normalize"], case["temperature"])(z_video, z_audio)
    torch.testing.assert_close(loss.detach(), ref["loss"], rtol=1e-12, atol=1e-12)
    loss.backward()
    # The documented convention: embedding gradients are world_size x the single-process ones
    # (DDP's average over ranks brings parameter gradients back to the single-process values).
    torch.testing.assert_close(z_video.grad, world * _rows(ref["grad_video"], rank, world), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z_audio.grad, world * _rows(ref["grad_audio"], rank, world), rtol=1e-10, atol=1e-12)


def _check_ddp(rank: int, world: int, case: dict, ref: dict) -> None:
    model = TinyTwoTower().double()
    model.load_state_dict(case["model_state"])
    ddp = DistributedDataParallel(model)
    loss = CrossModalNCE(case["normalize"], case["temperature"])(
        *ddp(_rows(case["x_video"], rank, world), _rows(case["x_audio"], rank, world))
    )
    torch.testing.assert_close(loss.detach(), ref["model_loss"], rtol=1e-12, atol=1e-12)
    loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(
            param.grad, ref["param_grads"][name], rtol=1e-10, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}"
        )
