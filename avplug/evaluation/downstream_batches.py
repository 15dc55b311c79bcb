"""Downstream clips through a model in batches: the device, mixed precision, loaders, view averages.

Shared by both protocols.  A test batch holds ``input [B, V, ...]``, the V = NUM_CLIPS x NUM_CROPS
(NUM_CLIPS for audio) views of each clip; :func:`view_averaged_outputs` runs the views in chunks and
averages a function of them per clip (the softmax predictions when testing, the pooled features
for the linear probe).  Mixed precision on a GPU follows ``SOLVER.AMP``.
"""
from __future__ import annotations

import contextlib
import logging

import torch
from torch.utils.data import DataLoader

from avplug.evaluation.clips import DownstreamClips
from avplug.evaluation.progress import Progress

logger = logging.getLogger(__name__)


def default_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(cfg, device: torch.device) -> tuple[contextlib.AbstractContextManager, bool]:
    """(autocast context, whether fp16 loss scaling is needed) for ``SOLVER.AMP`` on ``device``."""
    mode = cfg.SOLVER.AMP
    if device.type != "cuda" or mode == "off":
        return contextlib.nullcontext(), False
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype), mode == "fp16"


def clip_loader(dataset: DownstreamClips, cfg, batch_size: int, *, shuffle: bool, seed: int, device: torch.device) -> DataLoader:
    """A loader of ``dataset`` with ``EVAL.DOWNSTREAM.NUM_WORKERS`` workers; shuffled by ``seed``
    and dropping the last partial batch when ``shuffle`` (training)."""
    workers = cfg.EVAL.DOWNSTREAM.NUM_WORKERS
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=shuffle and len(dataset) >= batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
    )


def samples_per_test_batch(cfg, dataset: DownstreamClips) -> int:
    """Samples per test batch so that a batch holds about BATCH_SIZE views."""
    views = dataset.num_clips * (cfg.EVAL.DOWNSTREAM.NUM_CROPS if dataset.modality == "video" else 1)
    return max(1, cfg.EVAL.DOWNSTREAM.BATCH_SIZE // views)


@torch.no_grad()
def view_averaged_outputs(fn, loader: DataLoader, chunk: int, device: torch.device, amp, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn`` applied to every view of every sample, averaged over views: ``([N, D], labels [N])``.

    Batches of ``loader`` hold ``input [B, V, ...]``; the ``B * V`` views are run ``chunk`` at a time
    under the autocast context ``amp``; progress is logged as ``what``.
    """
    outputs, labels = [], []
    progress = Progress(logger, what, len(loader.dataset), "samples")
    for batch in loader:
        x = batch["input"]
        b, v = x.shape[:2]
        flat = x.flatten(0, 1)
        parts = []
        for i in range(0, flat.shape[0], chunk):
            with amp:
                parts.append(fn(flat[i : i + chunk].to(device, non_blocking=True)).float())
        outputs.append(torch.cat(parts).view(b, v, -1).mean(1).cpu())
        labels.append(batch["label"])
        progress.update(b)
    return torch.cat(outputs), torch.cat(labels)
