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
import yaml
from torch import nn

import registry
from avplug.config.errors import ConfigError
from avplug.models.export import load_encoders
from registry import BACKBONES

logger = logging.getLogger(__name__)

#: ``weights`` value (besides "" and None) meaning a randomly initialized backbone (the baseline).
RANDOM_INIT = "none"
#: Input keys that must equal the checkpoint's for its encoder to see what it was trained on.
FRONT_END_KEYS = {
    "video": ("INPUT.VIDEO.MEAN", "INPUT.VIDEO.STD"),
    "audio": ("DATA.AUDIO_RATE", "INPUT.AUDIO.MEL_BINS", "INPUT.AUDIO.N_FFT", "INPUT.AUDIO.HOP"),
}


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
    check_front_end(cfg, weights, modality)
    video, audio = load_encoders(weights)
    logger.info("%s backbone loaded from %s", modality, weights)
    return video if modality == "video" else audio


def check_front_end(cfg, weights: str, modality: str) -> None:
    """Raise :class:`ConfigError` when the input keys of ``cfg`` differ from those stored in ``weights``.

    A video encoder needs the pixel normalization it was pretrained with, an audio encoder the
    same sample rate and log-mel parameters; a checkpoint without a stored cfg is not checked.
    """
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
        raise ConfigError(
            f"{weights}: the {modality} input of this cfg differs from pretraining: " + "; ".join(diffs)
            + ". Set these keys to the checkpoint's values (a demo checkpoint goes with the eval_demo*.yaml recipes)."
        )


def run_fingerprint(cfg, weights: str | None, split: int) -> str:
    """16 hex digits naming what a downstream run trains from (the whole cfg, ``weights``, ``split``):
    a fine-tuning checkpoint or a feature cache is reused only under the same fingerprint."""
    text = f"{cfg.dump()}\n{weights}\n{split}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
