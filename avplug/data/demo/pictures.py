"""The pictures of the demo corpus: location backgrounds, the main character, the colour grade, the
channel logo and letterbox, composed into the frames of a planned title or stand-in clip.

Frames are drawn in float32 RGB in ``[0, 1]`` and handed out as ``(height, width, 3)`` uint8; they
are a pure function of the plan (no randomness here).  Sizes scale with ``unit = height / 120``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avplug.data.demo.events import event_class
from avplug.data.demo.shapes import draw_disc, draw_ellipse, draw_rect

__all__ = ["clip_frames", "location_frame", "title_frames"]


def _location_canvas(loc: dict, width: int, height: int, margin: int) -> np.ndarray:
    """The location's background, ``(height, width + margin, 3)`` float32 (the margin is for panning)."""
    w = width + margin
    yy, xx = np.mgrid[0:height, 0:w].astype(np.float32) / np.float32(height)
    a = loc["angle"]
    along = np.cos(a) * xx + np.sin(a) * yy
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    img = (np.asarray(loc["top"], np.float32) * (1 - along[..., None])
           + np.asarray(loc["bottom"], np.float32) * along[..., None])
    f, ph, c = loc["tex_freq"], loc["tex_phase"], loc["tex_contrast"]
    across = -np.sin(a) * xx + np.cos(a) * yy
    kind = loc["texture"]
    if kind == "stripes":
        tex = np.sin(2 * np.pi * f * across + ph)
    elif kind == "checker":
        tex = np.sign(np.sin(2 * np.pi * f * xx + ph) * np.sin(2 * np.pi * f * yy + ph)) * 0.7
    elif kind == "waves":
        tex = np.sin(2 * np.pi * f * xx + 2.0 * np.sin(2 * np.pi * 0.7 * f * yy + ph))
    else:  # blobs
        tex = np.zeros_like(xx)
        for bx, by, br, dv in loc["blobs"]:
            tex += dv / 0.3 * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * br**2))
    img *= (1.0 + c * tex)[..., None]
    if loc["floor"] is not None:
        top = int(loc["floor"] * height)
        shade = np.linspace(1.0, 0.7, height - top, dtype=np.float32)[:, None, None]
        img[top:] = np.asarray(loc["floor_color"], np.float32) * shade * (1.0 + 0.5 * c * tex[top:, :, None])
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _pan_window(canvas: np.ndarray, width: int, speed: float, offset: float, t: float) -> np.ndarray:
    """The part of a panning background seen at scene time ``t`` (back and forth over the margin)."""
    margin = canvas.shape[1] - width
    if margin <= 0:
        return canvas
    pos = (offset * 2 * margin + speed * t) % (2 * margin)
    x = int(pos if pos <= margin else 2 * margin - pos)
    return canvas[:, x : x + width]


def _mouth_opening(syllables: np.ndarray, t: float) -> float:
    if len(syllables) == 0:
        return 0.0
    start, length = syllables[:, 0], syllables[:, 1]
    inside = (t >= start) & (t < start + length)
    if not inside.any():
        return 0.0
    return float(np.sin(np.pi * (t - start[inside]) / length[inside]).max())


@dataclass(frozen=True)
class _Sprite:
    """A pre-drawn picture with premultiplied colour and coverage, pasted at whole-pixel positions."""

    rgb: np.ndarray  # (h, w, 3), premultiplied by alpha
    alpha: np.ndarray  # (h, w)
    anchor: tuple[float, float]  # (x, y) inside the patch that is placed at the requested point

    def paste(self, img: np.ndarray, x: float, y: float) -> tuple[int, int]:
        """Paste with the anchor at about ``(x, y)``; returns the whole-pixel anchor position used."""
        h, w = self.alpha.shape
        x0, y0 = round(x - self.anchor[0]), round(y - self.anchor[1])
        ya, yb = max(y0, 0), min(y0 + h, img.shape[0])
        xa, xb = max(x0, 0), min(x0 + w, img.shape[1])
        if ya < yb and xa < xb:
            region = img[ya:yb, xa:xb]
            region *= 1.0 - self.alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
            region += self.rgb[ya - y0 : yb - y0, xa - x0 : xb - x0]
        return x0 + int(self.anchor[0]), y0 + int(self.anchor[1])


def _character_sprite(ch: dict, unit: float) -> _Sprite:
    """The main character without its mouth (head, hair, optional hat, eyes, shoulders)."""
    s = ch["scale"] * unit
    rx, ry = ch["head_rx"] * unit, ch["head_ry"] * unit
    width = math.ceil(2 * max(15 * s, 1.3 * rx)) + 4
    top = math.ceil(1.6 * ry) + 2
    height = math.ceil(top + ry + 30 * s) + 2
    patch = np.zeros((height, width, 4), np.float32)
    x, y = width // 2, top

    def rgba(color):
        return [*color, 1.0]

    draw_ellipse(patch, x, y + ry + 14 * s, 15 * s, 16 * s, rgba(ch["shirt"]))
    draw_ellipse(patch, x, y, rx, ry, rgba(ch["skin"]))
    draw_ellipse(patch, x, y - 0.6 * ry, rx * 1.05, ry * 0.5, rgba(ch["hair"]))
    if ch["hat"] is not None:
        draw_rect(patch, x - 1.3 * rx, y - 0.9 * ry, x + 1.3 * rx, y - 0.75 * ry, rgba(ch["hat"]))
        draw_rect(patch, x - 0.8 * rx, y - 1.5 * ry, x + 0.8 * rx, y - 0.8 * ry, rgba(ch["hat"]))
    for side in (-1, 1):
        draw_disc(patch, x + side * ch["eye_gap"] * unit, y - 0.05 * ry, 1.3 * s, rgba((0.05, 0.05, 0.08)))
    return _Sprite(rgb=np.ascontiguousarray(patch[..., :3]), alpha=np.ascontiguousarray(patch[..., 3]),
                   anchor=(float(x), float(y)))


def _draw_character(img: np.ndarray, sprite: _Sprite, ch: dict, scene_ch: dict, syllables: np.ndarray,
                    t: float, unit: float) -> None:
    """The character at scene time ``t``: wandering slowly, its mouth opening with each syllable."""
    x = scene_ch["x"] + scene_ch["wander"] * math.sin(2 * math.pi * scene_ch["wander_hz"] * t + scene_ch["phase"])
    y = scene_ch["y"] + unit * math.sin(2 * math.pi * 0.7 * t)
    hx, hy = sprite.paste(img, x, y)
    opening = _mouth_opening(syllables, t)
    ry = ch["head_ry"] * unit
    draw_ellipse(img, hx, hy + 0.5 * ry, 0.35 * ch["head_rx"] * unit, (0.5 + 3.0 * opening) * ch["scale"] * unit,
                 (0.35, 0.05, 0.08))


def _grade_matrix(tint: dict) -> tuple[np.ndarray, np.ndarray]:
    """The title's colour grade as one affine map ``rgb @ M.T + b``.

    Gain (times brightness) and lift per channel, then saturation around the mean of the three
    channels: ``out = s * (g * x + l) + (1 - s) * mean(g * x + l)``.
    """
    g = np.asarray(tint["gain"], np.float64) * tint["brightness"]
    lift = np.asarray(tint["lift"], np.float64)
    s = tint["saturation"]
    matrix = s * np.diag(g) + (1.0 - s) / 3.0 * np.outer(np.ones(3), g)
    offset = s * lift + (1.0 - s) / 3.0 * lift.sum()
    return matrix.T.astype(np.float32), offset.astype(np.float32)


def _draw_logo(img: np.ndarray, logo: dict, unit: float) -> None:
    h, w = img.shape[:2]
    x = 12 * unit if logo["corner"][1] == "l" else w - 12 * unit
    y = 10 * unit if logo["corner"][0] == "t" else h - 10 * unit
    if logo["shape"] == "disc":
        draw_disc(img, x, y, 5 * unit, logo["color"], logo["alpha"])
    elif logo["shape"] == "square":
        draw_rect(img, x - 5 * unit, y - 5 * unit, x + 5 * unit, y + 5 * unit, logo["color"], logo["alpha"])
    else:
        draw_rect(img, x - 8 * unit, y - 2.5 * unit, x + 8 * unit, y + 2.5 * unit, logo["color"], logo["alpha"])


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """``img`` in ``[0, 1]`` (clipped, in place) rounded to uint8."""
    np.maximum(img, 0.0, out=img)
    np.minimum(img, 1.0, out=img)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)


def _finish_frame(img: np.ndarray, grade: tuple[np.ndarray, np.ndarray], *, letterbox_rows: int,
                  logo: dict | None = None, unit: float = 1.0) -> np.ndarray:
    """A drawn title frame as encoded: colour-graded, the channel logo on top (shows only), black
    letterbox bars of ``letterbox_rows`` rows at top and bottom, then uint8."""
    matrix, lift = grade
    img = img @ matrix + lift
    if logo is not None:
        _draw_logo(img, logo, unit)
    if letterbox_rows:
        img[:letterbox_rows] = 0.0
        img[img.shape[0] - letterbox_rows :] = 0.0
    return _to_uint8(img)


def location_frame(content: dict, loc: dict) -> np.ndarray:
    """Location ``loc`` as a title of ``content`` shows it, unpanned and empty (no character, event
    or logo): what the plan's scene-cut check compares."""
    width, height = content["width"], content["height"]
    return _finish_frame(_location_canvas(loc, width, height, 0), _grade_matrix(content["tint"]),
                         letterbox_rows=round(content["letterbox"] * height))


def title_frames(plan: dict, content: dict) -> Iterator[tuple[int, np.ndarray]]:
    """The frames of a planned title in order, as ``(frame index, uint8 RGB frame)``: each scene's
    panning location, the character when the scene has it, the events while they last, then the
    content's grade, logo and letterbox."""
    width, height, fps = plan["width"], plan["height"], plan["fps"]
    unit = height / 120.0
    margin = round(24 * unit)
    canvases: dict[int, np.ndarray] = {}
    grade = _grade_matrix(content["tint"])
    sprite = _character_sprite(content["character"], unit)
    bar = round(content["letterbox"] * height)
    for scene in plan["scenes"]:
        loc = content["locations"][scene["location"]]
        if scene["location"] not in canvases:
            canvases[scene["location"]] = _location_canvas(loc, width, height, margin)
        canvas = canvases[scene["location"]]
        scene_ch = scene["character"]
        syllables = np.asarray(scene_ch["syllables"], dtype=np.float64).reshape(-1, 3) if scene_ch else None
        events = [(event_class(ev["class"]), ev, ev["start"], ev["start"] + ev["duration"]) for ev in scene["events"]]
        for f in range(scene["start_frame"], scene["end_frame"]):
            t = f / fps
            img = _pan_window(canvas, width, loc["pan_speed"], scene["pan_offset"], t - scene["start"]).copy()
            if scene_ch is not None:
                _draw_character(img, sprite, content["character"], scene_ch, syllables, t, unit)
            for cls, ev, begin, end in events:
                if begin <= t < end:
                    cls.draw(img, t - begin, ev)
            yield f, _finish_frame(img, grade, letterbox_rows=bar, logo=content["logo"], unit=unit)


def clip_frames(clip: dict, *, size: tuple[int, int], fps: int, seconds: float) -> Iterator[np.ndarray]:
    """The uint8 RGB frames of a planned stand-in clip: its setting's panning background and its
    one event while it lasts (no grade)."""
    width, height = size
    unit = height / 120.0
    canvas = _location_canvas(clip["setting"], width, height, round(24 * unit))
    ev = clip["event"]
    cls = event_class(ev["class"])
    for f in range(round(seconds * fps)):
        t = f / fps
        img = _pan_window(canvas, width, clip["setting"]["pan_speed"], clip["pan_offset"], t).copy()
        if t < ev["duration"]:
            cls.draw(img, t, ev)
        yield _to_uint8(img)
