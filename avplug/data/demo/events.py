"""The shared audio-visual event vocabulary of the synthetic demo corpus.

Every class here is an "event" whose picture and sound are causally tied: the same planned
trajectory drives the drawing and the synthesis, so onsets, rhythm and loudness follow the motion.
The demo plan (:mod:`avplug.data.demo.plan`) scatters these events over the scenes of its titles,
and the downstream stand-ins (UCF101, HMDB51, ESC-50) are built from the same classes, which makes
audio-video correspondence learnable on titles and transferable to the downstream tasks.

Contract of an :class:`AVEventClass` (what the corpus and the tests rely on):

``plan(rng, duration, width, height) -> dict``
    Draws one instance.  The dict is JSON-serializable and holds everything the drawing and the
    synthesis need (nothing else is random afterwards); common keys are ``class`` (the class name),
    ``duration`` (seconds), ``onsets`` (event-relative seconds of the sync points, sorted, all in
    ``[0, duration)``), ``gains`` (relative loudness in ``(0, 1]`` per onset) and ``seed`` (for the
    noise in the sound).
``draw(img, t, params)``
    Draws the event at event-relative time ``t`` (seconds) onto ``img``, an ``(H, W, 3)``
    float32 canvas with values in ``[0, 1]``, in place.  Drawing is vectorized over the bounding
    box of each shape (no per-pixel Python loops).
``sound(params, sample_rate) -> (mono, pan)``
    The event's sound, ``round(duration * sample_rate)`` float32 samples, and its stereo position
    per sample in ``[-1, 1]`` (-1 = left), which follows the on-screen x position.

What a sync point is per class:

=================  ===========================================  =====================================
class              picture                                       sound at each onset
=================  ===========================================  =====================================
bouncing_ball      ball touches the floor (squashes)             thud, louder for a faster impact
drumming           stick hits the pulsing drum head              drum hit, loudness = swing height
siren              the vehicle's light is brightest              wail at its highest pitch (continuous)
clapping           two hands meet                                clap, loudness = swing width
engine             the red spoke of the spinning wheel is up     hum peaks; pitch follows spin rate
knocking           fist hits the door (the door shakes)          knock, loudness = swing width
chirping           the bird's beak opens                          chirp while the beak is open
footsteps          a foot strikes the ground (body lowest)       step, panned with the walker
=================  ===========================================  =====================================

``impulsive`` classes have a sharp energy rise at each onset; ``siren`` and ``engine`` are
continuous sounds whose pitch or loudness peaks at the onsets.
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import numpy as np

from avplug.data.demo.shapes import draw_disc, draw_ellipse, draw_rect, draw_segment
from avplug.data.demo.synthesis import add_at, burst, decay, onset_peak, thud

__all__ = ["EVENT_CLASSES", "EVENT_CLASS_NAMES", "AVEventClass", "event_class"]


# ---------------------------------------------------------------------------------------------
# Shared helpers for plans.
# ---------------------------------------------------------------------------------------------
def _bright_color(rng: np.random.Generator) -> list[float]:
    r, g, b = colorsys.hsv_to_rgb(float(rng.uniform()), float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.8, 1.0)))
    return [r, g, b]


def _dark_color(rng: np.random.Generator) -> list[float]:
    r, g, b = colorsys.hsv_to_rgb(float(rng.uniform()), float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.1, 0.35)))
    return [r, g, b]


def _contact_gap(t, contacts: Sequence[float], amps: Sequence[float], half: float):
    """Distance between two colliding things: zero at every contact, up to ``amps[k]`` before contact k.

    Between two contacts the gap opens and closes on a sine arc; when contacts are further apart than
    ``2 * half`` it holds fully open in between.  Before the first contact it closes from open; after
    the last it opens and stays open.  ``t`` may be a scalar or an array.
    """
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(contacts, dtype=np.float64)
    a = np.asarray(amps, dtype=np.float64)
    if len(c) == 0:
        return np.zeros_like(t)
    k = np.searchsorted(c, t, side="right")  # contacts at or before t
    prev = np.where(k > 0, c[np.maximum(k - 1, 0)], -np.inf)
    nxt = np.where(k < len(c), c[np.minimum(k, len(c) - 1)], np.inf)
    amp = a[np.minimum(k, len(c) - 1)]
    h = np.minimum(half, (nxt - prev) / 2.0)
    frac = np.minimum(1.0, np.minimum((t - prev) / h, (nxt - t) / h))
    return amp * np.sin(np.pi / 2.0 * np.clip(frac, 0.0, 1.0))


def _floats(values) -> list[float]:
    return [float(v) for v in values]


class AVEventClass:
    """One class of the shared vocabulary (see the module docstring for the contract)."""

    name: str = ""
    ucf101: str = ""
    hmdb51: str = ""
    esc50: str = ""
    impulsive: bool = True
    description: str = ""

    def plan(self, rng: np.random.Generator, duration: float, width: int, height: int) -> dict:
        raise NotImplementedError

    def draw(self, img: np.ndarray, t: float, p: dict) -> None:
        raise NotImplementedError

    def sound(self, p: dict, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"AVEventClass({self.name!r})"

    # helpers shared by subclasses
    @staticmethod
    def _n(p: dict, sample_rate: int) -> int:
        return round(p["duration"] * sample_rate)

    @staticmethod
    def _times(p: dict, sample_rate: int) -> np.ndarray:
        return np.arange(round(p["duration"] * sample_rate)) / sample_rate

    @staticmethod
    def _pan_x(x, width: float):
        return np.clip((np.asarray(x, dtype=np.float64) - width / 2.0) / (width / 2.0), -1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# The classes.
# ---------------------------------------------------------------------------------------------
class _BouncingBall(AVEventClass):
    name, ucf101, hmdb51, esc50 = "bouncing_ball", "BouncingBall", "dribble", "ball_bounce"
    description = "a ball bounces on the floor; a thud at each impact, louder for faster impacts"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        r = float(rng.uniform(5, 8) * u)
        floor = float(height * rng.uniform(0.72, 0.9))
        g = float(rng.uniform(500, 800) * u)  # px / s^2
        h0 = float(height * rng.uniform(0.3, 0.5))
        e2 = float(rng.uniform(0.5, 0.72))  # energy kept per bounce (restitution squared)
        h_min = h0 * float(rng.uniform(0.15, 0.3))
        heights, contacts = [h0], [math.sqrt(2 * h0 / g)]
        while contacts[-1] < duration:
            h = heights[-1] * e2
            if h < h_min:  # dribbled: pushed back up to the full height
                h = h0
            heights.append(h)
            contacts.append(contacts[-1] + 2 * math.sqrt(2 * h / g))
        onsets = [c for c in contacts if c < duration]
        gains = [math.sqrt(heights[i] / h0) for i in range(len(onsets))]  # impact speed ~ sqrt(h)
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains),
            "contacts": _floats(contacts), "heights": _floats(heights), "g": g, "r": r, "floor": floor,
            "x0": float(rng.uniform(0.2, 0.8) * width), "vx": float(rng.uniform(-0.15, 0.15) * width),
            "width": float(width), "color": _bright_color(rng), "pitch": float(rng.uniform(90, 160)),
        }

    @staticmethod
    def height_above_floor(t, p):
        """Height of the ball's bottom above the floor at event time ``t`` (0 at every contact)."""
        t = np.asarray(t, dtype=np.float64)
        c = np.asarray(p["contacts"])
        hs = np.asarray(p["heights"])
        k = np.searchsorted(c, t, side="right")  # contacts at or before t
        g = p["g"]
        before = hs[0] - 0.5 * g * t**2
        tau = t - c[np.maximum(k - 1, 0)]
        v = np.sqrt(2 * g * hs[np.minimum(k, len(hs) - 1)])
        after = v * tau - 0.5 * g * tau**2
        return np.maximum(np.where(k == 0, before, after), 0.0)

    @staticmethod
    def x_at(t, p):
        lo, hi = p["r"], p["width"] - p["r"]
        span = hi - lo
        pos = (p["x0"] - lo + p["vx"] * np.asarray(t, dtype=np.float64)) % (2 * span)
        return lo + np.where(pos > span, 2 * span - pos, pos)  # reflect off the side walls

    def draw(self, img, t, p):
        r = p["r"]
        y = p["floor"] - r - float(self.height_above_floor(t, p))
        x = float(self.x_at(t, p))
        since = [t - c for c in p["onsets"] if c <= t]
        squash = math.exp(-since[-1] / 0.04) if since else 0.0
        draw_ellipse(img, x, p["floor"] + 1, r * 1.1, r * 0.3, (0.05, 0.05, 0.05), 0.5)  # shadow
        draw_ellipse(img, x, y + 0.3 * r * squash, r * (1 + 0.25 * squash), r * (1 - 0.3 * squash), p["color"])

    def sound(self, p, sample_rate):
        rng = np.random.default_rng(p["seed"])
        n = self._n(p, sample_rate)
        mono = np.zeros(n)
        for onset, gain in zip(p["onsets"], p["gains"]):
            hit = thud(rng, sample_rate, p["pitch"] * 2.2, p["pitch"], float(rng.uniform(0.05, 0.08)))
            add_at(mono, onset, 0.8 * gain * onset_peak(hit, 8), sample_rate)
        return mono.astype(np.float32), self._pan_x(self.x_at(self._times(p, sample_rate), p), p["width"])


class _Drumming(AVEventClass):
    name, ucf101, hmdb51, esc50 = "drumming", "Drumming", "drum", "drum_beat"
    description = "a stick beats a drum whose head pulses at each hit; drum hits on the beat"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        period = 60.0 / float(rng.uniform(90, 170))
        first = float(rng.uniform(0.15, 0.15 + period))
        onsets = list(np.arange(first, duration, period))
        accents = np.array([1.0, 0.55, 0.8, 0.55])[np.arange(len(onsets)) % 4]
        gains = accents * rng.uniform(0.85, 1.0, len(onsets))
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains), "period": period,
            "cx": float(rng.uniform(0.25, 0.75) * width), "cy": float(rng.uniform(0.5, 0.75) * height),
            "radius": float(rng.uniform(10, 16) * u), "swing": float(rng.uniform(16, 26) * u),
            "color": _bright_color(rng), "stick": _dark_color(rng), "width": float(width),
            "pitch": float(rng.uniform(70, 140)),
        }

    def draw(self, img, t, p):
        since = [(t - c, g) for c, g in zip(p["onsets"], p["gains"]) if c <= t]
        pulse = since[-1][1] * math.exp(-since[-1][0] / 0.08) if since else 0.0
        r = p["radius"] * (1 + 0.25 * pulse)
        color = np.minimum(np.asarray(p["color"]) * (0.75 + 0.5 * pulse), 1.0)
        cx, cy = p["cx"], p["cy"]
        draw_rect(img, cx - p["radius"] * 0.9, cy, cx + p["radius"] * 0.9, cy + p["radius"] * 1.4, p["stick"])
        draw_ellipse(img, cx, cy, r, r * 0.45, color)
        gap = float(_contact_gap(t, p["onsets"], np.asarray(p["gains"]) * p["swing"], p["period"] / 2))
        tip_y = cy - r * 0.45 - gap
        draw_segment(img, cx + 0.3 * p["radius"], tip_y, cx + 1.3 * p["radius"], tip_y - 0.8 * p["swing"],
                     max(1.5, p["radius"] / 6), p["stick"])

    def sound(self, p, sample_rate):
        rng = np.random.default_rng(p["seed"])
        mono = np.zeros(self._n(p, sample_rate))
        for onset, gain in zip(p["onsets"], p["gains"]):
            hit = thud(rng, sample_rate, p["pitch"] * 2.5, p["pitch"], 0.12)
            add_at(hit, 0.0, 0.5 * burst(rng, sample_rate, 1500, 6000, 0.004), sample_rate)
            add_at(mono, onset, 0.8 * gain * onset_peak(hit, 8), sample_rate)
        return mono.astype(np.float32), np.full(len(mono), float(self._pan_x(p["cx"], p["width"])))


class _Siren(AVEventClass):
    name, ucf101, hmdb51, esc50 = "siren", "PassingSiren", "siren_pass", "siren"
    impulsive = False
    description = ("a vehicle crosses the screen with a blinking light; a wailing siren whose pitch "
                   "peaks when the light is brightest, loudest and centred when the vehicle is")

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        period = float(rng.uniform(0.6, 1.4))
        phase = float(rng.uniform(0, period))
        onsets = list(np.arange(phase, duration, period))
        direction = 1.0 if rng.uniform() < 0.5 else -1.0
        x_from, x_to = (-0.15 * width, 1.15 * width)[:: int(direction)]
        p = {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "period": period, "phase": phase,
            "x_from": float(x_from), "x_to": float(x_to), "y": float(rng.uniform(0.45, 0.75) * height),
            "size": float(rng.uniform(0.8, 1.2) * u), "color": _bright_color(rng), "width": float(width),
            "pitch": float(rng.uniform(550, 900)),
        }
        p["gains"] = _floats(self.proximity(np.asarray(onsets), p))
        return p

    @staticmethod
    def x_at(t, p):
        return p["x_from"] + (p["x_to"] - p["x_from"]) * np.asarray(t, dtype=np.float64) / p["duration"]

    @classmethod
    def proximity(cls, t, p):
        return 1.0 / (1.0 + ((cls.x_at(t, p) - p["width"] / 2) / (0.3 * p["width"])) ** 2)

    @staticmethod
    def wail(t, p):
        """0..1, peaking at every onset: the light's brightness and the siren's pitch position."""
        return 0.5 + 0.5 * np.cos(2 * np.pi * (np.asarray(t, dtype=np.float64) - p["phase"]) / p["period"])

    def draw(self, img, t, p):
        s, x, y = p["size"], float(self.x_at(t, p)), p["y"]
        draw_rect(img, x - 18 * s, y - 8 * s, x + 18 * s, y + 6 * s, p["color"])
        draw_rect(img, x - 10 * s, y - 14 * s, x + 10 * s, y - 8 * s, p["color"])
        for wx in (-11 * s, 11 * s):
            draw_disc(img, x + wx, y + 6 * s, 4 * s, (0.08, 0.08, 0.08))
        w = float(self.wail(t, p))
        draw_disc(img, x, y - 16 * s, 3 * s + 2 * s * w, (1.0, 0.15 + 0.2 * (1 - w), 0.1 + 0.8 * (1 - w)))

    def sound(self, p, sample_rate):
        t = self._times(p, sample_rate)
        freq = p["pitch"] * (1.0 + 0.35 * self.wail(t, p))
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        tone = np.sin(phase) + 0.35 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
        fade = np.minimum(1.0, np.minimum(t, p["duration"] - t) / 0.05)
        mono = 0.4 * tone * self.proximity(t, p) * fade
        return mono.astype(np.float32), self._pan_x(self.x_at(t, p), p["width"])


class _Clapping(AVEventClass):
    name, ucf101, hmdb51, esc50 = "clapping", "HandClapping", "clap", "clapping"
    description = "two hands swing together and meet; a clap at each meeting, louder for wider swings"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        period = 1.0 / float(rng.uniform(2.0, 4.0))
        onsets = list(np.arange(float(rng.uniform(0.2, 0.2 + period)), duration, period))
        gains = rng.uniform(0.5, 1.0, len(onsets))
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains), "period": period,
            "cx": float(rng.uniform(0.25, 0.75) * width), "cy": float(rng.uniform(0.35, 0.65) * height),
            "swing": float(rng.uniform(12, 22) * u), "hand_w": float(rng.uniform(4, 6) * u),
            "hand_h": float(rng.uniform(16, 24) * u), "color": _bright_color(rng), "width": float(width),
            "band": float(rng.uniform(900, 1800)),
        }

    def gap(self, t, p):
        return _contact_gap(t, p["onsets"], np.asarray(p["gains"]) * p["swing"], p["period"] / 2)

    def draw(self, img, t, p):
        half = float(self.gap(t, p)) / 2
        cx, cy, w, h = p["cx"], p["cy"], p["hand_w"], p["hand_h"] / 2
        draw_rect(img, cx - half - w, cy - h, cx - half, cy + h, p["color"])
        draw_rect(img, cx + half, cy - h, cx + half + w, cy + h, p["color"])

    def sound(self, p, sample_rate):
        rng = np.random.default_rng(p["seed"])
        mono = np.zeros(self._n(p, sample_rate))
        for onset, gain in zip(p["onsets"], p["gains"]):
            clap = burst(rng, sample_rate, p["band"], p["band"] * 3, 0.012)
            add_at(mono, onset, 0.8 * gain * onset_peak(clap, 4), sample_rate)
        return mono.astype(np.float32), np.full(len(mono), float(self._pan_x(p["cx"], p["width"])))


class _Engine(AVEventClass):
    name, ucf101, hmdb51, esc50 = "engine", "RevvingEngine", "ride_bike", "engine"
    impulsive = False
    description = ("a spoked wheel revs up and down; an engine hum whose pitch follows the spin rate "
                   "and whose loudness peaks each time the red spoke points up")

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        p = {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "rev_lo": float(rng.uniform(0.6, 1.2)), "rev_hi": float(rng.uniform(2.0, 3.2)),
            "cx": float(rng.uniform(0.25, 0.75) * width), "cy": float(rng.uniform(0.4, 0.7) * height),
            "radius": float(rng.uniform(12, 20) * u), "spokes": int(rng.integers(3, 7)),
            "color": _bright_color(rng), "width": float(width), "pitch_per_rev": float(rng.uniform(25, 40)),
        }
        t = np.arange(0.0, duration, 1e-3)
        turns = self.angle(t, p) / (2 * np.pi)
        crossing = np.nonzero(np.floor(turns[1:]) > np.floor(turns[:-1]))[0] + 1
        p["onsets"] = _floats(t[crossing])
        p["gains"] = [1.0] * len(p["onsets"])
        return p

    @staticmethod
    def angle(t, p):
        """Rotation angle in radians: the integral of 2 pi times the revolutions per second, which rise
        from rev_lo to rev_hi mid-event and back (rev_lo + (rev_hi - rev_lo) sin^2(pi t / duration));
        the red spoke is up at multiples of 2 pi."""
        t = np.asarray(t, dtype=np.float64)
        d, lo, hi = p["duration"], p["rev_lo"], p["rev_hi"]
        integral = lo * t + (hi - lo) * (t / 2 - d * np.sin(2 * np.pi * t / d) / (4 * np.pi))
        return 2 * np.pi * integral

    def draw(self, img, t, p):
        cx, cy, r = p["cx"], p["cy"], p["radius"]
        theta = float(self.angle(t, p))
        draw_disc(img, cx, cy, r, (0.1, 0.1, 0.1))
        draw_disc(img, cx, cy, r * 0.8, p["color"])
        for k in range(p["spokes"]):
            a = theta + 2 * np.pi * k / p["spokes"]
            color = (0.9, 0.1, 0.1) if k == 0 else (0.15, 0.15, 0.15)
            draw_segment(img, cx, cy, cx + 0.8 * r * math.sin(a), cy - 0.8 * r * math.cos(a), max(1.5, r / 7), color)
        draw_disc(img, cx, cy, r * 0.15, (0.2, 0.2, 0.2))

    def sound(self, p, sample_rate):
        t = self._times(p, sample_rate)
        theta = self.angle(t, p)
        phase = p["pitch_per_rev"] * theta  # fundamental = pitch_per_rev * revolutions per second
        harmonics = np.arange(1, 9)
        weights = 1.0 / harmonics
        buzz = (np.sin(np.outer(phase, harmonics).astype(np.float32)) * weights.astype(np.float32)).sum(axis=1)
        envelope = 0.45 + 0.55 * np.maximum(np.cos(theta), 0.0) ** 2
        fade = np.minimum(1.0, np.minimum(t, p["duration"] - t) / 0.05)
        mono = 0.2 * buzz * envelope * fade
        return mono.astype(np.float32), np.full(len(mono), float(self._pan_x(p["cx"], p["width"])))


class _Knocking(AVEventClass):
    name, ucf101, hmdb51, esc50 = "knocking", "KnockingDoor", "knock", "door_wood_knock"
    description = "a fist knocks on a door in short groups; a wooden knock at each hit, the door shakes"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        onsets: list[float] = []
        t = float(rng.uniform(0.2, 0.5))
        spacing = float(rng.uniform(0.16, 0.28))
        while t < duration:
            for _ in range(int(rng.integers(2, 5))):
                if t >= duration:
                    break
                onsets.append(t)
                t += spacing * float(rng.uniform(0.9, 1.1))
            t += float(rng.uniform(0.6, 1.2))
        gains = rng.uniform(0.6, 1.0, len(onsets))
        side = 1.0 if rng.uniform() < 0.5 else -1.0  # door to the right (+1) or left of the fist
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains), "spacing": spacing, "side": side,
            "door_x": float(rng.uniform(0.35, 0.65) * width), "cy": float(rng.uniform(0.4, 0.6) * height),
            "door_w": float(rng.uniform(22, 32) * u), "door_h": float(rng.uniform(50, 70) * u),
            "fist": float(rng.uniform(4, 6) * u), "swing": float(rng.uniform(10, 18) * u),
            "door_color": _dark_color(rng), "color": _bright_color(rng), "width": float(width),
            "pitch": float(rng.uniform(160, 320)),
        }

    def gap(self, t, p):
        return _contact_gap(t, p["onsets"], np.asarray(p["gains"]) * p["swing"], p["spacing"] / 2)

    def draw(self, img, t, p):
        since = [t - c for c in p["onsets"] if c <= t]
        shake = p["side"] * 2.0 * math.exp(-since[-1] / 0.05) if since else 0.0
        edge = p["door_x"] + shake  # the door face the fist hits
        w, h = p["door_w"], p["door_h"] / 2
        x0, x1 = (edge, edge + w) if p["side"] > 0 else (edge - w, edge)
        draw_rect(img, x0, p["cy"] - h, x1, p["cy"] + h, p["door_color"])
        draw_disc(img, x0 + 0.8 * w if p["side"] > 0 else x0 + 0.2 * w, p["cy"], 2.0, (0.8, 0.7, 0.2))
        fist_x = edge - p["side"] * (p["fist"] + float(self.gap(t, p)))
        draw_segment(img, fist_x, p["cy"], fist_x - p["side"] * 4 * p["fist"], p["cy"] + 3 * p["fist"], p["fist"], p["color"])
        draw_disc(img, fist_x, p["cy"], p["fist"], p["color"])

    def sound(self, p, sample_rate):
        rng = np.random.default_rng(p["seed"])
        mono = np.zeros(self._n(p, sample_rate))
        for onset, gain in zip(p["onsets"], p["gains"]):
            n = int(0.25 * sample_rate)
            tt = np.arange(n) / sample_rate
            wood = (np.sin(2 * np.pi * p["pitch"] * tt) + 0.5 * np.sin(2 * np.pi * 2.3 * p["pitch"] * tt)) * decay(n, sample_rate, 0.035)
            add_at(wood, 0.0, 0.6 * burst(rng, sample_rate, 1000, 4000, 0.004), sample_rate)
            add_at(mono, onset, 0.8 * gain * onset_peak(wood, 4), sample_rate)
        return mono.astype(np.float32), np.full(len(mono), float(self._pan_x(p["door_x"], p["width"])))


class _Chirping(AVEventClass):
    name, ucf101, hmdb51, esc50 = "chirping", "BirdChirping", "chirp", "chirping_birds"
    description = "a perched bird opens its beak in bursts; a rising chirp while the beak is open"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        onsets: list[float] = []
        t = float(rng.uniform(0.1, 0.5))
        length = float(rng.uniform(0.06, 0.09))
        while t < duration - length:
            for _ in range(int(rng.integers(2, 6))):
                if t >= duration - length:
                    break
                onsets.append(t)
                t += length + float(rng.uniform(0.04, 0.08))  # a short silence between chirps
            t += float(rng.uniform(0.4, 1.0))
        gains = rng.uniform(0.6, 1.0, len(onsets))
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains), "length": length,
            "cx": float(rng.uniform(0.25, 0.75) * width), "cy": float(rng.uniform(0.3, 0.6) * height),
            "size": float(rng.uniform(0.8, 1.3) * u), "facing": 1.0 if rng.uniform() < 0.5 else -1.0,
            "color": _bright_color(rng), "beak": [1.0, 0.75, 0.1], "width": float(width),
            "f_lo": float(rng.uniform(2000, 2800)), "f_hi": float(rng.uniform(3500, 5000)),
        }

    def opening(self, t, p):
        """Beak opening in 0..1: a sine arc over each chirp."""
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros_like(t)
        for onset, gain in zip(p["onsets"], p["gains"]):
            inside = (t >= onset) & (t < onset + p["length"])
            out = np.where(inside, gain * np.sin(np.pi * (t - onset) / p["length"]), out)
        return out

    def draw(self, img, t, p):
        s, f, cx, cy = p["size"], p["facing"], p["cx"], p["cy"]
        open_ = float(self.opening(t, p))
        draw_segment(img, cx - 16 * s, cy + 9 * s, cx + 16 * s, cy + 9 * s, 2.5 * s, (0.35, 0.22, 0.1))  # branch
        draw_ellipse(img, cx, cy, 9 * s, 6 * s, p["color"])
        hx, hy = cx + f * 8 * s, cy - 5 * s - 1.5 * s * open_
        draw_disc(img, hx, hy, 4.5 * s, p["color"])
        draw_disc(img, hx + f * 1.5 * s, hy - 1.2 * s, 1.1 * s, (0.05, 0.05, 0.05))
        tip = hx + f * 10 * s
        draw_segment(img, hx + f * 3 * s, hy, tip, hy - 3 * s * open_, 1.5 * s, p["beak"])
        draw_segment(img, hx + f * 3 * s, hy + 0.5 * s, tip, hy + 0.5 * s + 3 * s * open_, 1.5 * s, p["beak"])

    def sound(self, p, sample_rate):
        mono = np.zeros(self._n(p, sample_rate))
        n = int(p["length"] * sample_rate)
        tt = np.arange(n) / sample_rate
        freq = p["f_lo"] + (p["f_hi"] - p["f_lo"]) * (tt / p["length"]) ** 0.7
        chirp = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * np.sin(np.pi * tt / p["length"]) ** 0.5
        for onset, gain in zip(p["onsets"], p["gains"]):
            add_at(mono, onset, 0.5 * gain * chirp, sample_rate)
        return mono.astype(np.float32), np.full(len(mono), float(self._pan_x(p["cx"], p["width"])))


class _Footsteps(AVEventClass):
    name, ucf101, hmdb51, esc50 = "footsteps", "Walking", "walk", "footsteps"
    description = "a figure walks across; a step sound at each foot strike, panned with the walker"

    def plan(self, rng, duration, width, height):
        u = height / 120.0
        period = float(rng.uniform(0.4, 0.6))  # one step
        direction = 1.0 if rng.uniform() < 0.5 else -1.0
        speed = float(rng.uniform(0.25, 0.5) * width) * direction
        x0 = float(width / 2 - speed * duration / 2)
        t0 = float(rng.uniform(0.0, period))
        onsets = [t for t in np.arange(t0 + period / 2, duration, period)]
        gains = rng.uniform(0.7, 1.0, len(onsets))
        return {
            "class": self.name, "duration": float(duration), "seed": int(rng.integers(2**31)),
            "onsets": _floats(onsets), "gains": _floats(gains), "period": period, "t0": t0,
            "x0": x0, "speed": speed, "ground": float(rng.uniform(0.78, 0.92) * height),
            "size": float(rng.uniform(0.9, 1.2) * u), "color": _bright_color(rng), "legs": _dark_color(rng),
            "width": float(width), "band": float(rng.uniform(200, 500)),
        }

    @staticmethod
    def x_at(t, p):
        return p["x0"] + p["speed"] * np.asarray(t, dtype=np.float64)

    def draw(self, img, t, p):
        s, x = p["size"], float(self.x_at(t, p))
        psi = math.pi * (t - p["t0"]) / p["period"]
        swing = 0.45 * math.sin(psi)  # leg angle; a foot strikes at the extremes
        bob = 2.5 * s * (1 - abs(math.cos(psi)))  # lowest at a strike
        leg = 18 * s
        hip_y = p["ground"] - leg * math.cos(swing) + bob * 0.3
        for sign in (1, -1):
            a = sign * swing
            draw_segment(img, x, hip_y, x + leg * math.sin(a), hip_y + leg * math.cos(a), 3 * s, p["legs"])
        draw_rect(img, x - 5 * s, hip_y - 20 * s, x + 5 * s, hip_y, p["color"])
        draw_disc(img, x, hip_y - 25 * s, 5 * s, p["color"])

    def sound(self, p, sample_rate):
        rng = np.random.default_rng(p["seed"])
        mono = np.zeros(self._n(p, sample_rate))
        for onset, gain in zip(p["onsets"], p["gains"]):
            step = burst(rng, sample_rate, p["band"], p["band"] * 6, 0.03)
            step += 0.6 * thud(rng, sample_rate, 140, 70, 0.03)[: len(step)]
            add_at(mono, onset, 0.7 * gain * onset_peak(step, 8), sample_rate)
        return mono.astype(np.float32), self._pan_x(self.x_at(self._times(p, sample_rate), p), p["width"])


EVENT_CLASSES: tuple[AVEventClass, ...] = (
    _BouncingBall(), _Drumming(), _Siren(), _Clapping(), _Engine(), _Knocking(), _Chirping(), _Footsteps(),
)
EVENT_CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_CLASSES)
_BY_NAME = {c.name: c for c in EVENT_CLASSES}


def event_class(name: str) -> AVEventClass:
    """The event class called ``name``; a KeyError lists the names that exist."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no demo event class {name!r}; known: {', '.join(EVENT_CLASS_NAMES)}") from None
