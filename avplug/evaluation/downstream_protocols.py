"""The downstream protocols' driver: train and test one official split, or every split and aggregate.

One official split (or fold) is one call, :func:`run_split`, which also writes
``OUTPUT_DIR/split<N>/result.json``; :func:`run_evaluation` runs the splits of a cfg, aggregates
them into mean, standard deviation and intervals
(:func:`avplug.evaluation.downstream_statistics.aggregate`) and writes ``results.json`` and
``results.md`` (:func:`write_summary`; what ``tools/evaluate.py`` runs).  A Slurm array runs one
:func:`run_split` per task, then ``aggregate`` over :func:`load_split_result` of every split and
:func:`write_summary`.

``EVAL.DOWNSTREAM.PROTOCOL`` picks how the classifier
(:mod:`avplug.evaluation.downstream_classifier`) is trained: ``"finetune"``
(:mod:`avplug.evaluation.downstream_finetune`, the paper) or ``"linear"``
(:mod:`avplug.evaluation.downstream_linear_probe`, a linear probe on frozen features, shared
between the splits of one :func:`run_evaluation`).  Testing is the same for both: the softmax
predictions of the NUM_CLIPS x NUM_CROPS views (NUM_CLIPS for audio) of a test clip are averaged,
and every result carries its sample size, chance level and 95% interval
(:mod:`avplug.evaluation.downstream_statistics`).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from avplug.config.errors import ConfigError
from avplug.data.downstream_datasets import build_downstream_dataset, dataset_splits
from avplug.evaluation.checkpoint_inputs import RANDOM_INIT
from avplug.evaluation.clips import build_clip_dataset
from avplug.evaluation.downstream_batches import default_device
from avplug.evaluation.downstream_classifier import DownstreamClassifier, build_backbone, run_fingerprint
from avplug.evaluation.downstream_finetune import finetune
from avplug.evaluation.downstream_linear_probe import FeatureCache, linear_probe
from avplug.evaluation.downstream_statistics import METRICS, aggregate, results_markdown, top_k_hits, wilson_interval

logger = logging.getLogger(__name__)


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
        raise ConfigError(f"EVAL.DOWNSTREAM.ROOT is empty: set it to the {e.DATASET} folder as downloaded")


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
            fingerprint=run_fingerprint(cfg, weights, split),
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
        raise ConfigError(f"{cfg.EVAL.DOWNSTREAM.DATASET} has no split {bad}; official splits are {list(valid)}")
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
