#!/usr/bin/env python
"""Per-frame cost of PyAV frame conversions: a new libswscale context per call against a reused one.

    benchmarks/frame_conversion.py                 # the demo store's 64x48 and the paper's 338x190
    benchmarks/frame_conversion.py --sizes 1920x1080 --frames 100

For each size it encodes a short H.264 clip (yuv420p, moving gradient), decodes its frames once,
then times, side by side in one process and on the same frames:

- ``to_ndarray``: ``frame.to_ndarray(format="rgb24")`` (PyAV builds a reformatter per call), the
  baseline, against ``to_rgb24(frame)`` (:func:`avplug.data.decoders.media.to_rgb24`, what the
  decoders use: one reformatter per thread);
- ``scale``: ``frame.reformat(width, height, "yuv420p", AREA)`` to half size (what the store writer
  did per frame) against ``reformatter().reformat(frame, ...)``.

Both ways must give identical arrays (checked).  It prints ms per frame and the speed-up.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from avplug.data.decoders.media import reformatter, to_rgb24


def decoded_frames(path: Path, width: int, height: int, count: int) -> list[av.VideoFrame]:
    """Encode ``count`` frames of a moving gradient at ``width``x``height``, decode them back."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
        for i in range(count):
            rgb = ((x + y + 4 * i) % 256 * np.ones((1, 1, 3), np.float32)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def per_frame_ms(convert, frames, repeats: int) -> tuple[float, list]:
    """Median over ``repeats`` of the ms per frame of ``convert`` over ``frames``; and its last outputs."""
    times, outputs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        outputs = [convert(f) for f in frames]
        times.append((time.perf_counter() - t0) * 1000 / len(frames))
    return float(np.median(times)), outputs


def measure(frames, repeats: int) -> list[dict]:
    w, h = frames[0].width // 2 // 2 * 2, frames[0].height // 2 // 2 * 2
    cases = {
        "to_ndarray": (lambda f: f.to_ndarray(format="rgb24"), to_rgb24),
        "scale": (lambda f: f.reformat(width=w, height=h, format="yuv420p", interpolation="AREA").to_ndarray(),
                  lambda f: reformatter().reformat(f, width=w, height=h, format="yuv420p", interpolation="AREA",
                                                  threads=1).to_ndarray()),
    }
    rows = []
    for name, (baseline, reused) in cases.items():
        base_ms, base_out = per_frame_ms(baseline, frames, repeats)
        new_ms, new_out = per_frame_ms(reused, frames, repeats)
        same = all(np.array_equal(a, b) for a, b in zip(base_out, new_out))
        rows.append({"conversion": name, "size": f"{frames[0].width}x{frames[0].height}", "new_context_ms": base_ms,
                     "reused_context_ms": new_ms, "speedup": base_ms / max(new_ms, 1e-9), "identical": same})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes", nargs="+", default=["64x48", "338x190"], help="frame sizes WxH")
    parser.add_argument("--frames", type=int, default=200, help="frames per size")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 frames of 64x48, 1 pass")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    sizes, count, repeats = (["64x48"], 20, 1) if args.quick else (args.sizes, args.frames, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            rows += measure(decoded_frames(Path(tmp) / f"{size}.mp4", width, height, count), repeats)
    print(f"{'conversion':<12} {'size':>9} {'new context ms':>15} {'reused ms':>10} {'speed-up':>9}  identical")
    for r in rows:
        print(f"{r['conversion']:<12} {r['size']:>9} {r['new_context_ms']:>15.3f} {r['reused_context_ms']:>10.3f} "
              f"{r['speedup']:>8.1f}x  {r['identical']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": "frame_conversion", "rows": rows}, indent=1))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
