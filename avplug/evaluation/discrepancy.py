"""The discrepancy measures of the paper (section 3, Eq. 2) on held-out titles.

For held-out snippets x_{n,m} with embeddings z_v^{n,m} (video) and z_a^{n,m} (audio), the score of a
pair is the dot product z_v^{n,m} . z_a^{n',m'} and falls into one of three distributions:

- S+  (``"S+"``):  the matched pair, n = n' and m = m' (one score per snippet);
- S-  (``"S-"``):  same title, different snippets, n = n' and m != m';
- S!= (``"S!="``): different titles, n != n'.

All pairs of S- and S!= would cost O(N^2) for N snippets, so :func:`score_distributions` samples
``pairs_per_snippet`` distinct partners per snippet (fewer when a title has fewer other snippets),
which keeps the cost linear in N.  :func:`discrepancy_measures` then estimates KL(S- || S+),
KL(S!= || S+), KL(S- || S!=) and the gap KL(S!= || S+) - KL(S- || S+) with :func:`kl_divergence`.
The paper's sampling policy is meant to shrink both KL(S- || S!=) and the gap.

:func:`embed_titles` and :func:`evaluate_discrepancy` compute the measures for a model on the
held-out titles of a catalog; the training engine calls the latter every
``cfg.EVAL.DISCREPANCY_PERIOD`` steps and ``tools/discrepancy.py`` runs it on any checkpoint.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Keys of :func:`discrepancy_measures`' result holding the four measures, in reporting order.
MEASURE_KEYS = ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap")
#: Keys of :func:`score_distributions`' result.
SCORE_KEYS = ("S+", "S-", "S!=")
#: Neighbour count of :func:`kl_divergence` (see its docstring for the choice).
DEFAULT_KL_NEIGHBOURS = 10


# ---------------------------------------------------------------------------------------------
# KL divergence from samples
# ---------------------------------------------------------------------------------------------
def _kth_neighbour_distance(points: np.ndarray, reference: np.ndarray, k: int, *, self_excluded: bool) -> np.ndarray:
    """Distance from each of ``points`` to its k-th nearest neighbour among sorted ``reference``.

    In one dimension the k nearest neighbours of x lie among the k reference points on either side
    of x's insertion position, so 2k candidates per point suffice (O((n + m) log m) in all).  With
    ``self_excluded`` the points are ``reference`` itself, in sorted order, and each point is not
    its own neighbour.
    """
    m = reference.size
    if self_excluded:
        pos = np.arange(m)
        offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])
    else:
        pos = np.searchsorted(reference, points)
        offsets = np.arange(-k, k)
    idx = pos[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < m)
    cand = np.abs(reference[np.clip(idx, 0, m - 1)] - points[:, None])
    cand[~valid] = np.inf
    return np.partition(cand, k - 1, axis=1)[:, k - 1]


def kl_divergence(p_samples: Any, q_samples: Any, *, k: int = DEFAULT_KL_NEIGHBOURS) -> float:
    """Estimate KL(P || Q) in nats from 1-D samples of P and Q.

    Estimator: the k-nearest-neighbour estimator of Wang, Kulkarni and Verdú ("Divergence
    estimation for multidimensional densities via k-nearest-neighbor distances", IEEE Trans.
    Inf. Theory 55(5), 2009), in dimension 1::

        KL^ = mean_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

    where, for each of the n samples x_i of P, rho_k(i) is the distance to its k-th nearest
    neighbour among the other n - 1 samples of P and nu_k(i) the distance to its k-th nearest
    neighbour among the m samples of Q.  There is no binning and no bandwidth; ``k`` (default 10)
    is the only parameter.  The estimator is consistent (it converges to the true divergence as
    n, m -> infinity for fixed k, for densities satisfying mild regularity conditions) and
    asymptotically unbiased; with equal k in both terms the leading bias terms of the two
    log-distance averages cancel.  k = 10 rather than 1 divides the variance of each log-distance
    term by about 16 (trigamma(10) vs trigamma(1)) at a bias that stays negligible for smooth
    densities with 1e4 or more samples; for 1-D Gaussians with 1e5 samples each, Q at least as
    wide as P and P's mean within two of Q's standard deviations, the estimate is within 10% of
    the analytic value whenever that value is above about 0.05 nats (below that, the absolute
    error is about 0.01).

    When a sample-based KL cannot be trusted:

    - P puts mass where Q has (almost) none: the true KL is large or infinite and the estimate is
      driven by a few far-away Q neighbours, so it is noisy and biased low; treat values above a
      few nats as "very different", not as numbers to compare;
    - too few samples: with n or m in the hundreds the standard error is around 0.1 nats and the
      bias from the density varying across a neighbourhood is no longer negligible;
    - heavy tails: a few extreme samples of P with distant Q neighbours dominate the mean;
    - ties (repeated values, e.g. a collapsed embedding): distances of 0 are floored at 1e-12
      times the pooled spread, so identical samples from identical distributions give about 0,
      but heavily tied data give meaningless estimates.

    The estimate can be slightly negative when P and Q are (nearly) equal.
    """
    p = np.asarray(p_samples, dtype=np.float64).ravel()
    q = np.asarray(q_samples, dtype=np.float64).ravel()
    if k < 1:
        raise ValueError(f"kl_divergence: k = {k} neighbours, need k >= 1")
    n, m = p.size, q.size
    if n <= k or m < k:
        raise ValueError(
            f"kl_divergence: too few samples for k = {k} neighbours (P has {n}, needs > {k}; "
            f"Q has {m}, needs >= {k})"
        )
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("kl_divergence: samples contain NaN or infinity")
    p.sort()
    q.sort()
    spread = max(float(np.ptp(np.concatenate([p[[0, -1]], q[[0, -1]]]))), 1.0)
    floor = 1e-12 * spread
    rho = np.maximum(_kth_neighbour_distance(p, p, k, self_excluded=True), floor)
    nu = np.maximum(_kth_neighbour_distance(p, q, k, self_excluded=False), floor)
    return float(np.mean(np.log(nu) - np.log(rho)) + math.log(m / (n - 1)))


# ---------------------------------------------------------------------------------------------
# Score distributions and measures
# ---------------------------------------------------------------------------------------------
def _as_matrix(z: Any, name: str) -> np.ndarray:
    if isinstance(z, torch.Tensor):
        z = z.detach().to("cpu", torch.float64).numpy()
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {tuple(z.shape)}")
    return z


def _distinct_draws(rng: np.random.Generator, population: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """For every row r, ``min(count, population[r])`` distinct integers of ``range(population[r])``.

    Returned flat as ``(rows, values)``.  Vectorized over rows: rows with at most ``count``
    candidates take them all; rows with at most ``count**2`` candidates draw by sorting random keys
    (exact, width <= count**2); larger rows draw with replacement and redraw any row holding a
    repeat, which happens with probability below 1 - exp(-1/2) per round.  Cost O(rows * count**2)
    at most, linear in the number of rows.
    """
    rows_out, values_out = [], []
    everything = np.flatnonzero(population <= count)
    if everything.size:
        sizes = population[everything]
        rows_out.append(np.repeat(everything, sizes))
        values_out.append(np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes))
    small = np.flatnonzero((population > count) & (population <= count * count))
    if small.size:
        width = int(population[small].max())
        step = max(1, (1 << 22) // width)
        for lo in range(0, small.size, step):
            rows = small[lo : lo + step]
            keys = rng.random((rows.size, width))
            keys[np.arange(width)[None, :] >= population[rows, None]] = np.inf
            rows_out.append(np.repeat(rows, count))
            values_out.append(np.argpartition(keys, count - 1, axis=1)[:, :count].ravel())
    large = np.flatnonzero(population > count * count)
    if large.size:
        values = (rng.random((large.size, count)) * population[large, None]).astype(np.int64)
        while True:
            ordered = np.sort(values, axis=1)
            repeat = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if not repeat.any():
                break
            values[repeat] = (rng.random((int(repeat.sum()), count)) * population[large[repeat], None]).astype(np.int64)
        rows_out.append(np.repeat(large, count))
        values_out.append(values.ravel())
    if not rows_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows_out).astype(np.int64), np.concatenate(values_out).astype(np.int64)


def score_distributions(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, pairs_per_snippet: int = 16, seed: int = 0
) -> dict[str, np.ndarray]:
    """The scores z_v . z_a of the three distributions of Eq. 2, as float64 arrays.

    ``z_video`` and ``z_audio`` are ``[N, d]`` (row i of both is snippet i), ``title_ids`` has N
    entries.  Returns ``{"S+": [N], "S-": [<= N * p], "S!=": [<= N * p]}`` with p =
    ``pairs_per_snippet``: for every snippet i (its video) p distinct other snippets j of the same
    title (all of them if the title has fewer) and p distinct snippets j of other titles are drawn,
    and the score is z_v^i . z_a^j.  The draw depends only on ``seed`` and the inputs.
    """
    zv, za = _as_matrix(z_video, "z_video"), _as_matrix(z_audio, "z_audio")
    if zv.shape != za.shape:
        raise ValueError(f"z_video {zv.shape} and z_audio {za.shape} must have the same shape")
    n = zv.shape[0]
    if len(title_ids) != n:
        raise ValueError(f"title_ids has {len(title_ids)} entries for {n} snippets")
    if pairs_per_snippet < 1:
        raise ValueError(f"pairs_per_snippet = {pairs_per_snippet}, need >= 1")
    _, labels = np.unique(np.asarray([str(t) for t in title_ids]), return_inverse=True)
    # Snippets grouped by title: title t occupies order[start[t]:start[t] + size[t]].
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    start, size = starts[labels], sizes[labels]  # per snippet: its title's block
    rank = position - start  # the snippet's place inside its block
    # S-: partners at offsets 1 .. size - 1 inside the block (cyclically), so never the snippet itself.
    same_i, offset = _distinct_draws(rng, size - 1, pairs_per_snippet)
    same_j = order[start[same_i] + (rank[same_i] + 1 + offset) % size[same_i]]
    # S!=: the n - size snippets outside the block, numbered around it.
    diff_i, u = _distinct_draws(rng, n - size, pairs_per_snippet)
    diff_j = order[np.where(u < start[diff_i], u, u + size[diff_i])]

    def scores(rows: np.ndarray, cols: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = np.empty(rows.size)
        for lo in range(0, rows.size, chunk):  # chunks keep the gathered rows in cache
            out[lo : lo + chunk] = np.einsum("ij,ij->i", zv[rows[lo : lo + chunk]], za[cols[lo : lo + chunk]])
        return out

    return {
        "S+": np.einsum("ij,ij->i", zv, za),
        "S-": scores(same_i, same_j),
        "S!=": scores(diff_i, diff_j),
    }


def measures_from_scores(scores: Mapping[str, np.ndarray], *, k: int = DEFAULT_KL_NEIGHBOURS) -> dict[str, float]:
    """The four discrepancy measures from :func:`score_distributions`' output, plus sample counts."""
    for key in SCORE_KEYS:
        if key not in scores:
            raise KeyError(f"scores lack {key!r} (have {sorted(scores)})")
        if len(scores[key]) <= k:
            raise ValueError(
                f"{key} has {len(scores[key])} scores, too few for the KL estimate (need > {k}); "
                "embed more held-out snippets, from titles holding at least 2 snippets each"
            )
    s_plus, s_minus, s_diff = scores["S+"], scores["S-"], scores["S!="]
    kl_minus_plus = kl_divergence(s_minus, s_plus, k=k)
    kl_diff_plus = kl_divergence(s_diff, s_plus, k=k)
    return {
        "KL(S-||S+)": kl_minus_plus,
        "KL(S!=||S+)": kl_diff_plus,
        "KL(S-||S!=)": kl_divergence(s_minus, s_diff, k=k),
        "gap": kl_diff_plus - kl_minus_plus,
        "num_S+": len(s_plus),
        "num_S-": len(s_minus),
        "num_S!=": len(s_diff),
    }


def discrepancy_measures(
    z_video: Any, z_audio: Any, title_ids: Sequence[Hashable], *, pairs_per_snippet: int = 16, seed: int = 0
) -> dict[str, float]:
    """KL(S-||S+), KL(S!=||S+), KL(S-||S!=) and the gap KL(S!=||S+) - KL(S-||S+).

    Inputs as in :func:`score_distributions`.  Returns a flat dict of floats under
    :data:`MEASURE_KEYS` plus the sample counts ``num_S+``, ``num_S-``, ``num_S!=`` and
    ``num_titles`` (ints), ready to log next to the loss.
    """
    scores = score_distributions(z_video, z_audio, title_ids, pairs_per_snippet=pairs_per_snippet, seed=seed)
    result = measures_from_scores(scores)
    result["num_titles"] = len({str(t) for t in title_ids})
    return result


def plot_score_histograms(scores: Mapping[str, np.ndarray], path: str | Path, *, title: str = "") -> Path:
    """Write overlaid, density-normalized histograms of S+, S- and S!= to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [np.asarray(scores[key], dtype=np.float64) for key in SCORE_KEYS]
    pooled = np.concatenate([v for v in values if v.size])
    if pooled.size == 0:
        raise ValueError("plot_score_histograms: all three distributions are empty")
    lo, hi = np.percentile(pooled, [0.5, 99.5])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, 61)
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"S+": "tab:green", "S-": "tab:orange", "S!=": "tab:blue"}
    for key, v in zip(SCORE_KEYS, values):
        if v.size:
            ax.hist(np.clip(v, lo, hi), bins=bins, density=True, alpha=0.45, color=colors[key], label=f"{key} (n={v.size})")
    ax.set_xlabel(r"score $z_v^\top z_a$")
    ax.set_ylabel("density")
    ax.set_title(title or "Score distributions on held-out titles")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Embedding held-out titles with a model
# ---------------------------------------------------------------------------------------------
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
    are transformed on ``device``.  Embeddings come back as float32 on the CPU, in ``items`` order.
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
) -> dict[str, float]:
    """The discrepancy measures of ``model`` on the held-out titles of ``cfg``'s catalog.

    Embeds up to ``cfg.EVAL.DISCREPANCY_MAX_SNIPPETS`` held-out snippets
    (:func:`select_heldout_items`) with deterministic inputs (:func:`build_eval_transform`),
    samples ``cfg.EVAL.DISCREPANCY_PAIRS_PER_SNIPPET`` pairs per snippet for S- and S!= (seeded
    by ``cfg.SEED``) and returns :func:`discrepancy_measures`' dict plus ``seconds``.  ``store``
    and ``titles`` default to ``SnippetStore(cfg.DATA.STORE_DIR)`` and its held-out titles
    (``load_titles(cfg, "heldout")``); ``plot_path`` (optional) receives the score histograms.
    No collective operation runs: call it on one rank (or on all).
    """
    from avplug.data.dataset import PretrainDataset

    start = time.perf_counter()
    if store is None:
        from avplug.data.store import SnippetStore

        store = SnippetStore(cfg.DATA.STORE_DIR)
    if titles is None:
        from avplug.data.catalog import load_titles

        titles = load_titles(cfg, "heldout")
    items = select_heldout_items(titles, cfg.EVAL.DISCREPANCY_MAX_SNIPPETS)
    if not items:
        raise ValueError(
            f"no held-out title with at least 2 snippets in {getattr(store, 'root', store)} "
            f"(DATA.HELDOUT_FRACTION = {cfg.DATA.HELDOUT_FRACTION}, {len(titles)} held-out titles): "
            "the discrepancy measures need held-out titles"
        )
    dataset = PretrainDataset(cfg, store, titles, transform=build_eval_transform(cfg))
    z_video, z_audio, title_ids = embed_titles(
        model, dataset, items, batch_size=max(1, min(cfg.SOLVER.BATCH_SIZE, 128)), device=device,
        num_workers=int(cfg.DATA.NUM_WORKERS),
    )
    scores = score_distributions(
        z_video, z_audio, title_ids, pairs_per_snippet=cfg.EVAL.DISCREPANCY_PAIRS_PER_SNIPPET, seed=cfg.SEED
    )
    result = measures_from_scores(scores)
    result["num_titles"] = len(set(title_ids))
    result["seconds"] = round(time.perf_counter() - start, 3)
    if plot_path is not None:
        plot_score_histograms(scores, plot_path)
    logger.info(
        "discrepancy on %d held-out snippets of %d titles: %s",
        len(title_ids), result["num_titles"], ", ".join(f"{k} {result[k]:.4f}" for k in MEASURE_KEYS),
    )
    return result
