"""Pretrained encoders f and g out of a pretraining checkpoint, for fine-tuning elsewhere.

After pretraining the projection heads are discarded (paper section 3); what users keep is the
video backbone (R(2+1)D-18) and the audio backbone (ResNet-18 on log-mel images).

Files read here:

- a pretraining checkpoint: a dict with ``"model"``, the :class:`AudioVisualModel` state dict
  (keys prefixed ``video_backbone.``, ``audio_backbone.``, ``video_head.``, ``audio_head.``), and
  ``"cfg"``, the resolved cfg as YAML (``cfg.dump()``); other keys (optimizer, ...) are ignored;
- an exported encoders file written by :func:`export_encoders`: ``"video_backbone"`` and
  ``"audio_backbone"`` state dicts, ``"cfg"`` YAML and ``"format": "avplug-encoders"``.

Both are read with ``torch.load(..., weights_only=True)``: no pickled code is executed; a file with
a sha256 sidecar is verified first (:func:`avplug.checksums.load_torch_file`); a corrupt file is a
:class:`CheckpointFormatError` naming it.

Usage::

    from avplug.models.export import export_encoders, load_encoders

    # A small file with only the encoders (no heads, no optimizer state):
    export_encoders("output/movie_tv/model_final.pth", "encoders.pth")

    # The backbones, built from the cfg stored in the file (plugins it names are imported):
    video_encoder, audio_encoder = load_encoders("encoders.pth")
    clips = torch.randn(2, 3, 16, 158, 158)          # [B, 3, T, H, W], normalized frames
    features = video_encoder.pooled(clips)            # [2, 512]
    feature_map = video_encoder(clips)                # [2, 512, 2, 10, 10]
    mel = torch.randn(2, 1, 96, 300)                  # [B, 1, n_mels, frames], log-mel
    audio_features = audio_encoder.pooled(mel)        # [2, 512]

The encoders come back on the CPU in training mode; call ``.eval()`` for feature extraction.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import registry
from avplug.checksums import CorruptFileError, atomic_write, load_torch_file, verify, write_sidecar
from avplug.errors import UserError
from registry import BACKBONES

EXPORT_FORMAT = "avplug-encoders"
_TOWERS = ("video_backbone", "audio_backbone")


class CheckpointFormatError(UserError, ValueError):
    """A file that is neither a pretraining checkpoint nor an exported encoders file."""


def _read(path: str | os.PathLike) -> dict[str, Any]:
    try:
        data = load_torch_file(path)
    except CorruptFileError as exc:  # a checksum mismatch or a file that does not unpickle
        raise CheckpointFormatError(str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("cfg"), str):
        raise CheckpointFormatError(f"{path}: expected a dict with a 'cfg' YAML string (an avplug checkpoint)")
    return data


def check_weights_file(path: str | os.PathLike, setting: str) -> None:
    """Refuse up front (before any data is read or a job queued) weights that cannot be loaded.

    ``path`` is what ``setting`` (``MODEL.WEIGHTS``, ``--weights``) names: it must be a file that
    matches its sha256 sidecar (where it has one) and that ``torch.load(weights_only=True)`` reads as a pretraining checkpoint (a dict with a ``"model"``
    state dict), an exported encoders file, or a bare state dict; otherwise a
    :class:`CheckpointFormatError` names the setting and the file.
    """
    if not Path(path).is_file():
        raise CheckpointFormatError(f"{setting} {path}: no such file (give a checkpoint written by pretraining)")
    try:
        verify(path)  # the sha256 sidecar, where there is one (quietly: the real load notes a missing one)
        data = torch.load(Path(path), map_location="cpu", weights_only=True)
    except CorruptFileError as exc:
        raise CheckpointFormatError(f"{setting} {exc}") from exc
    except Exception as exc:  # unpickling errors of every kind: say which file (the details go to the log)
        raise CheckpointFormatError(f"{setting} {path}: cannot be read as a checkpoint ({type(exc).__name__})") from exc
    usable = isinstance(data, dict) and (
        isinstance(data.get("model"), dict) or data.get("format") == EXPORT_FORMAT
        or (bool(data) and all(isinstance(v, torch.Tensor) for v in data.values()))
    )
    if not usable:
        raise CheckpointFormatError(
            f"{setting} {path}: not an avplug checkpoint (expected a dict with a 'model' state dict, "
            "an exported encoders file or a state dict)"
        )


def _tower_state_dicts(data: dict[str, Any], path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """``{"video_backbone": sd, "audio_backbone": sd}`` from either file format."""
    if data.get("format") == EXPORT_FORMAT:
        missing = [tower for tower in _TOWERS if not isinstance(data.get(tower), dict)]
        if missing:
            raise CheckpointFormatError(f"{path}: exported encoders file without {', '.join(missing)}")
        return {tower: data[tower] for tower in _TOWERS}
    model_state = data.get("model")
    if not isinstance(model_state, dict):
        raise CheckpointFormatError(
            f"{path}: has neither a 'model' state dict (pretraining checkpoint) nor "
            f"format = {EXPORT_FORMAT!r} (exported encoders)"
        )
    towers: dict[str, dict[str, torch.Tensor]] = {}
    for tower in _TOWERS:
        prefix = tower + "."
        towers[tower] = {k[len(prefix):]: v for k, v in model_state.items() if k.startswith(prefix)}
        if not towers[tower]:
            raise CheckpointFormatError(f"{path}: the 'model' state dict has no keys starting with {prefix!r}")
    return towers


def cfg_from_yaml(text: str, *, source: str = "<yaml>"):
    """The frozen cfg that a resolved-cfg YAML string describes, plugins it names loaded.

    Goes through :func:`avplug.config.load_config`, so the result is validated exactly like a
    recipe; ``source`` names the origin in errors.
    """
    from avplug.config import ConfigError, load_config

    with tempfile.TemporaryDirectory(prefix="avplug-cfg-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text)
        try:
            return load_config(path)
        except ConfigError as exc:
            raise ConfigError(f"{source}: the stored cfg is not valid here: {exc}") from exc


def _build_backbones(cfg) -> tuple[nn.Module, nn.Module]:
    video = registry.build(BACKBONES, cfg.MODEL.VIDEO, expected_type=nn.Module)
    audio = registry.build(BACKBONES, cfg.MODEL.AUDIO, expected_type=nn.Module)
    return video, audio


def _load(data: dict[str, Any], path: str | os.PathLike, cfg) -> tuple[nn.Module, nn.Module]:
    towers = _tower_state_dicts(data, path)
    if cfg is None:
        cfg = cfg_from_yaml(data["cfg"], source=str(path))
    video, audio = _build_backbones(cfg)
    for tower, module, node in (("video_backbone", video, cfg.MODEL.VIDEO), ("audio_backbone", audio, cfg.MODEL.AUDIO)):
        try:
            module.load_state_dict(towers[tower], strict=True)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{path}: the {tower} weights do not fit the backbone built from "
                f"NAME = {node.NAME!r}, WIDTH = {node.WIDTH}: {exc}"
            ) from exc
    return video, audio


def load_encoders(checkpoint_path: str | os.PathLike, cfg=None) -> tuple[nn.Module, nn.Module]:
    """``(video_backbone, audio_backbone)`` with the weights of a checkpoint or exported file.

    ``cfg`` (optional) is the cfg to build the backbones from; by default the one stored in the
    file.  The weights must match the backbones exactly (``strict`` loading): a mismatch is a
    ``RuntimeError`` naming the file and the cfg keys that chose the backbones.
    """
    return _load(_read(checkpoint_path), checkpoint_path, cfg)


def export_encoders(checkpoint_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write the two backbones' state dicts and the cfg YAML of a checkpoint to ``out_path``.

    The weights are checked by building the backbones and loading them first, so a file written
    here always loads with :func:`load_encoders`.  Written atomically with a sha256 sidecar; returns ``out_path``.
    """
    data = _read(checkpoint_path)
    video, audio = _load(data, checkpoint_path, None)
    payload = {
        "format": EXPORT_FORMAT,
        "video_backbone": video.state_dict(),
        "audio_backbone": audio.state_dict(),
        "cfg": data["cfg"],
    }
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: torch.save(payload, f), before_replace=lambda digest: write_sidecar(out, digest))
    return out
