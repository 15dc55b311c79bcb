#!/usr/bin/env python
"""Snippets per second of every registered decoder on the same snippet-store file.

    benchmarks/decoder_compare.py                          # paper sizes, a synthetic 60 s title
    benchmarks/decoder_compare.py --cfg demo.yaml --seconds 120
    benchmarks/decoder_compare.py --store /data/store --title tt0111161 --reads 400

Without --store it writes a synthetic source (moving texture at --size, 24 fps, stereo 44.1 kHz
AAC), ingests and preprocesses it with the cfg's store sizes into a temporary folder (reporting
the preprocessing speed in seconds of source per second), then reads snippets of that one title
in three access patterns, with each decoder, one thread each on one pinned core, as a DataLoader
worker would (per wall-second and per CPU-second):

- ``single``: one random snippet per call (the i.i.d. baseline, k = 1);
- ``group``: k random distinct snippets of the title per call (hierarchical sampling, no window);
- ``adjacent``: k consecutive snippets per call (w = k).

It prints snippets/s per decoder and pattern (the median of --repeats runs) and the audio read
rate of the same snippets for comparison; --json writes the figures.  Decoders that cannot be
imported are reported and skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config import load_config
from avplug.data.catalog import ingest
from avplug.data.decoders.media import quiet_ffmpeg
from avplug.data.decoders.pyav_decoder import PyAVDecoder
from avplug.data.decoders.torchcodec_decoder import TorchCodecDecoder, torchcodec_available
from avplug.data.store import SnippetStore, StoreSpec
from avplug.data.store_writer import preprocess


def synthetic_source(path: Path, seconds: float, width: int, height: int, fps: int = 24, rate: int = 44100) -> Path:
    """A title with a scrolling smooth random texture plus fine grain (a bitrate between a clean
    animation and grainy film) and noise + tone audio."""
    import av

    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(1, 3, height // 24 + 2, 2 * width // 24 + 2)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, 2 * width), mode="bicubic", align_corners=False)
    texture = smooth[0].permute(1, 2, 0).clamp(0, 255).numpy().astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        as_ = out.add_stream("aac", rate=rate, layout="stereo")
        for n in range(int(seconds * fps)):
            x = (n * 3) % (texture.shape[1] - width)
            img = texture[:height, x : x + width].astype(np.int16)
            img += rng.integers(-6, 7, size=img.shape[:2], dtype=np.int16)[..., None]  # grain
            img = np.clip(img, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        t = np.arange(int(seconds * rate)) / rate
        sig = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
        stereo = np.stack([sig, sig[::-1].copy()])
        for s in range(0, t.size, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, s : s + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
            for p in as_.encode(frame):
                out.mux(p)
        for p in as_.encode():
            out.mux(p)
    return path


def build_store(cfg, work: Path, seconds: float, size: tuple[int, int]) -> tuple[Path, str, float]:
    src = work / "src"
    src.mkdir()
    t0 = time.time()
    synthetic_source(src / "bench.mp4", seconds, *size)
    print(f"synthetic source: {seconds:.0f} s at {size[0]}x{size[1]} written in {time.time() - t0:.1f} s")
    ingest(str(src), str(work / "catalog"), snippet_seconds=cfg.DATA.SNIPPET_SECONDS, heldout_fraction=0.0, workers=1, progress=False)
    summary = preprocess(str(work / "catalog"), str(work / "store"), StoreSpec.from_cfg(cfg), workers=1, progress=False)
    rate = summary.source_seconds_per_second
    print(f"preprocess: {summary.source_seconds:.0f} s of source in {summary.wall_seconds:.1f} s = {rate:.1f} s of source per second (1 worker)")
    return work / "store", "bench", rate


def decoders() -> dict:
    out = {"pyav": PyAVDecoder()}
    if torchcodec_available():
        out["torchcodec"] = TorchCodecDecoder(seek_mode="approximate")
        out["torchcodec-exact"] = TorchCodecDecoder(seek_mode="exact")
    else:
        print("torchcodec: not importable here, skipped")
    return out


def patterns(num_snippets: int, k: int, reads: int, rng: np.random.Generator) -> dict[str, list[list[int]]]:
    k = min(k, num_snippets)
    return {
        "single": [[int(rng.integers(num_snippets))] for _ in range(reads)],
        "group": [sorted(rng.choice(num_snippets, size=k, replace=False).tolist()) for _ in range(max(1, reads // k))],
        "adjacent": [list(range(s, s + k)) for s in rng.integers(0, num_snippets - k + 1, size=max(1, reads // k)).tolist()],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cfg", default="movie_tv.yaml", help="recipe whose DATA sizes build the store (ignored with --store)")
    parser.add_argument("--store", default=None, help="an existing snippet store (default: build a temporary one)")
    parser.add_argument("--title", default=None, help="title of --store to read (default: its longest)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic source")
    parser.add_argument("--size", default="640x360", help="size of the synthetic source")
    parser.add_argument("--reads", type=int, default=64, help="snippets read per pattern and decoder")
    parser.add_argument("--k", type=int, default=None, help="snippets per group (default: SAMPLER.K of --cfg)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (the median is reported)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # One pinned core, as a loader worker mostly is: unpinned, a 2-core VM here migrated the process
    # between its cores and PyAV's rate dropped by up to 2x while torchcodec's barely moved.
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    quiet_ffmpeg()
    cfg = load_config(args.cfg, args.opts)
    k = args.k or cfg.SAMPLER.K
    with tempfile.TemporaryDirectory(prefix="decoder_compare_") as tmp:
        preprocess_rate = None
        if args.store:
            root, title = Path(args.store), args.title
        else:
            w, h = (int(x) for x in args.size.split("x"))
            root, title, preprocess_rate = build_store(cfg, Path(tmp), args.seconds, (w, h))
        store = SnippetStore(root)
        title = title or max(store.titles, key=lambda t: t.num_snippets).title_id
        rec = store.title(title)
        shape = tuple(store.read_video(title, [0], decoder="pyav").shape[1:])
        print(f"store {root}: title {title!r}, {rec.num_snippets} snippets of {shape} ({store.snippet_seconds:.2f} s), k = {k}")
        plans = patterns(rec.num_snippets, k, args.reads, np.random.default_rng(0))
        results: dict = {
            "command": " ".join(["benchmarks/decoder_compare.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
            "title": title, "snippet_shape": shape, "k": k, "preprocess_source_s_per_s": preprocess_rate, "video": {},
        }  # fmt: skip
        header = f"{'decoder':<18}" + "".join(f"{name:>12}" for name in plans)
        print(f"{header}   (snippets/s, median of {args.repeats})")
        decs = decoders()
        wall: dict = {(name, pattern): [] for name in decs for pattern in plans}
        cpu: dict = {(name, pattern): [] for name in decs for pattern in plans}
        for dec in decs.values():
            for calls in plans.values():
                store.read_video(title, calls[0], decoder=dec)  # warm-up: page cache, lazy imports
        for _ in range(args.repeats):  # round-robin, so that drifts of the machine hit every decoder alike
            for name, dec in decs.items():
                for pattern, calls in plans.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    for idx in calls:
                        store.read_video(title, idx, decoder=dec)
                    wall[name, pattern].append(time.perf_counter() - t0)
                    cpu[name, pattern].append(time.process_time() - c0)  # every thread of this process
        results["video_per_cpu_s"] = {}
        for name in decs:
            snippets = {pattern: sum(len(c) for c in calls) for pattern, calls in plans.items()}
            row = {p: snippets[p] / statistics.median(wall[name, p]) for p in plans}
            row_cpu = {p: snippets[p] / statistics.median(cpu[name, p]) for p in plans}
            results["video"][name] = row
            results["video_per_cpu_s"][name] = row_cpu
            print(f"{name:<18}" + "".join(f"{row[p]:>12.1f}" for p in plans) + "   per CPU-s:" + "".join(f"{row_cpu[p]:>8.1f}" for p in plans))
        t0 = time.perf_counter()
        n = 0
        for calls in plans.values():
            for idx in calls:
                store.read_audio(title, idx)
                n += len(idx)
        results["audio_snippets_per_s"] = n / (time.perf_counter() - t0)
        print(f"{'audio (memmap)':<18}{results['audio_snippets_per_s']:>12.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
