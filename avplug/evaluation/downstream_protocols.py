"""Downstream protocols: fine-tuning (the paper) and a linear probe on frozen features.

One official split (or fold) is one call, :func:`run_split`, which also writes
``OUTPUT_DIR/split<N>/result.json``; :func:`aggregate` combines the splits' results into mean,
standard deviation and intervals, and :func:`run_evaluation` does both for the splits of a cfg and
writes ``results.json`` and ``results.md`` (:func:`write_summary`; what ``tools/evaluate.py``
runs).  A Slurm array runs one :func:`run_split` per task, then ``aggregate`` over
:func:`load_split_result` of every split and :func:`write_summary`.  :func:`compare_probes` says
whether one encoder (pretrained) is ahead of another (random init) on the same test clips.

The classifier is the pretrained backbone (``load_encoders`` of a checkpoint; or randomly
initialized for the baseline, ``weights`` "none") + dropout (``EVAL.DOWNSTREAM.DROPOUT``) + a
linear layer on the backbone's ``pooled`` features.  The projection heads are not used.

``EVAL.DOWNSTREAM.PROTOCOL``:

- ``"finetune"`` (paper section 7.2): every parameter trained with SGD (momentum MOMENTUM, weight
  decay WEIGHT_DECAY, batch BATCH_SIZE); the learning rate warms up linearly from WARMUP_START_LR
  to BASE_LR over WARMUP_EPOCHS, then follows a cosine to 0 at EPOCHS (updated every step).  One
  random clip per video and epoch (:mod:`avplug.evaluation.clips`).  Mixed precision on a GPU
  follows ``SOLVER.AMP``.  A checkpoint is written every epoch into ``<split dir>/checkpoints``
  and a rerun (a requeued job) resumes from it; each epoch's randomness is seeded by
  (SEED, epoch), so a resumed run draws what the uninterrupted one would have.
- ``"linear"``: the backbone frozen in eval mode; the pooled features of every video, averaged
  over the test-time views (NUM_CLIPS x NUM_CROPS), for the training and the test set alike; a
  linear layer is fitted on the standardized training features by full-batch L-BFGS
  (strong-Wolfe line search, at most LINEAR_MAX_ITER iterations) on the cross-entropy plus
  ``WEIGHT_DECAY / 2 * ||W||^2``.  Deterministic and fast.  A clip's frozen features do not
  depend on the split, so they live in a :class:`FeatureCache` (in memory, one per encoder and
  cfg) that :func:`run_evaluation` shares between the splits: each clip is decoded and encoded
  once per dataset, and one classifier is fitted per split.  Test predictions are the linear
  layer applied to the view-averaged features (the same as averaging the views' logits).

Testing (both protocols): the softmax predictions of the NUM_CLIPS x NUM_CROPS views (NUM_CLIPS
for audio) are averaged; top-1 and top-5 (top-min(5, classes)) accuracy are fractions in [0, 1].

Intervals (every result carries its sample size, its chance level ``1 / num_classes`` and a 95%
interval):

- one split: the Wilson score interval of the proportion of its ``num_test`` test clips that are
  right (``top1_ci95``, ``top5_ci95``);
- the mean over splits: a cluster bootstrap (:mod:`avplug.evaluation.intervals`,
  ``DEFAULT_REPLICATES`` draws, seeded, so the same results give the same interval) over the
  *groups* of test clips, the recordings clips share (``group_of`` of the dataset: a UCF101 group,
  an HMDB51 source video, an ESC-50 source file): each draw resamples the groups with replacement
  and weights every split's clips by their group's count, so a clip tested in several splits
  (HMDB51) is drawn once for all of them and clips of one recording go together (a draw in which
  some split has no clip is dropped).  The interval is Clopper-Pearson at the effective sample
  size that the bootstrap's standard error implies (``intervals.proportion_interval``, as for
  retrieval's R@k: it does not collapse to a point at 0% or 100%).  With disjoint test sets of
  equal size (UCF101 groups, ESC-50 folds) the mean equals the pooled accuracy, and with one clip
  per group this is about the binomial interval of the pooled clips;
- :func:`compare_probes`: the difference of two encoders' means on the same test clips with the
  percentile interval of a paired bootstrap of the same kind (the same group draws for both) and,
  per split, the exact McNemar test on the clips only one of them gets right.

The intervals cover the sampling of test clips given the trained classifiers, not the variance
of training itself.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn
from torch.utils.data import DataLoader

import registry
from avplug.data.downstream_datasets import build_downstream_dataset, dataset_splits
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.log import format_duration
from avplug.engine.schedule import warmup_cosine_lr
from avplug.evaluation.clips import DownstreamClips, build_clip_dataset
from avplug.evaluation.intervals import (
    DEFAULT_REPLICATES,
    bootstrap_weights,
    percentile_interval,
    proportion_interval,
    standard_error,
)
from avplug.evaluation.progress import Progress
from registry import BACKBONES

logger = logging.getLogger(__name__)

#: ``weights`` value (besides "" and None) meaning a randomly initialized backbone (the baseline).
RANDOM_INIT = "none"
METRICS = ("top1", "top5")


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
class DownstreamClassifier(nn.Module):
    """``backbone.pooled(x)`` -> dropout -> linear: ``[B, ...] -> logits [B, num_classes]``."""

    def __init__(self, backbone: nn.Module, num_classes: int, *, dropout: float = 0.5) -> None:
        super().__init__()
        channels = getattr(backbone, "out_channels", None)
        if not isinstance(channels, int) or not callable(getattr(backbone, "pooled", None)):
            raise TypeError(f"{type(backbone).__name__} lacks out_channels / pooled(x) (BACKBONES contract)")
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone.pooled(x)))


def _is_random_init(weights: str | None) -> bool:
    return not weights or str(weights).lower() == RANDOM_INIT


def build_backbone(cfg, weights: str | None, modality: str) -> nn.Module:
    """The video or audio backbone of checkpoint ``weights`` (built from the cfg stored in it), or a
    randomly initialized one built from ``cfg.MODEL`` when ``weights`` is empty or "none"."""
    if _is_random_init(weights):
        node = cfg.MODEL.VIDEO if modality == "video" else cfg.MODEL.AUDIO
        logger.info("%s backbone %s (width %s) randomly initialized (baseline)", modality, node.NAME, node.WIDTH)
        return registry.build(BACKBONES, node, expected_type=nn.Module)
    from avplug.models.export import load_encoders

    check_front_end(cfg, weights, modality)
    video, audio = load_encoders(weights)
    logger.info("%s backbone loaded from %s", modality, weights)
    return video if modality == "video" else audio


#: Input keys that must equal the checkpoint's for its encoder to see what it was trained on.
FRONT_END_KEYS = {
    "video": ("INPUT.VIDEO.MEAN", "INPUT.VIDEO.STD"),
    "audio": ("DATA.AUDIO_RATE", "INPUT.AUDIO.MEL_BINS", "INPUT.AUDIO.N_FFT", "INPUT.AUDIO.HOP"),
}


def check_front_end(cfg, weights: str, modality: str) -> None:
    """Raise ``ValueError`` when the input keys of ``cfg`` differ from those stored in ``weights``.

    A video encoder needs the pixel normalization it was pretrained with, an audio encoder the
    same sample rate and log-mel parameters; a checkpoint without a stored cfg is not checked.
    """
    import yaml

    data = torch.load(weights, map_location="cpu", weights_only=True)
    stored_text = data.get("cfg") if isinstance(data, dict) else None
    if not isinstance(stored_text, str):
        return
    stored = yaml.safe_load(stored_text) or {}

    def lookup(tree, key):
        for part in key.split("."):
            if not isinstance(tree, dict) or part not in tree:
                return None
            tree = tree[part]
        return tree

    def norm(value):
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else value

    diffs = []
    for key in FRONT_END_KEYS[modality]:
        theirs = lookup(stored, key)
        if theirs is not None and norm(theirs) != norm(lookup(cfg, key)):
            diffs.append(f"{key} = {lookup(cfg, key)!r} but the checkpoint was pretrained with {theirs!r}")
    if diffs:
        raise ValueError(
            f"{weights}: the {modality} input of this cfg differs from pretraining: " + "; ".join(diffs)
            + ". Set these keys to the checkpoint's values (a demo checkpoint goes with the eval_demo*.yaml recipes)."
        )


# ---------------------------------------------------------------------------------------------
# Helpers: devices, progress, prediction, metrics
# ---------------------------------------------------------------------------------------------
def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _amp(cfg, device: torch.device) -> tuple[contextlib.AbstractContextManager, bool]:
    """(autocast context, whether fp16 loss scaling is needed) for ``SOLVER.AMP`` on ``device``."""
    mode = cfg.SOLVER.AMP
    if device.type != "cuda" or mode == "off":
        return contextlib.nullcontext(), False
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype), mode == "fp16"


def _loader(dataset: DownstreamClips, cfg, batch_size: int, *, shuffle: bool, seed: int, device: torch.device) -> DataLoader:
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


@torch.no_grad()
def _view_outputs(fn, loader: DataLoader, chunk: int, device: torch.device, amp, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn`` applied to every view of every sample, averaged over views: ``([N, D], labels [N])``.

    Batches of ``loader`` hold ``input [B, V, ...]``; the ``B * V`` views are run ``chunk`` at a time.
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


def top_k_hits(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    """Per sample, whether its label is the top-1 / among the top-min(5, classes) of ``probs [N, C]``."""
    labels = labels.long().view(-1, 1)
    ranked = probs.float().topk(min(5, probs.shape[1]), dim=1).indices
    return {"top1": (ranked[:, :1] == labels).any(1).numpy(), "top5": (ranked == labels).any(1).numpy()}


# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------
#: The 97.5% quantile of the standard normal distribution (two-sided 95% intervals).
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval ``[low, high]`` of the proportion ``successes / n`` (95% for the default ``z``)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p, z2 = successes / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [0.0 if successes == 0 else center - half, 1.0 if successes == n else center + half]


def _bootstrap_means(runs: Sequence[Sequence[dict[str, Any]]], metric: str, seed: int = 0) -> list[np.ndarray]:
    """Bootstrap replicates ``[DEFAULT_REPLICATES]`` of the mean over splits of ``metric``, one array per run.

    ``runs[r][i]`` is the ``test_clips`` table of split ``i`` of run ``r``.  Every draw resamples the
    groups of all tables with replacement, the same draw for every run (paired); a split's accuracy
    is the group-count-weighted mean of its clips' hits.  Draws leaving a split without clips are NaN.
    """
    names = sorted({g for tables in runs for t in tables for g in t["group"]})
    index = {g: i for i, g in enumerate(names)}
    counts = bootstrap_weights(len(names), DEFAULT_REPLICATES, seed)
    means = []
    for tables in runs:
        per_split = []
        for t in tables:
            g = np.array([index[x] for x in t["group"]])
            hits = counts @ np.bincount(g, weights=np.asarray(t[metric], np.float64), minlength=len(names))
            clips = counts @ np.bincount(g, minlength=len(names))
            with np.errstate(invalid="ignore", divide="ignore"):
                per_split.append(np.where(clips > 0, hits / clips, np.nan))
        means.append(np.mean(per_split, axis=0))
    return means


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------
def _fingerprint(cfg, weights: str | None, split: int) -> str:
    text = f"{cfg.dump()}\n{weights}\n{split}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    amp, fp16 = _amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    batch_size = min(e.BATCH_SIZE, len(train_set))
    steps_per_epoch = len(train_set) // batch_size
    total_steps, warmup_steps = e.EPOCHS * steps_per_epoch, round(e.WARMUP_EPOCHS * steps_per_epoch)
    checkpointer = Checkpointer(output_dir / "checkpoints", keep=2)
    start_epoch = 0
    found = checkpointer.load_latest()
    if found is not None:
        path, state = found
        if state.get("fingerprint") != fingerprint:
            raise RuntimeError(
                f"{path} belongs to another evaluation run (other cfg, weights or split); "
                f"use another OUTPUT_DIR or remove {output_dir}"
            )
        classifier.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        logger.info("resuming fine-tuning from %s (epoch %d of %d)", path, start_epoch, e.EPOCHS)
    metrics_file = output_dir / "metrics.jsonl"
    loss_fn = nn.CrossEntropyLoss()
    run_start = time.perf_counter()
    for epoch in range(start_epoch, e.EPOCHS):
        torch.manual_seed(cfg.SEED * 100_003 + epoch)  # augmentation draws in the main process
        loader = _loader(train_set, cfg, batch_size, shuffle=True, seed=cfg.SEED * 100_003 + epoch, device=device)
        classifier.train()
        epoch_start, losses, seen = time.perf_counter(), [], 0
        progress = Progress(logger, f"epoch {epoch + 1}/{e.EPOCHS}", steps_per_epoch, "steps", every_s=60.0, log_end=False)
        for i, batch in enumerate(loader):
            step = epoch * steps_per_epoch + i
            lr = warmup_cosine_lr(step, total_steps=total_steps, warmup_steps=warmup_steps, start_lr=e.WARMUP_START_LR, base_lr=e.BASE_LR)
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
        done = epoch + 1
        eta = (time.perf_counter() - run_start) / (done - start_epoch) * (e.EPOCHS - done)
        record = {"epoch": done, "loss": float(np.mean(losses)), "lr": lr, "clips_per_s": seen / max(elapsed, 1e-9)}
        logger.info(
            "epoch %d/%d loss %.4f lr %.4g %.1f clips/s ETA %s",
            done, e.EPOCHS, record["loss"], lr, record["clips_per_s"], format_duration(eta),
        )
        with metrics_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
        checkpointer.save(
            done,
            {
                "model": classifier.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": done,
                "fingerprint": fingerprint,
            },
        )
    classifier.eval()
    chunk = max(1, e.BATCH_SIZE)
    test_loader = _loader(test_set, cfg, _test_batch(cfg, test_set), shuffle=False, seed=cfg.SEED, device=device)
    probs, _ = _view_outputs(lambda x: classifier(x).softmax(-1), test_loader, chunk, device, amp, "testing (views averaged)")
    return probs


def _test_batch(cfg, dataset: DownstreamClips) -> int:
    """Samples per test batch so that a batch holds about BATCH_SIZE views."""
    views = dataset.num_clips * (cfg.EVAL.DOWNSTREAM.NUM_CROPS if dataset.modality == "video" else 1)
    return max(1, cfg.EVAL.DOWNSTREAM.BATCH_SIZE // views)


def extract_features(cfg, backbone: nn.Module, dataset: DownstreamClips, device: torch.device, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every sample of a test-mode ``dataset``, averaged over its views."""
    backbone.to(device).eval()
    amp, _ = _amp(cfg, device)
    loader = _loader(dataset, cfg, _test_batch(cfg, dataset), shuffle=False, seed=cfg.SEED, device=device)
    return _view_outputs(backbone.pooled, loader, max(1, cfg.EVAL.DOWNSTREAM.BATCH_SIZE), device, amp, what)


def fit_linear(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, weight_decay: float, max_iter: int) -> nn.Module:
    """Multinomial logistic regression on standardized ``features [N, D]`` by full-batch L-BFGS.

    Minimizes ``CE + weight_decay / 2 * ||W||^2`` (the bias is not penalized).  Returns a module
    mapping raw features to logits (the standardization is folded into it).
    """
    x = features.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    y = labels.long()
    linear = nn.Linear(x.shape[1], num_classes).double()
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(
        linear.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-9, tolerance_change=1e-12,
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(linear(z), y) + 0.5 * weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():  # logits = W (x - mean) / std + b = (W / std) x + (b - W mean / std)
        folded = nn.Linear(x.shape[1], num_classes)
        w = linear.weight / std
        folded.weight.copy_(w.float())
        folded.bias.copy_((linear.bias - w @ mean).float())
    return folded


class FeatureCache:
    """Frozen, view-averaged ``pooled`` features of clips by path, for one cfg and encoder ``weights``.

    The linear protocol's features of a clip do not depend on the split: :func:`run_evaluation`
    hands one cache to every :func:`run_split`, so each clip is decoded and encoded once per
    dataset.  The cache is in memory only (nothing on disk can go stale), builds its backbone on
    first use (seeded by ``cfg.SEED``, as :func:`run_split` seeds it) and refuses another cfg,
    other weights or another modality.
    """

    def __init__(self, cfg, weights: str | None, device: torch.device) -> None:
        self.cfg, self.weights, self.device = cfg, weights, device
        self.key = _fingerprint(cfg, weights, 0)
        self.modality: str | None = None
        self._backbone: nn.Module | None = None
        self._features: dict[str, torch.Tensor] = {}

    def check(self, cfg, weights: str | None) -> None:
        """Raise ``ValueError`` unless ``cfg`` and ``weights`` are the ones the features came from."""
        if _fingerprint(cfg, weights, 0) != self.key:
            raise ValueError("FeatureCache: built for another cfg or other weights; use one cache per encoder and cfg")

    def features(self, samples: Sequence[tuple[str, int]], modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features [N, D], labels [N])`` of ``samples``; clips not seen before are extracted now."""
        if self.modality is None:
            torch.manual_seed(self.cfg.SEED)
            self._backbone, self.modality = build_backbone(self.cfg, self.weights, modality), modality
        elif modality != self.modality:
            raise ValueError(f"FeatureCache: holds {self.modality} features, asked for {modality}")
        missing = list(dict.fromkeys(p for p, _ in samples if p not in self._features))
        if missing:
            clips = build_clip_dataset(self.cfg, [(p, 0) for p in missing], modality, train=False)
            x, _ = extract_features(self.cfg, self._backbone, clips, self.device, f"features ({len(missing)} new clips)")
            self._features.update(zip(missing, x))
        return torch.stack([self._features[p] for p, _ in samples]), torch.tensor([label for _, label in samples])


def linear_probe(
    cfg, features: FeatureCache, train_samples: Sequence[tuple[str, int]], test_samples: Sequence[tuple[str, int]],
    modality: str, num_classes: int,
) -> tuple[torch.Tensor, float]:
    """Logistic regression on the training clips' cached features; ``(test probabilities [N, C], train top-1)``."""
    e = cfg.EVAL.DOWNSTREAM
    train_x, train_y = features.features(train_samples, modality)
    test_x, _ = features.features(test_samples, modality)
    start = time.perf_counter()
    linear = fit_linear(train_x, train_y, num_classes, weight_decay=e.WEIGHT_DECAY, max_iter=e.LINEAR_MAX_ITER)
    with torch.no_grad():
        train_top1 = float((linear(train_x).argmax(1) == train_y).double().mean())
        probs = linear(test_x).softmax(-1)
    logger.info("linear probe fitted in %.1f s: train top-1 %.4f", time.perf_counter() - start, train_top1)
    return probs, train_top1


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------
def split_dir(cfg, split: int) -> Path:
    """Where one split's checkpoints, metrics and ``result.json`` go: ``OUTPUT_DIR/split<N>``."""
    return Path(cfg.OUTPUT_DIR) / f"split{int(split)}"


def splits_of(cfg) -> list[int]:
    """``EVAL.DOWNSTREAM.SPLITS``, or every official split of the dataset when it is empty."""
    e = cfg.EVAL.DOWNSTREAM
    return [int(s) for s in e.SPLITS] or list(dataset_splits(e.DATASET))


def _check_root(cfg) -> None:
    e = cfg.EVAL.DOWNSTREAM
    if not e.ROOT:
        raise ValueError(f"EVAL.DOWNSTREAM.ROOT is empty: set it to the {e.DATASET} folder as downloaded")


def _test_clips(root: str, dataset, probs: torch.Tensor) -> dict[str, list]:
    """Per test clip: path (relative to ``root``), group, label, prediction and metric hits (0/1)."""
    labels = torch.tensor([label for _, label in dataset.samples])
    group_of = getattr(dataset, "group_of", lambda path: path)
    hits = top_k_hits(probs, labels)
    return {
        "path": [os.path.relpath(p, root) for p, _ in dataset.samples],
        "group": [str(group_of(p)) for p, _ in dataset.samples],
        "label": labels.tolist(),
        "prediction": probs.argmax(1).tolist(),
        **{m: hits[m].astype(int).tolist() for m in METRICS},
    }


def run_split(
    cfg, weights: str | None, split: int, *, device: torch.device | str | None = None, features: FeatureCache | None = None,
) -> dict[str, Any]:
    """Train and test one official split with ``cfg.EVAL.DOWNSTREAM``; returns and writes its result.

    ``weights``: a pretraining checkpoint or exported encoders file, or "none" / "" for a randomly
    initialized backbone.  ``features``: the linear protocol's cache of this cfg and weights, shared
    between splits (default: a fresh one).  The result (also written to
    ``split_dir(cfg, split)/result.json``) holds ``top1``, ``top5`` (fractions), ``top1_ci95``,
    ``top5_ci95`` (Wilson intervals), ``chance``, ``dataset``, ``split``, ``protocol``, ``weights``,
    ``num_classes``, ``num_train``, ``num_test``, ``num_views``, ``seconds``, ``test_clips`` (per
    clip: ``path``, ``group``, ``label``, ``prediction``, ``top1`` and ``top5`` hits) and, for the
    linear probe, ``train_top1``.
    """
    e = cfg.EVAL.DOWNSTREAM
    _check_root(cfg)
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    out = split_dir(cfg, split)
    out.mkdir(parents=True, exist_ok=True)
    train_data = build_downstream_dataset(e.DATASET, e.ROOT, split, "train")
    test_data = build_downstream_dataset(e.DATASET, e.ROOT, split, "test")
    modality, num_classes = train_data.modality, len(train_data.classes)
    logger.info(
        "%s split %d (%s, %s): %d train, %d test, %d classes, device %s",
        e.DATASET, split, e.PROTOCOL, modality, len(train_data), len(test_data), num_classes, device,
    )
    extra = {}
    if e.PROTOCOL == "linear":
        features = features if features is not None else FeatureCache(cfg, weights, device)
        features.check(cfg, weights)
        probs, extra["train_top1"] = linear_probe(cfg, features, train_data.samples, test_data.samples, modality, num_classes)
    else:
        torch.manual_seed(cfg.SEED)
        classifier = DownstreamClassifier(build_backbone(cfg, weights, modality), num_classes, dropout=e.DROPOUT)
        probs = finetune(
            cfg, classifier, build_clip_dataset(cfg, train_data.samples, modality, train=True),
            build_clip_dataset(cfg, test_data.samples, modality, train=False), out, device,
            fingerprint=_fingerprint(cfg, weights, split),
        )
    clips = _test_clips(e.ROOT, test_data, probs)
    n = len(test_data)
    result = {
        "dataset": e.DATASET,
        "split": int(split),
        "protocol": e.PROTOCOL,
        "weights": str(weights or RANDOM_INIT),
        **{m: sum(clips[m]) / n for m in METRICS},
        **{f"{m}_ci95": wilson_interval(sum(clips[m]), n) for m in METRICS},
        **extra,
        "chance": 1.0 / num_classes,
        "num_classes": num_classes,
        "num_train": len(train_data),
        "num_test": n,
        "num_views": e.NUM_CLIPS * (e.NUM_CROPS if modality == "video" else 1),
        "seconds": round(time.perf_counter() - start, 3),
        "test_clips": clips,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    lo, hi = result["top1_ci95"]
    logger.info(
        "%s split %d: top-1 %.4f [%.4f, %.4f] on %d clips (chance %.4f), top-5 %.4f",
        e.DATASET, split, result["top1"], lo, hi, n, result["chance"], result["top5"],
    )
    return result


def aggregate(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per-split metrics and intervals, their mean, standard deviation (ddof = 1; 0 for one split) and
    the interval of the mean (see the module docstring; ``[None, None]`` with a single test group).

    ``results`` are :func:`run_split` outputs of one dataset, protocol and weights (checked).  The
    summary holds ``dataset``, ``protocol``, ``weights``, ``splits``, ``num_classes``, ``chance``,
    ``per_split`` (``{split: {top1, top5, top1_ci95, top5_ci95, num_test}}``), ``mean``, ``std``,
    ``mean_ci95`` (``{metric: [low, high]}``), ``num_test_clips`` and ``num_test_groups`` (distinct
    over splits), ``interval`` (how the intervals were made) and ``test_clips`` (per split, for
    :func:`compare_probes`).
    """
    results = sorted(results, key=lambda r: r["split"])
    if not results:
        raise ValueError("aggregate: no split results")
    for key in ("dataset", "protocol", "weights", "num_classes"):
        values = {r[key] for r in results}
        if len(values) > 1:
            raise ValueError(f"aggregate: results mix several {key} values: {sorted(values)}")
    splits = [r["split"] for r in results]
    if len(set(splits)) != len(splits):
        raise ValueError(f"aggregate: a split appears twice in {splits}")
    tables = [r["test_clips"] for r in results]
    summary: dict[str, Any] = {k: results[0][k] for k in ("dataset", "protocol", "weights", "num_classes", "chance")}
    summary["splits"] = splits
    summary["per_split"] = {
        str(r["split"]): {**{k: r[k] for m in METRICS for k in (m, f"{m}_ci95")}, "num_test": r["num_test"]} for r in results
    }
    summary["mean"], summary["std"], summary["mean_ci95"] = {}, {}, {}
    for m in METRICS:
        values = np.array([r[m] for r in results], dtype=np.float64)
        summary["mean"][m] = float(values.mean())
        summary["std"][m] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    summary["num_test_clips"] = len({p for t in tables for p in t["path"]})
    summary["num_test_groups"] = len({g for t in tables for g in t["group"]})
    for m in METRICS:
        se = standard_error(_bootstrap_means([tables], m)[0])
        interval = proportion_interval(summary["mean"][m], se, summary["num_test_clips"], summary["num_test_groups"])
        summary["mean_ci95"][m] = list(interval)
    summary["interval"] = (
        f"95%: per split Wilson score over its test clips; mean over splits: Clopper-Pearson at the effective sample "
        f"size of a bootstrap over the {summary['num_test_groups']} test groups (recordings shared by clips), "
        f"{DEFAULT_REPLICATES} draws"
    )
    summary["test_clips"] = {str(r["split"]): r["test_clips"] for r in results}
    return summary


def compare_probes(a: dict[str, Any], b: dict[str, Any], metric: str = "top1") -> dict[str, Any]:
    """Is encoder ``a`` ahead of encoder ``b``?  Two :func:`aggregate` summaries on the same test clips.

    Returns ``dataset``, ``metric``, ``a`` and ``b`` (their weights), ``splits``, ``num_test`` (per
    split), ``mean_a``, ``mean_b``, ``difference`` (``mean_a - mean_b``), ``ci95`` (paired bootstrap
    over the test groups, the same draws for both; ``[None, None]`` with one group), ``a_ahead`` / ``b_ahead`` (the interval of the
    difference lies above / below 0), ``separated`` (``a``'s own interval of the mean lies above
    ``b``'s: ahead by more than both intervals) and ``per_split`` (``difference``, ``a_only`` and
    ``b_only``: clips only ``a`` / only ``b`` gets right, ``mcnemar_p``: the exact two-sided McNemar
    test on those).  ``ValueError`` when the dataset, splits or test clips differ.
    """
    if a["dataset"] != b["dataset"] or a["splits"] != b["splits"]:
        raise ValueError(f"compare_probes: {a['dataset']} splits {a['splits']} vs {b['dataset']} splits {b['splits']}")
    tables_a, tables_b, per_split = [], [], {}
    for s in map(str, a["splits"]):
        ta, tb = a["test_clips"][s], b["test_clips"][s]
        order = {p: i for i, p in enumerate(tb["path"])}
        if sorted(ta["path"]) != sorted(order):
            raise ValueError(f"compare_probes: split {s} tests other clips in the two results")
        tb = {k: [v[order[p]] for p in ta["path"]] for k, v in tb.items()}
        hits_a, hits_b = np.asarray(ta[metric], bool), np.asarray(tb[metric], bool)
        a_only, b_only = int((hits_a & ~hits_b).sum()), int((~hits_a & hits_b).sum())
        per_split[s] = {
            "difference": float(hits_a.mean() - hits_b.mean()), "a_only": a_only, "b_only": b_only,
            "mcnemar_p": float(binomtest(a_only, a_only + b_only).pvalue) if a_only + b_only else 1.0,
        }
        tables_a.append(ta)
        tables_b.append(tb)
    reps_a, reps_b = _bootstrap_means([tables_a, tables_b], metric)
    low, high = percentile_interval(reps_a - reps_b)
    mean_a, mean_b = float(np.mean([np.mean(t[metric]) for t in tables_a])), float(np.mean([np.mean(t[metric]) for t in tables_b]))
    return {
        "dataset": a["dataset"], "metric": metric, "a": a["weights"], "b": b["weights"], "splits": a["splits"],
        "num_test": {s: len(t["path"]) for s, t in zip(per_split, tables_a)},
        "mean_a": mean_a, "mean_b": mean_b, "difference": mean_a - mean_b, "ci95": [low, high],
        "a_ahead": low is not None and low > 0, "b_ahead": high is not None and high < 0,
        "separated": None not in (a["mean_ci95"][metric][0], b["mean_ci95"][metric][1])
        and a["mean_ci95"][metric][0] > b["mean_ci95"][metric][1],
        "per_split": per_split,
    }


def results_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown table of :func:`aggregate`'s output (accuracies and intervals in percent)."""
    mean, std, ci = summary["mean"], summary["std"], summary["mean_ci95"]

    def pct(value: float) -> str:
        return f"{100 * value:.2f}"

    def interval(bounds: list[float | None]) -> str:
        return "n/a" if None in bounds else f"{100 * bounds[0]:.1f}-{100 * bounds[1]:.1f}"

    lines = [
        f"**{summary['dataset']}**, {summary['protocol']}, weights `{summary['weights']}`: {summary['num_classes']} classes "
        f"(chance {pct(summary['chance'])}%), {summary['num_test_clips']} test clips in {summary['num_test_groups']} groups",
        "",
        "| split | test clips | top-1 (%) | 95% interval | top-5 (%) | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for split, m in summary["per_split"].items():
        lines.append(
            f"| {split} | {m['num_test']} | {pct(m['top1'])} | {interval(m['top1_ci95'])} | {pct(m['top5'])} | {interval(m['top5_ci95'])} |"
        )
    lines.append(
        f"| mean ± std | {summary['num_test_clips']} | {pct(mean['top1'])} ± {pct(std['top1'])} | {interval(ci['top1'])} "
        f"| {pct(mean['top5'])} ± {pct(std['top5'])} | {interval(ci['top5'])} |"
    )
    lines += ["", f"Intervals {summary['interval']}."]
    return "\n".join(lines) + "\n"


def _every_clip(cfg, splits: Sequence[int]) -> tuple[list[tuple[str, int]], str]:
    """Every ``(path, label)`` of the training and test sets of ``splits`` (each once) and their modality."""
    e = cfg.EVAL.DOWNSTREAM
    _check_root(cfg)
    samples: dict[str, int] = {}
    for split in splits:
        for subset in ("train", "test"):
            data = build_downstream_dataset(e.DATASET, e.ROOT, split, subset)
            samples.update(data.samples)
    return list(samples.items()), data.modality


def run_evaluation(cfg, weights: str | None, splits: Sequence[int] | None = None, *, device: torch.device | str | None = None) -> dict[str, Any]:
    """Run :func:`run_split` for ``splits`` (default :func:`splits_of`; the linear protocol's
    features shared between them), aggregate, and write ``OUTPUT_DIR/results.json`` and
    ``OUTPUT_DIR/results.md``.  Returns the aggregate."""
    splits = list(splits) if splits else splits_of(cfg)
    valid = dataset_splits(cfg.EVAL.DOWNSTREAM.DATASET)
    bad = [s for s in splits if s not in valid]
    if bad:
        raise ValueError(f"{cfg.EVAL.DOWNSTREAM.DATASET} has no split {bad}; official splits are {list(valid)}")
    device = torch.device(device) if device is not None else default_device()
    features = None
    if cfg.EVAL.DOWNSTREAM.PROTOCOL == "linear":  # one extraction pass over every clip of every split
        features = FeatureCache(cfg, weights, device)
        features.features(*_every_clip(cfg, splits))
    summary = aggregate(run_split(cfg, weights, s, device=device, features=features) for s in splits)
    write_summary(cfg, summary)
    return summary


def load_split_result(cfg, split: int) -> dict[str, Any]:
    """The ``result.json`` that :func:`run_split` wrote for ``split`` (e.g. by another array task)."""
    path = split_dir(cfg, split) / "result.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: split {split} has not finished (run_split writes it last)")
    return json.loads(path.read_text())


def write_summary(cfg, summary: dict[str, Any]) -> Path:
    """Write :func:`aggregate`'s output to ``OUTPUT_DIR/results.json`` and ``results.md``; returns the JSON path."""
    out = Path(cfg.OUTPUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "results.md").write_text(results_markdown(summary))
    return out / "results.json"
