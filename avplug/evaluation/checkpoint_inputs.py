"""Evaluation recipes take the input settings of the checkpoint they evaluate.

The downstream recipes (``configs/eval_*.yaml``) are written for the paper's inputs; a checkpoint
pretrained with other ones (the demo's 16 kHz audio, 40 mel bins, 40-px crops) is evaluated with
its own.  :func:`inherit_checkpoint_inputs` copies, from the cfg stored in the checkpoint (or
exported encoders file, both hold ``"cfg"``):

- the front end its encoders were trained on, which must match (:data:`FRONT_END_KEYS`): the audio
  sample rate and log-mel parameters, the video pixel normalization;
- the video input size (:data:`VIDEO_SIZE_KEYS`): the downstream crop becomes the checkpoint's
  ``INPUT.VIDEO.CROP`` and the scale jitter and test short side are scaled by the same factor (the
  paper pretrains and fine-tunes at 158, so its recipe is unchanged for its own checkpoints);

except keys the user set explicitly, in the recipe file itself (not its ``_BASE_``) or as
``KEY VALUE`` overrides (:func:`explicit_keys`): those win (a must-match key that then differs is
refused by :func:`avplug.evaluation.downstream_classifier.check_front_end`).  The clip length,
frames and frame rate are the downstream protocol's (paper 7.2: 3-s audio clips, 32 frames at 10 fps),
not the pretraining snippet's, and are never inherited.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from fvcore.common.config import CfgNode

from avplug.checksums import CorruptFileError, load_torch_file
from avplug.config import resolve_config_path, validate_cfg
from avplug.models.export import CheckpointFormatError

#: Input keys that must equal the checkpoint's for its encoder to see what it was trained on.
FRONT_END_KEYS = {
    "video": ("INPUT.VIDEO.MEAN", "INPUT.VIDEO.STD"),
    "audio": ("DATA.AUDIO_RATE", "INPUT.AUDIO.MEL_BINS", "INPUT.AUDIO.N_FFT", "INPUT.AUDIO.HOP"),
}
#: The downstream video size, inherited together (none of them when any is explicit).
VIDEO_SIZE_KEYS = ("EVAL.DOWNSTREAM.CROP", "EVAL.DOWNSTREAM.SCALE_JITTER", "EVAL.DOWNSTREAM.TEST_SHORT_SIDE")
#: ``weights`` value (besides "" and None) meaning a randomly initialized backbone (the baseline).
RANDOM_INIT = "none"


def is_random_init(weights: str | os.PathLike | None) -> bool:
    return not weights or str(weights).lower() == RANDOM_INIT


def lookup(tree: Any, key: str) -> Any:
    """``tree["A"]["B"]`` for ``key`` "A.B" (a dict or a CfgNode), or None when absent."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def stored_cfg(weights: str | os.PathLike | None) -> dict | None:
    """The cfg stored in checkpoint ``weights`` as a plain dict; None for a random init, a missing
    file (reported where it is loaded) or a file without a stored cfg."""
    if is_random_init(weights) or not Path(weights).is_file():
        return None
    try:
        data = load_torch_file(weights)  # verified against its sha256 sidecar when it has one
    except CorruptFileError as exc:  # a checksum mismatch or a file that does not unpickle: it names the file
        raise CheckpointFormatError(str(exc)) from exc
    text = data.get("cfg") if isinstance(data, dict) else None
    return (yaml.safe_load(text) or {}) if isinstance(text, str) else None


def same_value(ours: Any, theirs: Any) -> bool:
    """Whether two cfg values are equal, a tuple and a list of the same numbers included."""

    def norm(value):
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else value

    return norm(ours) == norm(theirs)


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            keys |= _leaf_keys(value, key + ".")
        elif key != "_BASE_":
            keys.add(key)
    return keys


def explicit_keys(cfg_file: str | os.PathLike | None, opts: Sequence[str]) -> set[str]:
    """Dotted keys set by the recipe file itself (not the files its ``_BASE_`` names) or by ``opts``
    (flat ``KEY VALUE`` pairs; a node named whole there, ``INPUT.AUDIO``, counts for every key under it)."""
    keys = {str(k) for k in list(opts)[0::2]}
    recipe = yaml.safe_load(resolve_config_path(cfg_file).read_text()) if cfg_file else None
    return keys | (_leaf_keys(recipe) if isinstance(recipe, dict) else set())


def _is_explicit(key: str, explicit: set[str]) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:i]) in explicit for i in range(1, len(parts) + 1))


def _video_size(cfg: CfgNode, stored: dict) -> dict[str, Any]:
    """The downstream video size scaled to the checkpoint's crop ({} when it has none or the same)."""
    crop, e = lookup(stored, "INPUT.VIDEO.CROP"), cfg.EVAL.DOWNSTREAM
    if not isinstance(crop, int) or crop == e.CROP:
        return {}
    scale = crop / e.CROP
    return {
        "EVAL.DOWNSTREAM.CROP": crop,
        "EVAL.DOWNSTREAM.SCALE_JITTER": tuple(max(crop, round(s * scale)) for s in e.SCALE_JITTER),
        "EVAL.DOWNSTREAM.TEST_SHORT_SIDE": max(crop, round(e.TEST_SHORT_SIDE * scale)) if e.TEST_SHORT_SIDE else 0,
    }


def inherit_checkpoint_inputs(cfg: CfgNode, weights: str | None, explicit: set[str]) -> tuple[CfgNode, dict[str, tuple]]:
    """``cfg`` with the checkpoint's input settings (module docstring) where not ``explicit``, and
    ``{key: (recipe value, checkpoint value)}`` for every key it changed.  ``cfg`` itself is untouched;
    the result is validated and frozen."""
    stored = stored_cfg(weights)
    if stored is None:
        return cfg, {}
    wanted = {key: lookup(stored, key) for keys in FRONT_END_KEYS.values() for key in keys}
    if not any(_is_explicit(key, explicit) for key in VIDEO_SIZE_KEYS):
        wanted.update(_video_size(cfg, stored))
    changed = {}
    for key, value in wanted.items():
        ours = lookup(cfg, key)
        if value is None or _is_explicit(key, explicit) or same_value(ours, value):
            continue
        changed[key] = (ours, tuple(value) if isinstance(value, list) else value)
    if not changed:
        return cfg, {}
    out = cfg.clone()
    out.defrost()
    out.merge_from_list([item for key, (_, value) in changed.items() for item in (key, value)])
    validate_cfg(out)
    out.freeze()
    return out, changed


def describe_inherited(weights: str, changed: dict[str, tuple]) -> str:
    """One log line naming the keys taken from the checkpoint and their values."""
    if not changed:
        return f"input settings: the recipe's match the checkpoint {weights} (or it stores none)"
    taken = ", ".join(f"{key} {theirs!r} (recipe: {ours!r})" for key, (ours, theirs) in changed.items())
    return f"input settings taken from the checkpoint {weights}: {taken}"
