"""Downstream protocols: fine-tuning (the paper) and a linear probe on frozen features.

One official split (or fold) is one call, :func:`run_split`, which also writes
``OUTPUT_DIR/split<N>/result.json``; :func:`aggregate` combines the splits' results into mean and
standard deviation, and :func:`run_evaluation` does both for the splits of a cfg and writes
``results.json`` and ``results.md`` (:func:`write_summary`; what ``tools/evaluate.py`` runs).  A
Slurm array runs one :func:`run_split` per task, then ``aggregate`` over :func:`load_split_result`
of every split and :func:`write_summary`.

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
- ``"linear"``: the backbone frozen in eval mode; the pooled features of every video are extracted
  once, averaged over the test-time views (NUM_CLIPS x NUM_CROPS), for the training and the test
  set alike; a linear layer is fitted on the standardized training features by full-batch
  L-BFGS (strong-Wolfe line search, at most LINEAR_MAX_ITER iterations) on the cross-entropy plus
  ``WEIGHT_DECAY / 2 * ||W||^2``.  Deterministic and fast: the cost is one pass of feature
  extraction.  Test predictions are the linear layer applied to the view-averaged features (the
  same as averaging the views' logits).

Testing (both protocols): the softmax predictions of the NUM_CLIPS x NUM_CROPS views (NUM_CLIPS
for audio) are averaged; top-1 and top-5 accuracy come from torchmetrics (top-5 is top-min(5,
classes)).  Results are fractions in [0, 1].
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_accuracy

import registry
from avplug.data.downstream import build_downstream_dataset, dataset_splits
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.schedule import warmup_cosine_lr
from avplug.evaluation.clips import DownstreamClips, build_clip_dataset
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


class _Progress:
    """Log ``what: done/total, rate, ETA`` at most every ``every_s`` seconds and at the end."""

    def __init__(self, what: str, total: int, unit: str, every_s: float = 30.0, *, log_end: bool = True) -> None:
        self.what, self.total, self.unit, self.every_s, self.log_end = what, total, unit, every_s, log_end
        self.start = self.last = time.perf_counter()
        self.done = 0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every_s or (self.log_end and self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            logger.info("%s: %d/%d %s, %.1f %s/s, ETA %s", self.what, self.done, self.total, self.unit, rate, self.unit, _hms(eta))


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


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
    progress = _Progress(what, len(loader.dataset), "samples")
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


def accuracy(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1 and top-5 (top-min(5, classes)) accuracy of ``probs [N, C]`` in [0, 1] (torchmetrics)."""
    probs, labels = probs.float(), labels.long()
    return {
        "top1": float(multiclass_accuracy(probs, labels, num_classes=num_classes, top_k=1, average="micro")),
        "top5": float(multiclass_accuracy(probs, labels, num_classes=num_classes, top_k=min(5, num_classes), average="micro")),
    }


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
) -> dict[str, float]:
    """Fine-tune ``classifier`` on ``train_set``, test it on ``test_set``'s views; returns the metrics.

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
        progress = _Progress(f"epoch {epoch + 1}/{e.EPOCHS}", steps_per_epoch, "steps", every_s=60.0, log_end=False)
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
            done, e.EPOCHS, record["loss"], lr, record["clips_per_s"], _hms(eta),
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
    probs, labels = _view_outputs(
        lambda x: classifier(x).softmax(-1), test_loader, chunk, device, amp, "testing (views averaged)"
    )
    return accuracy(probs, labels, classifier.fc.out_features)


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


def linear_probe(cfg, backbone: nn.Module, train_set: DownstreamClips, test_set: DownstreamClips, num_classes: int, device: torch.device) -> dict[str, float]:
    """Features once (views averaged), logistic regression on the training set, metrics on the test set."""
    e = cfg.EVAL.DOWNSTREAM
    train_x, train_y = extract_features(cfg, backbone, train_set, device, "features (train)")
    test_x, test_y = extract_features(cfg, backbone, test_set, device, "features (test)")
    start = time.perf_counter()
    linear = fit_linear(train_x, train_y, num_classes, weight_decay=e.WEIGHT_DECAY, max_iter=e.LINEAR_MAX_ITER)
    with torch.no_grad():
        train_acc = accuracy(linear(train_x).softmax(-1), train_y, num_classes)["top1"]
        result = accuracy(linear(test_x).softmax(-1), test_y, num_classes)
    logger.info("linear probe fitted in %.1f s: train top-1 %.4f, test top-1 %.4f", time.perf_counter() - start, train_acc, result["top1"])
    return {**result, "train_top1": train_acc}


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


def run_split(cfg, weights: str | None, split: int, *, device: torch.device | str | None = None) -> dict[str, Any]:
    """Train and test one official split with ``cfg.EVAL.DOWNSTREAM``; returns and writes its result.

    ``weights``: a pretraining checkpoint or exported encoders file, or "none" / "" for a randomly
    initialized backbone.  The result (also written to ``split_dir(cfg, split)/result.json``) holds
    ``top1``, ``top5`` (fractions), ``dataset``, ``split``, ``protocol``, ``weights``, ``num_classes``,
    ``num_train``, ``num_test``, ``num_views``, ``seconds`` and, for the linear probe, ``train_top1``.
    """
    e = cfg.EVAL.DOWNSTREAM
    if not e.ROOT:
        raise ValueError(f"EVAL.DOWNSTREAM.ROOT is empty: set it to the {e.DATASET} folder as downloaded")
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
    torch.manual_seed(cfg.SEED)
    backbone = build_backbone(cfg, weights, modality)
    test_set = build_clip_dataset(cfg, test_data.samples, modality, train=False)
    if e.PROTOCOL == "linear":
        train_set = build_clip_dataset(cfg, train_data.samples, modality, train=False)
        metrics = linear_probe(cfg, backbone, train_set, test_set, num_classes, device)
    else:
        train_set = build_clip_dataset(cfg, train_data.samples, modality, train=True)
        classifier = DownstreamClassifier(backbone, num_classes, dropout=e.DROPOUT)
        metrics = finetune(cfg, classifier, train_set, test_set, out, device, fingerprint=_fingerprint(cfg, weights, split))
    result = {
        "dataset": e.DATASET,
        "split": int(split),
        "protocol": e.PROTOCOL,
        "weights": str(weights or RANDOM_INIT),
        **metrics,
        "num_classes": num_classes,
        "num_train": len(train_data),
        "num_test": len(test_data),
        "num_views": e.NUM_CLIPS * (e.NUM_CROPS if modality == "video" else 1),
        "seconds": round(time.perf_counter() - start, 3),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    logger.info("%s split %d: top-1 %.4f, top-5 %.4f", e.DATASET, split, result["top1"], result["top5"])
    return result


def aggregate(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per-split metrics, their mean and standard deviation (sample std, ddof = 1; 0 for one split).

    ``results`` are :func:`run_split` outputs of one dataset and protocol (checked).
    """
    results = sorted(results, key=lambda r: r["split"])
    if not results:
        raise ValueError("aggregate: no split results")
    for key in ("dataset", "protocol", "weights"):
        values = {r[key] for r in results}
        if len(values) > 1:
            raise ValueError(f"aggregate: results mix several {key} values: {sorted(values)}")
    splits = [r["split"] for r in results]
    if len(set(splits)) != len(splits):
        raise ValueError(f"aggregate: a split appears twice in {splits}")
    summary: dict[str, Any] = {k: results[0][k] for k in ("dataset", "protocol", "weights")}
    summary["splits"] = splits
    summary["per_split"] = {str(r["split"]): {m: r[m] for m in METRICS} for r in results}
    summary["mean"], summary["std"] = {}, {}
    for m in METRICS:
        values = np.array([r[m] for r in results], dtype=np.float64)
        summary["mean"][m] = float(values.mean())
        summary["std"][m] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return summary


def results_markdown(summary: dict[str, Any]) -> str:
    """A short Markdown table of :func:`aggregate`'s output (accuracies in percent)."""
    lines = [
        f"**{summary['dataset']}**, {summary['protocol']}, weights `{summary['weights']}`",
        "",
        "| split | top-1 (%) | top-5 (%) |",
        "| --- | ---: | ---: |",
    ]
    for split, metrics in summary["per_split"].items():
        lines.append(f"| {split} | {100 * metrics['top1']:.2f} | {100 * metrics['top5']:.2f} |")
    mean, std = summary["mean"], summary["std"]
    lines.append(
        f"| mean ± std | {100 * mean['top1']:.2f} ± {100 * std['top1']:.2f} | {100 * mean['top5']:.2f} ± {100 * std['top5']:.2f} |"
    )
    return "\n".join(lines) + "\n"


def run_evaluation(cfg, weights: str | None, splits: Sequence[int] | None = None, *, device: torch.device | str | None = None) -> dict[str, Any]:
    """Run :func:`run_split` for ``splits`` (default :func:`splits_of`), aggregate, and write
    ``OUTPUT_DIR/results.json`` and ``OUTPUT_DIR/results.md``.  Returns the aggregate."""
    splits = list(splits) if splits else splits_of(cfg)
    valid = dataset_splits(cfg.EVAL.DOWNSTREAM.DATASET)
    bad = [s for s in splits if s not in valid]
    if bad:
        raise ValueError(f"{cfg.EVAL.DOWNSTREAM.DATASET} has no split {bad}; official splits are {list(valid)}")
    summary = aggregate(run_split(cfg, weights, s, device=device) for s in splits)
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
