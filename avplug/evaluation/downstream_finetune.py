"""The fine-tuning protocol (paper section 7.2): every parameter of the classifier trained, then tested.

SGD (momentum ``EVAL.DOWNSTREAM.MOMENTUM``, weight decay WEIGHT_DECAY, batch BATCH_SIZE); the
learning rate warms up linearly from WARMUP_START_LR to BASE_LR over WARMUP_EPOCHS, then follows
a cosine to 0 at EPOCHS (updated every step).  One random clip per video and epoch
(:mod:`avplug.evaluation.clips`).  Mixed precision on a GPU follows ``SOLVER.AMP``.  A checkpoint
is written every epoch into ``<output dir>/checkpoints`` and a rerun (a requeued job) resumes from
it; each epoch's randomness is seeded by (SEED, epoch), so a resumed run draws what the
uninterrupted one would have.  One line per epoch goes to ``<output dir>/metrics.jsonl``
(``epoch``, ``loss``, ``lr``, ``clips_per_s``).  Testing averages the softmax predictions of every
clip's views (:func:`avplug.evaluation.downstream_batches.view_averaged_outputs`).
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from avplug.engine.checkpoint import Checkpointer
from avplug.engine.log import format_duration
from avplug.engine.schedule import warmup_cosine_lr
from avplug.evaluation.clips import DownstreamClips
from avplug.evaluation.downstream_batches import autocast_for, clip_loader, samples_per_test_batch, view_averaged_outputs
from avplug.evaluation.downstream_classifier import DownstreamClassifier
from avplug.evaluation.progress import Progress

logger = logging.getLogger(__name__)


def finetune(
    cfg,
    classifier: DownstreamClassifier,
    train_set: DownstreamClips,
    test_set: DownstreamClips,
    output_dir: Path,
    device: torch.device,
    *,
    fingerprint: str,
) -> torch.Tensor:
    """Fine-tune ``classifier`` on ``train_set``; returns its view-averaged test probabilities ``[N, C]``.

    Resumes from ``output_dir/checkpoints`` when it holds a checkpoint of the same ``fingerprint``
    (cfg, weights and split); a checkpoint of another run there is an error.
    """
    e = cfg.EVAL.DOWNSTREAM
    classifier.to(device)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=e.WARMUP_START_LR, momentum=e.MOMENTUM, weight_decay=e.WEIGHT_DECAY)
    amp, fp16 = autocast_for(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    batch_size = min(e.BATCH_SIZE, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    lr_at = functools.partial(
        warmup_cosine_lr, total_steps=e.EPOCHS * steps_per_epoch, warmup_steps=round(e.WARMUP_EPOCHS * steps_per_epoch),
        start_lr=e.WARMUP_START_LR, base_lr=e.BASE_LR,
    )
    checkpointer = Checkpointer(output_dir / "checkpoints", keep=2, model=classifier, optimizer=optimizer, scaler=scaler)
    start_epoch = _resume(checkpointer, fingerprint, output_dir, e.EPOCHS)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, e.EPOCHS):
        torch.manual_seed(cfg.SEED * 100_003 + epoch)  # augmentation draws in the main process
        loader = clip_loader(train_set, cfg, batch_size, shuffle=True, seed=cfg.SEED * 100_003 + epoch, device=device)
        classifier.train()
        progress = Progress(logger, f"epoch {epoch + 1}/{e.EPOCHS}", steps_per_epoch, "steps", every_s=60.0, log_end=False)
        record = _train_epoch(classifier, optimizer, scaler, amp, loader, device, epoch, steps_per_epoch, lr_at, progress)
        done = epoch + 1
        eta = (time.perf_counter() - run_start) / (done - start_epoch) * (e.EPOCHS - done)
        logger.info(
            "epoch %d/%d loss %.4f lr %.4g %.1f clips/s ETA %s",
            done, e.EPOCHS, record["loss"], record["lr"], record["clips_per_s"], format_duration(eta),
        )
        with (output_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        checkpointer.save(done, {"epoch": done, "fingerprint": fingerprint})
    classifier.eval()
    test_loader = clip_loader(test_set, cfg, samples_per_test_batch(cfg, test_set), shuffle=False, seed=cfg.SEED, device=device)
    probs, _ = view_averaged_outputs(
        lambda x: classifier(x).softmax(-1), test_loader, max(1, e.BATCH_SIZE), device, amp, "testing (views averaged)"
    )
    return probs


def _resume(checkpointer: Checkpointer, fingerprint: str, output_dir: Path, epochs: int) -> int:
    """Restore the newest checkpoint of this run into the checkpointables; the epoch to start from."""
    found = checkpointer.load_latest()
    if found is None:
        return 0
    path, state = found
    if state.get("fingerprint") != fingerprint:
        raise RuntimeError(
            f"{path} belongs to another evaluation run (other cfg, weights or split); "
            f"use another OUTPUT_DIR or remove {output_dir}"
        )
    checkpointer.restore(state, path)
    start_epoch = int(state["epoch"])
    logger.info("resuming fine-tuning from %s (epoch %d of %d)", path, start_epoch, epochs)
    return start_epoch


def _train_epoch(
    classifier: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: contextlib.AbstractContextManager,
    loader: DataLoader,
    device: torch.device,
    epoch: int,
    steps_per_epoch: int,
    lr_at: Callable[[int], float],
    progress: Progress,
) -> dict[str, float]:
    """One pass over ``loader`` (the learning rate set by ``lr_at(step)`` before every step); the
    epoch's metrics record: ``epoch`` (1-based), mean ``loss``, last ``lr`` and ``clips_per_s``."""
    loss_fn = nn.CrossEntropyLoss()
    epoch_start, losses, seen = time.perf_counter(), [], 0
    for i, batch in enumerate(loader):
        lr = lr_at(epoch * steps_per_epoch + i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = batch["input"].to(device, non_blocking=True)
        y = batch["label"].to(device, non_blocking=True)
        with amp:
            loss = loss_fn(classifier(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fine-tuning loss is {loss.item()} at epoch {epoch + 1}, step {i} (lr {lr:.3g})")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())
        seen += x.shape[0]
        progress.update(1)
    elapsed = time.perf_counter() - epoch_start
    return {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": lr, "clips_per_s": seen / max(elapsed, 1e-9)}
