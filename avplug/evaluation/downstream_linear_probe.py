"""The linear-probe protocol: a linear classifier on the frozen backbone's view-averaged features.

The backbone is frozen in eval mode; the pooled features of every video, averaged over the
test-time views (NUM_CLIPS x NUM_CROPS), serve the training and the test set alike; a linear layer
is fitted on the standardized training features by full-batch L-BFGS (strong-Wolfe line search,
at most ``EVAL.DOWNSTREAM.LINEAR_MAX_ITER`` iterations) on the cross-entropy plus
``WEIGHT_DECAY / 2 * ||W||^2``.  Deterministic and fast.  A clip's frozen features do not depend on
the split, so they live in a :class:`FeatureCache` (in memory, one per encoder and cfg) that
:func:`avplug.evaluation.downstream_protocols.run_evaluation` shares between the splits: each clip
is decoded and encoded once per dataset, and one classifier is fitted per split.  Test predictions
are the linear layer applied to the view-averaged features (the same as averaging the views'
logits).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
from torch import nn

from avplug.evaluation.clips import DownstreamClips, build_clip_dataset
from avplug.evaluation.downstream_batches import autocast_for, clip_loader, samples_per_test_batch, view_averaged_outputs
from avplug.evaluation.downstream_classifier import build_backbone, run_fingerprint

logger = logging.getLogger(__name__)


def extract_features(cfg, backbone: nn.Module, dataset: DownstreamClips, device: torch.device, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every sample of a test-mode ``dataset``, averaged over its views."""
    backbone.to(device).eval()
    amp, _ = autocast_for(cfg, device)
    loader = clip_loader(dataset, cfg, samples_per_test_batch(cfg, dataset), shuffle=False, seed=cfg.SEED, device=device)
    return view_averaged_outputs(backbone.pooled, loader, max(1, cfg.EVAL.DOWNSTREAM.BATCH_SIZE), device, amp, what)


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

    In memory only (nothing on disk can go stale); builds its backbone on first use (seeded by
    ``cfg.SEED``, as ``run_split`` seeds the fine-tuned one) and refuses another cfg, other
    weights or another modality.
    """

    def __init__(self, cfg, weights: str | None, device: torch.device) -> None:
        self.cfg, self.weights, self.device = cfg, weights, device
        self.key = run_fingerprint(cfg, weights, 0)
        self.modality: str | None = None
        self._backbone: nn.Module | None = None
        self._features: dict[str, torch.Tensor] = {}

    def check(self, cfg, weights: str | None) -> None:
        """Raise ``ValueError`` unless ``cfg`` and ``weights`` are the ones the features came from."""
        if run_fingerprint(cfg, weights, 0) != self.key:
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
