"""The downstream classifier and where its backbone comes from.

The classifier is the pretrained backbone (``load_encoders`` of a checkpoint; or randomly
initialized for the baseline, ``weights`` "none") + dropout (``EVAL.DOWNSTREAM.DROPOUT``) + a
linear layer on the backbone's ``pooled`` features.  The projection heads are not used.  A
checkpoint's encoder is used only with the input front end it was pretrained with
(:func:`check_front_end`).
"""
from __future__ import annotations

import hashlib
import logging

import torch
from torch import nn

import registry
from avplug.config.errors import ConfigError
from avplug.evaluation.checkpoint_inputs import FRONT_END_KEYS, is_random_init, lookup, same_value, stored_cfg
from avplug.models.export import load_encoders
from registry import BACKBONES

logger = logging.getLogger(__name__)


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


def build_backbone(cfg, weights: str | None, modality: str) -> nn.Module:
    """The video or audio backbone of checkpoint ``weights`` (built from the cfg stored in it), or a
    randomly initialized one built from ``cfg.MODEL`` when ``weights`` is empty or "none"."""
    if is_random_init(weights):
        node = cfg.MODEL.VIDEO if modality == "video" else cfg.MODEL.AUDIO
        logger.info("%s backbone %s (width %s) randomly initialized (baseline)", modality, node.NAME, node.WIDTH)
        return registry.build(BACKBONES, node, expected_type=nn.Module)
    check_front_end(cfg, weights, modality)
    video, audio = load_encoders(weights)
    logger.info("%s backbone loaded from %s", modality, weights)
    return video if modality == "video" else audio


def check_front_end(cfg, weights: str, modality: str) -> None:
    """Raise :class:`ConfigError` when the input keys of ``cfg`` differ from those stored in ``weights``.

    A video encoder needs the pixel normalization it was pretrained with, an audio encoder the
    same sample rate and log-mel parameters; a checkpoint without a stored cfg is not checked.
    ``tools/evaluate.py`` takes these keys from the checkpoint unless they are set explicitly
    (:mod:`avplug.evaluation.checkpoint_inputs`), so a difference is the user's own setting.
    """
    stored = stored_cfg(weights)
    if stored is None:
        return
    diffs = []
    for key in FRONT_END_KEYS[modality]:
        theirs = lookup(stored, key)
        if theirs is not None and not same_value(lookup(cfg, key), theirs):
            diffs.append(f"{key} = {lookup(cfg, key)!r} but the checkpoint was pretrained with {theirs!r}")
    if diffs:
        raise ConfigError(
            f"{weights}: the {modality} input of this cfg differs from pretraining: " + "; ".join(diffs)
            + ". Drop these settings (tools/evaluate.py then takes the checkpoint's) or set them to its values."
        )


def run_fingerprint(cfg, weights: str | None, split: int) -> str:
    """16 hex digits naming what a downstream run trains from (the whole cfg, ``weights``, ``split``):
    a fine-tuning checkpoint or a feature cache is reused only under the same fingerprint."""
    text = f"{cfg.dump()}\n{weights}\n{split}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
