"""Anti-aliased shapes blended in place into an ``(H, W, 3)`` float32 canvas with values in ``[0, 1]``.

Coordinates are pixels (x right, y down, fractional allowed); each shape touches only its clipped
bounding box and is vectorized over it (no per-pixel Python loops).  ``alpha`` scales the coverage.
These are the primitives both the event classes and the title pictures draw with.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["draw_disc", "draw_ellipse", "draw_rect", "draw_segment"]

Color = Sequence[float]


def _box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float):
    """Integer bounding box of ``[x0, x1] x [y0, y1]`` clipped to the canvas, or None if empty."""
    h, w = img.shape[:2]
    xa, xb = max(math.floor(x0), 0), min(math.ceil(x1) + 1, w)
    ya, yb = max(math.floor(y0), 0), min(math.ceil(y1) + 1, h)
    if xa >= xb or ya >= yb:
        return None
    return ya, yb, xa, xb


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1] in place (np.clip's Python wrapper costs more than the work here)."""
    np.maximum(x, 0.0, out=x)
    return np.minimum(x, 1.0, out=x)


def _grid(ya: int, yb: int, xa: int, xb: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(ya, yb, dtype=np.float32)[:, None], np.arange(xa, xb, dtype=np.float32)[None, :]


def _blend(img: np.ndarray, box, coverage: np.ndarray, color: Color, alpha: float) -> None:
    ya, yb, xa, xb = box
    region = img[ya:yb, xa:xb]
    region += (np.asarray(color, dtype=np.float32) - region) * (coverage * alpha)[..., None]


def draw_ellipse(
    img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: Color, alpha: float = 1.0
) -> None:
    """Filled axis-aligned ellipse centred at ``(cx, cy)`` (pixels) with radii ``rx, ry``."""
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    box = _box(img, cx - rx - 1, cy - ry - 1, cx + rx + 1, cy + ry + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    yy, xx = _grid(ya, yb, xa, xb)
    dist = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2, dtype=np.float32)
    coverage = _unit((1.0 - dist) * min(rx, ry) + 0.5)
    _blend(img, box, coverage, color, alpha)


def draw_disc(img: np.ndarray, cx: float, cy: float, r: float, color: Color, alpha: float = 1.0) -> None:
    """Filled disc of radius ``r``."""
    draw_ellipse(img, cx, cy, r, r, color, alpha)


def draw_rect(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color, alpha: float = 1.0
) -> None:
    """Filled rectangle ``[x0, x1] x [y0, y1]`` with anti-aliased edges."""
    box = _box(img, x0 - 1, y0 - 1, x1 + 1, y1 + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    yy, xx = _grid(ya, yb, xa, xb)
    cov_x = _unit(np.minimum(xx - x0, x1 - xx) + 0.5)
    cov_y = _unit(np.minimum(yy - y0, y1 - yy) + 0.5)
    _blend(img, box, (cov_x * cov_y).astype(np.float32), color, alpha)


def draw_segment(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, width: float, color: Color,
    alpha: float = 1.0,
) -> None:
    """Thick line segment from ``(x0, y0)`` to ``(x1, y1)`` with round caps."""
    half = width / 2.0
    box = _box(img, min(x0, x1) - half - 1, min(y0, y1) - half - 1,
               max(x0, x1) + half + 1, max(y0, y1) + half + 1)
    if box is None:
        return
    ya, yb, xa, xb = box
    yy, xx = _grid(ya, yb, xa, xb)
    dx, dy = x1 - x0, y1 - y0
    length2 = max(dx * dx + dy * dy, 1e-9)
    u = _unit(((xx - x0) * dx + (yy - y0) * dy) / length2)
    dist = np.hypot(xx - x0 - u * dx, yy - y0 - u * dy)
    coverage = _unit((half - dist + 0.5).astype(np.float32))
    _blend(img, box, coverage, color, alpha)
