"""Vectorized draws of distinct snippet indices, one group per row, in pure numpy.

These are the building blocks of every group sampler (and of sampler plugins):

- :func:`sample_distinct`: for each group ``g``, ``sizes[g]`` distinct integers drawn uniformly from
  ``[0, n[g])`` (every ``sizes[g]``-subset equally likely), for all groups at once: draws with
  repeats redrawn where ``k`` is small against ``n``, a random permutation's prefix elsewhere; the
  work does not grow with ``n``.
- :func:`sample_windowed`: for each group, ``sizes[g]`` distinct integers from ``[0, m[g])`` whose span
  ``max - min + 1`` is at most ``window``, every such subset equally likely (see the function).

Both return the groups concatenated in group order, each group sorted ascending, so group ``g``
occupies ``sizes[:g].sum() .. sizes[:g + 1].sum()`` of the flat result.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

_PAD = np.iinfo(np.int64).max


def _distinct_rows(rng: np.random.Generator, n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[G, max(c)]`` array: row g holds ``c[g]`` distinct values of ``[0, n[g])``, then ``_PAD``.

    Each row is a uniformly random ``c[g]``-subset.  Sparse rows (``4 c <= n``) draw with
    replacement and redraw repeated values until none is left (a few rounds); dense rows take the
    first ``c`` of a random permutation of ``[0, n)`` (``n < 4 c``: a few times ``c`` keys per row).
    Both procedures commute with any relabeling of ``[0, n)``, so the subset they return is
    uniform.
    """
    groups = len(n)
    width = int(c.max()) if groups else 0
    out = np.full((groups, width), _PAD, dtype=np.int64)
    sparse = 4 * c <= n
    if sparse.any():
        out[sparse] = _redraw_repeats(rng, n[sparse], c[sparse], width)
    if not sparse.all():
        out[~sparse] = _random_prefix(rng, n[~sparse], c[~sparse], width)
    return out


def _redraw_repeats(rng: np.random.Generator, n: np.ndarray, c: np.ndarray, width: int) -> np.ndarray:
    cols = np.arange(width)
    used = cols[None, :] < c[:, None]
    rows = np.where(used, (rng.random((len(n), width)) * n[:, None]).astype(np.int64), _PAD)
    while True:
        rows.sort(axis=1)
        repeat = np.zeros_like(used)
        repeat[:, 1:] = (rows[:, 1:] == rows[:, :-1]) & (rows[:, 1:] != _PAD)
        if not repeat.any():
            return rows
        which = np.nonzero(repeat)
        rows[which] = (rng.random(len(which[0])) * n[which[0]]).astype(np.int64)


def _random_prefix(rng: np.random.Generator, n: np.ndarray, c: np.ndarray, width: int) -> np.ndarray:
    """The first ``c[g]`` positions of a uniformly random permutation of ``[0, n[g])`` per row."""
    span = int(n.max())
    keys = rng.random((len(n), span))
    keys[np.arange(span)[None, :] >= n[:, None]] = 2.0  # past the row's n: sorts last
    order = np.argsort(keys, axis=1)[:, :width]
    out = np.full((len(n), width), _PAD, dtype=np.int64)
    out[:, : order.shape[1]] = order
    out[np.arange(width)[None, :] >= c[:, None]] = _PAD
    return out


def _flatten_sorted(rows: np.ndarray) -> np.ndarray:
    rows = np.sort(rows, axis=1)
    return rows[rows != _PAD]


def _check(n: np.ndarray, sizes: np.ndarray) -> None:
    if n.shape != sizes.shape or n.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of the same length, got shapes {n.shape} and {sizes.shape}")
    if (sizes < 0).any() or (sizes > n).any():
        g = int(np.flatnonzero((sizes < 0) | (sizes > n))[0])
        raise ValueError(f"group {g}: cannot draw {int(sizes[g])} distinct values from {int(n[g])}")


def sample_distinct(rng: np.random.Generator, n, sizes) -> np.ndarray:
    """Uniformly random ``sizes[g]``-subsets of ``[0, n[g])`` for every group g, flattened.

    Every subset of the right size is equally likely; groups are independent.  Returns an int64
    array of length ``sizes.sum()``: the groups in order, each sorted ascending.
    """
    n = np.asarray(n, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    _check(n, sizes)
    if not len(n):
        return np.zeros(0, dtype=np.int64)
    return _flatten_sorted(_distinct_rows(rng, n, sizes))


@lru_cache(maxsize=256)
def _tail_cdf(window: int, size: int) -> np.ndarray:
    """CDF over ``r = size - 1 .. window - 2`` with weights ``C(r, size - 1)`` (see sample_windowed)."""
    r = np.arange(size - 1, window - 1, dtype=np.float64)
    # log C(r, s - 1) up to a constant: C(r, s - 1) / C(r - 1, s - 1) = r / (r - s + 1).
    steps = np.log(r[1:]) - np.log(r[1:] - size + 1)
    log_w = np.concatenate([[0.0], np.cumsum(steps)])
    w = np.exp(log_w - log_w.max())
    cdf = np.cumsum(w)
    return cdf / cdf[-1]


def sample_windowed(rng: np.random.Generator, m, sizes, window: int) -> np.ndarray:
    """For each group g, ``sizes[g]`` distinct indices of ``[0, m[g])`` with span at most ``window``.

    The draw is uniform over the valid configurations: every ``s``-subset of ``[0, m)`` with
    ``max - min + 1 <= w`` is equally likely (``s = sizes[g]``, ``w = min(window, m)``; ``window = 0``
    means no window, ``w = m``).  It is exact, with no rejection:

    1. the smallest index ``a`` is drawn with probability proportional to the number of valid
       subsets whose minimum is ``a``, ``C(min(w - 1, m - 1 - a), s - 1)``.  That count is the same
       ``C(w - 1, s - 1)`` for every ``a <= m - w`` (total ``(m - w + 1) C(w - 1, s - 1)``), and for
       the last ``w - s`` starts it is ``C(r, s - 1)`` with ``r = m - 1 - a`` in ``s - 1 .. w - 2``
       (total ``C(w - 1, s)``, by the hockey-stick identity).  So ``a`` is uniform on
       ``0 .. m - w`` with probability ``s (m - w + 1) / (s (m - w + 1) + w - s)``, else ``a = m - 1 - r``
       with ``r`` drawn from the weights ``C(r, s - 1)``;
    2. the other ``s - 1`` indices are a uniform subset of the ``min(w - 1, m - 1 - a)`` indices
       after ``a``.

    Consequences: ``window = s`` gives ``s`` temporally adjacent snippets (a uniformly placed run);
    ``window >= m`` gives a uniform ``s``-subset of the title.  Requires ``sizes <= m`` and, where the
    window binds (``window < m``), ``sizes <= window``.  Returns the flat groups, each sorted.
    """
    m = np.asarray(m, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    _check(m, sizes)
    if window < 0:
        raise ValueError(f"window must be >= 0 (0: none), got {window}")
    if not len(m):
        return np.zeros(0, dtype=np.int64)
    windowed = (window > 0) & (window < m) & (sizes > 0)
    if (sizes[windowed] > window).any():
        g = int(np.flatnonzero(windowed & (sizes > window))[0])
        raise ValueError(f"group {g}: {int(sizes[g])} distinct snippets cannot fit a window of {window}")
    if not windowed.any():
        return sample_distinct(rng, m, sizes)

    w = window
    idx = np.flatnonzero(windowed)
    mw, sw = m[idx], sizes[idx]
    flat_starts = mw - w + 1
    p_flat = sw * flat_starts / (sw * flat_starts + (w - sw))
    use_flat = rng.random(len(idx)) < p_flat
    a = rng.integers(0, flat_starts)
    tail = np.flatnonzero(~use_flat)
    if len(tail):
        u = rng.random(len(tail))
        r = np.empty(len(tail), dtype=np.int64)
        for s in np.unique(sw[tail]):
            sel = sw[tail] == s
            cdf = _tail_cdf(w, int(s))
            r[sel] = int(s) - 1 + np.minimum(np.searchsorted(cdf, u[sel], side="right"), len(cdf) - 1)
        a[tail] = mw[tail] - 1 - r

    # One Floyd pass for every group: plain groups draw s of m; windowed ones s - 1 of the L after a.
    pool = m.copy()
    count = sizes.copy()
    base = np.zeros(len(m), dtype=np.int64)
    pool[idx] = np.minimum(w - 1, mw - 1 - a)
    count[idx] = sw - 1
    base[idx] = a + 1
    rows = _distinct_rows(rng, pool, count)
    rows = np.where(rows == _PAD, _PAD, rows + base[:, None])
    first = np.full((len(m), 1), _PAD, dtype=np.int64)
    first[idx, 0] = a
    return _flatten_sorted(np.concatenate([first, rows], axis=1))
