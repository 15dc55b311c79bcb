"""Held-out snippets of a catalog embedded with a model, and their held-out measures.

:func:`evaluate_discrepancy` picks up to ``EVAL.DISCREPANCY_MAX_SNIPPETS`` held-out snippets
spread evenly over the held-out titles (:func:`select_heldout_items`), embeds them with
deterministic inputs (:func:`build_eval_transform`, :func:`embed_titles`) and returns
:func:`avplug.evaluation.discrepancy.heldout_measures`' dict (retrieval and the discrepancy
measures with intervals).  The engine's held-out hook calls it every
``cfg.EVAL.DISCREPANCY_PERIOD`` steps and ``tools/discrepancy.py`` runs it on any checkpoint.

The data pipeline (datasets, transforms, pytorchvideo) is imported on use, not with this module:
registering the built-in hooks imports it whenever a cfg is loaded (no import cycle is involved).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avplug.config.errors import ConfigError
from avplug.evaluation.discrepancy import MEASURE_KEYS, heldout_measures_and_scores, plot_score_histograms
from avplug.evaluation.intervals import format_estimate

logger = logging.getLogger(__name__)


def select_heldout_items(titles: Sequence[Any], max_snippets: int) -> list[tuple[str, int]]:
    """Up to ``max_snippets`` ``(title_id, snippet_index)`` spread evenly over ``titles``.

    Deterministic.  Each title gets an equal share (water-filling: a title with fewer snippets than
    its share gives the rest to the others), at least 2 so that it contributes to S-; within a
    title the snippets are evenly spaced over its duration.  When there are more titles than
    ``max_snippets // 2``, that many titles evenly spaced in the given order get 2 snippets each.
    Titles with a single snippet are left out (they cannot give S- pairs).
    """
    usable = [t for t in titles if t.num_snippets >= 2]
    if max_snippets < 2 or not usable:
        return []
    if len(usable) > max_snippets // 2:
        keep = np.linspace(0, len(usable) - 1, max_snippets // 2).round().astype(int)
        usable = [usable[i] for i in sorted(set(keep.tolist()))]
    quota: dict[str, int] = {}
    remaining = max_snippets
    by_size = sorted(usable, key=lambda t: (t.num_snippets, t.title_id))
    for position, title in enumerate(by_size):
        share = remaining // (len(by_size) - position)
        quota[title.title_id] = min(title.num_snippets, share)
        remaining -= quota[title.title_id]
    items = []
    for title in usable:
        count = quota[title.title_id]
        indices = np.unique(np.linspace(0, title.num_snippets - 1, count).round().astype(int))
        items.extend((title.title_id, int(i)) for i in indices)
    return items


def build_eval_transform(cfg):
    """The pretraining transform of ``cfg`` made deterministic: center crop, no color jitter, no
    mel band dropped (what the held-out snippets are embedded with)."""
    from avplug.data.transforms import PretrainTransform, short_side_scaled_size

    class _EvalTransform(PretrainTransform):
        def draw(self, video_shape, audio_shape, generator=None):
            params = super().draw(video_shape, audio_shape, generator)
            height, width = short_side_scaled_size(int(video_shape[-2]), int(video_shape[-1]), self.short_side)
            params["crop_top"] = (height - self.crop.size) // 2
            params["crop_left"] = (width - self.crop.size) // 2
            return params

    v, a = cfg.INPUT.VIDEO, cfg.INPUT.AUDIO
    return _EvalTransform(
        short_side=v.SHORT_SIDE, crop=v.CROP, color_jitter=0.0, mean=tuple(v.MEAN), std=tuple(v.STD),
        sample_rate=cfg.DATA.AUDIO_RATE, n_fft=a.N_FFT, hop_length=a.HOP, n_mels=a.MEL_BINS, drop_fraction=0.0,
    )


@torch.no_grad()
def embed_titles(
    model: torch.nn.Module,
    dataset: Any,
    items: Sequence[tuple[str, int]],
    *,
    batch_size: int,
    device: torch.device | str,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(z_video [N, d], z_audio [N, d], title_ids)`` of the snippets ``items`` of ``dataset``.

    ``model`` is an :class:`avplug.models.AudioVisualModel` (a DistributedDataParallel wrapper is
    unwrapped, so no collective runs); it is put in eval mode and restored to its previous mode
    afterwards.  ``dataset`` is a :class:`avplug.data.dataset.PretrainDataset` (built with
    :func:`build_eval_transform` for deterministic inputs); raw samples (``cfg.INPUT.ON_DEVICE``)
    are transformed on ``device``.  Embeddings come back as float32 on the CPU, in ``items`` order; a
    snippet that does not read is replaced by a nearby one (:mod:`avplug.data.dataset`), with a warning.
    """
    from torch.utils.data import DataLoader

    from avplug.data.dataset import collate_snippets
    from avplug.data.transforms import BatchTransform

    net = getattr(model, "module", model)
    device = torch.device(device)
    chunks = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    loader = DataLoader(dataset, batch_sampler=chunks, collate_fn=collate_snippets, num_workers=num_workers)
    to_device = None
    was_training = net.training
    net.eval()
    z_video, z_audio, title_ids = [], [], []
    start = last = time.perf_counter()
    try:
        for batch in loader:
            if "aug" in batch:
                to_device = to_device or BatchTransform(dataset.transform, device)
                batch = to_device(batch)
            video = batch["video"].to(device, non_blocking=True)
            audio = batch["audio"].to(device, non_blocking=True)
            zv, za = net(video, audio)
            z_video.append(zv.float().cpu())
            z_audio.append(za.float().cpu())
            title_ids.extend(batch["title_id"])
            for title_id, index, why in batch.get("bad_snippets", ()):
                logger.warning("held-out snippet unreadable, a nearby one embedded instead: title %r snippet %d: %s", title_id, index, why)
            now = time.perf_counter()
            if now - last > 30 or len(title_ids) == len(items):
                last = now
                rate = len(title_ids) / max(now - start, 1e-9)
                logger.info(
                    "embedding held-out snippets: %d/%d, %.1f snippets/s, ETA %.0f s",
                    len(title_ids), len(items), rate, (len(items) - len(title_ids)) / rate,
                )
    finally:
        net.train(was_training)
    if not title_ids:
        raise ValueError("embed_titles: no items to embed")
    return torch.cat(z_video), torch.cat(z_audio), title_ids


def evaluate_discrepancy(
    cfg,
    model: torch.nn.Module,
    device: torch.device | str,
    *,
    store: Any = None,
    titles: Sequence[Any] | None = None,
    plot_path: str | Path | None = None,
) -> dict[str, Any]:
    """The held-out measures of ``model`` (retrieval, discrepancy, intervals) on ``cfg``'s catalog.

    Embeds up to ``cfg.EVAL.DISCREPANCY_MAX_SNIPPETS`` held-out snippets
    (:func:`select_heldout_items`) with deterministic inputs (:func:`build_eval_transform`) and
    returns :func:`~avplug.evaluation.discrepancy.heldout_measures`' dict (seed ``cfg.SEED``,
    ``cfg.EVAL.BOOTSTRAP_REPLICATES`` replicates, ``cfg.EVAL.DISCREPANCY_ESTIMATOR``,
    ``cfg.EVAL.DISCREPANCY_PAIRS_PER_SNIPPET`` pairs per snippet for S- and S!=) plus ``seconds``.
    It holds the keys :func:`~avplug.evaluation.discrepancy.discrepancy_measures` returns, so
    older readers keep working.  ``store`` and ``titles`` default to
    ``SnippetStore(cfg.DATA.STORE_DIR)`` and its held-out titles (``load_titles(cfg, "heldout")``); ``plot_path`` (optional) receives the score histograms.
    No collective operation runs: call it on one rank (or on all).
    """
    from avplug.data.dataset import PretrainDataset

    start = time.perf_counter()
    if store is None:
        from avplug.data.store import SnippetStore

        store = SnippetStore(cfg.DATA.STORE_DIR)
    if titles is None:
        from avplug.data.splits import load_titles

        titles = load_titles(cfg, "heldout")
    items = select_heldout_items(titles, cfg.EVAL.DISCREPANCY_MAX_SNIPPETS)
    if not items:
        raise ConfigError(
            f"no held-out title with at least 2 snippets in {getattr(store, 'root', store)} "
            f"(DATA.HELDOUT_FRACTION = {cfg.DATA.HELDOUT_FRACTION}, {len(titles)} held-out titles): "
            "the discrepancy measures need held-out titles"
        )
    dataset = PretrainDataset(cfg, store, titles, transform=build_eval_transform(cfg))
    z_video, z_audio, title_ids = embed_titles(
        model, dataset, items, batch_size=max(1, min(cfg.SOLVER.BATCH_SIZE, 128)), device=device,
        num_workers=int(cfg.DATA.NUM_WORKERS),
    )
    result, scores = heldout_measures_and_scores(
        z_video, z_audio, title_ids, seed=cfg.SEED, replicates=cfg.EVAL.BOOTSTRAP_REPLICATES,
        estimator=cfg.EVAL.DISCREPANCY_ESTIMATOR, pairs_per_snippet=cfg.EVAL.DISCREPANCY_PAIRS_PER_SNIPPET,
    )
    result["seconds"] = round(time.perf_counter() - start, 3)
    if plot_path is not None:
        plot_score_histograms({key: value.values for key, value in scores.items()}, plot_path)
    logger.info(
        "held-out measures on %d snippets of %d titles: %s",
        len(title_ids), result["num_titles"],
        ", ".join(f"{k} {format_estimate(result[k], result[k + '_ci_low'], result[k + '_ci_high'], digits=3, nonnegative=k != 'gap')}"
                  for k in (*MEASURE_KEYS, "v2a_R@1", "a2v_R@1")),
    )
    return result
