#!/usr/bin/env python
"""Pretraining data throughput: decoding sources on the fly vs reading the avplug snippet store.

On the same title, in one run, snippets per second on ONE core (the process is pinned to one CPU,
torch uses one thread) of:

  (a) pytorchvideo: ``EncodedVideo`` (pyav decoder) opens the SOURCE file and decodes each snippet
      window on the fly (``get_clip``), ``UniformTemporalSubsample`` keeps DATA.SNIPPET_FRAMES
      frames, then the same resize / crop / normalize / log-mel / drop as (b); (a2) the same on the
      fly with avplug's own PyAV decoder, which converts only the snippet's frames to RGB;
  (b) avplug: ``PretrainDataset.__getitems__`` reading the store built from that source with the
      full transforms and audio (the DataLoader worker's fetch path), plus (b_raw) the same
      fetch with ``INPUT.ON_DEVICE True`` (decode only; the transforms then run on the GPU);
  (c) the decode ceiling: the ``ffmpeg`` CLI decoding the store's video stream alone
      (``-threads 1 -f null -``), and PyAV single-threaded (decode only, and decode + RGB).

Figures are snippets per CPU-second of the pinned process (robust when other processes share the
machine) and per wall-second.  Then an end-to-end mode: a DataLoader with N workers fed by the
HierarchicalSampler's batches with k = 1 (every snippet from another title) and k = 16 (16
snippets per title), over titles long enough for k = 16, to show the I/O locality that
``__getitems__`` exploits, as throughput vs worker count (wall clock), and the fetch path alone on
those batches per core (CPU time).

The source is generated with PyAV unless ``--source`` is given: 1080p24 H.264 (x264 veryfast,
crf 23, B-frames, a keyframe every 2 s, about 7 Mbit/s) with stereo AAC at 48 kHz: a panning
textured scene with a moving object and film grain, cut into scenes every 4 s.  The store is built
through avplug's Python API (``ingest`` + ``preprocess``).  Prints one JSON object (also written
to ``--json``).

    python benchmarks/data_throughput.py                    # the recorded run (paper recipe, 1080p)
    python benchmarks/data_throughput.py --source film.mp4  # your own title
    python benchmarks/data_throughput.py --quick            # smoke run, well under a minute
"""
from __future__ import annotations

import argparse
import fractions
import json
import logging
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

import avplug  # noqa: F401  (pytorchvideo shim first)
from avplug.config import load_config
from avplug.data.catalog import ingest
from avplug.data.dataset import PretrainDataset, build_pretrain_loader
from avplug.data.store import SnippetStore, StoreSpec
from avplug.data.store_writer import preprocess
from avplug.data.transforms import build_pretrain_transform
from avplug.samplers import build_sampler

log = logging.getLogger("data_throughput")


# ---------------------------------------------------------------------------------------------
# Synthetic sources
# ---------------------------------------------------------------------------------------------
def _texture(rng: np.random.Generator, height: int, width: int) -> torch.Tensor:
    """A natural-looking RGB texture in [0, 1]: random fields at several scales, summed."""
    out = torch.zeros(1, 3, height, width)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.15)):
        low = torch.from_numpy(rng.random((1, 3, cells, max(2, cells * width // height)), dtype=np.float32))
        out += weight * torch.nn.functional.interpolate(low, size=(height, width), mode="bicubic", align_corners=False)
    return out[0].clamp(0, 1)


def make_source(
    path: Path,
    seconds: float,
    width: int,
    height: int,
    *,
    fps: int = 24,
    audio_rate: int = 48000,
    seed: int = 0,
    preset: str = "veryfast",
    grain: float = 0.0175,
    keyframe_s: float = 2.0,
) -> Path:
    """Write an H.264 + stereo AAC mp4 of panning textured scenes (a new scene every 4 s).

    x264 ``preset``, crf 23, B-frames, a keyframe every ``keyframe_s`` seconds (streaming-style;
    longer GOPs make on-the-fly decoding slower still); ``grain``: std of per-pixel noise (the
    default gives about 7 Mbit/s at 1080p, a usual streaming bitrate).
    """
    rng = np.random.default_rng(seed)
    pan = max(8, width // 8)
    frames = round(seconds * fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": preset, "crf": "23", "g": str(round(keyframe_s * fps))})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=audio_rate, layout="stereo")
        aus.bit_rate = 192000
        scene = None
        for n in range(frames):
            if n % (4 * fps) == 0:
                scene = _texture(rng, height + pan, width + pan)
                dx, dy = rng.integers(-1, 2, size=2) * (pan / (4 * fps))
            t = n % (4 * fps)
            x0, y0 = int(pan / 2 + dx * t / 2), int(pan / 2 + dy * t / 2)  # stays within [0, pan]
            img = scene[:, y0 : y0 + height, x0 : x0 + width].clone()
            cy, cx = int(height * (0.5 + 0.3 * math.sin(n / 17))), int(width * (0.5 + 0.35 * math.cos(n / 23)))
            r = max(2, height // 10)
            img[:, max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = torch.tensor([0.9, 0.8, 0.2]).view(3, 1, 1)
            img += grain * torch.randn(1, height, width)  # film grain
            rgb = (img.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = n
            frame.time_base = fractions.Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        t = np.arange(round(seconds * audio_rate)) / audio_rate
        pitch = 220 * 2 ** (np.floor(t / 0.5) % 12 / 12)
        mono = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / audio_rate) + 0.05 * rng.standard_normal(t.size)
        stereo = np.stack([mono, 0.8 * mono]).astype(np.float32)
        for start in range(0, stereo.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start : start + 1024]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = audio_rate, start, fractions.Fraction(1, audio_rate)
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode():
            out.mux(packet)
    return path


def build_store(cfg, sources: list[Path], work: Path, name: str, workers: int) -> SnippetStore:
    """Catalog + store of ``sources`` through avplug's Python API (title ids: file stems)."""
    catalog, store = work / f"{name}_catalog", work / f"{name}_store"
    src = work / f"{name}_sources"
    src.mkdir(exist_ok=True)
    for s in sources:
        link = src / s.name
        if not link.exists():
            link.symlink_to(s.resolve())
    ingest(str(src), str(catalog), snippet_seconds=cfg.DATA.SNIPPET_SECONDS, heldout_fraction=0.0, workers=workers, progress=False)
    summary = preprocess(str(catalog), str(store), StoreSpec.from_cfg(cfg), workers=workers, progress=False)
    if summary.failed:
        raise RuntimeError(f"preprocessing failed: {summary.failed}")
    return SnippetStore(store)


# ---------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    own = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + children.ru_utime + children.ru_stime


def measure(name: str, one_pass, units_per_pass: float, min_seconds: float, unit: str = "snippets", label: str = "snippets") -> dict:
    """Run ``one_pass`` once to warm up, then until ``min_seconds`` of wall time have passed.

    Each pass does ``units_per_pass`` of ``unit`` (snippets, seconds of source, ...); the result
    counts them per CPU-second and per wall-second (keys ``{unit}_per_cpu_s``, ``{unit}_per_wall_s``).
    """
    one_pass()
    passes, wall0, cpu0 = 0, time.perf_counter(), _cpu_seconds()
    while True:
        one_pass()
        passes += 1
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
        if wall >= min_seconds:
            break
    units = passes * units_per_pass
    result = {
        "passes": passes,
        unit: units,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        f"{unit}_per_cpu_s": round(units / max(cpu, 1e-9), 3),
        f"{unit}_per_wall_s": round(units / max(wall, 1e-9), 3),
    }
    log.info("%s: %.2f %s per CPU-s (%.2f per wall-s, %g in all)", name, result[f"{unit}_per_cpu_s"], label, result[f"{unit}_per_wall_s"], units)
    return result


def pytorchvideo_pass(cfg, source: Path, num_snippets: int, transform):
    """(a): on-the-fly decoding of the source with pytorchvideo, then the same transforms."""
    from pytorchvideo.data.encoded_video import EncodedVideo
    from pytorchvideo.transforms import UniformTemporalSubsample
    from scipy.signal import resample_poly

    seconds, frames, rate = cfg.DATA.SNIPPET_SECONDS, cfg.DATA.SNIPPET_FRAMES, cfg.DATA.AUDIO_RATE
    samples = round(seconds * rate)
    subsample = UniformTemporalSubsample(frames)
    generator = torch.Generator().manual_seed(0)

    def one_pass():
        for m in range(num_snippets):
            video = EncodedVideo.from_path(str(source), decode_audio=True, decoder="pyav")  # a dataset opens per clip
            clip = video.get_clip(m * seconds, (m + 1) * seconds)
            source_rate = video._container.streams.audio[0].sample_rate
            video.close()
            frames_0_255 = subsample(clip["video"])  # float [3, F, H, W] in [0, 255]
            audio = clip["audio"].numpy()
            if source_rate != rate:
                g = math.gcd(source_rate, rate)
                audio = resample_poly(audio, rate // g, source_rate // g)
            audio = torch.from_numpy(np.resize(audio.astype(np.float32), samples))[None]
            params = transform.draw(frames_0_255.shape, audio.shape, generator)
            x = transform.scale(frames_0_255)
            x = transform.to_float(transform.crop.apply(x, params))
            if transform.jitter is not None:
                x = transform.jitter.apply(x, params)
            transform.normalize(x)
            transform.apply_audio(audio, params)

    return one_pass


def decoder_on_source_pass(cfg, source: Path, num_snippets: int, transform):
    """(a2): on-the-fly decoding of the source with avplug's PyAV decoder (only the snippet's
    frames are converted to RGB, audio resampled to DATA.AUDIO_RATE), then the same transforms."""
    from registry import DECODERS

    decoder = DECODERS.get("pyav")()
    seconds, frames, fps, rate = cfg.DATA.SNIPPET_SECONDS, cfg.DATA.SNIPPET_FRAMES, cfg.DATA.FPS, cfg.DATA.AUDIO_RATE
    generator = torch.Generator().manual_seed(0)

    def one_pass():
        for m in range(num_snippets):
            video = decoder.read_video(str(source), m * seconds, frames, fps).permute(3, 0, 1, 2)
            audio = decoder.read_audio(str(source), m * seconds, seconds, rate)[None]
            params = transform.draw(video.shape, audio.shape, generator)
            transform.apply_video(video, params)
            transform.apply_audio(audio, params)

    return one_pass


def store_pass(dataset: PretrainDataset, title_id: str, num_snippets: int, k: int):
    """(b): the loader worker's fetch path, the title's snippets in groups of k."""
    keys = [(title_id, m) for m in range(num_snippets)]
    groups = [keys[i : i + k] for i in range(0, len(keys), k)]
    epoch = [0]

    def one_pass():
        epoch[0] += 1
        for group in groups:
            dataset.__getitems__([(t, m, epoch[0]) for t, m in group])

    return one_pass


def ffmpeg_pass(path: str, loops: int = 1, streams: tuple[str, ...] = ("0:v:0",)):
    """(c): the ffmpeg CLI decoding ``streams`` of ``path`` with one thread, output discarded,
    ``loops`` times in one process (``-stream_loop``) so that process start-up does not count."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    maps = [arg for stream in streams for arg in ("-map", stream)]
    command = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1", "-stream_loop", str(loops - 1),
               "-i", path, *maps, "-f", "null", "-"]  # fmt: skip

    def one_pass():
        subprocess.run(command, check=True)

    return one_pass


def pyav_pass(path: str, rgb: bool = False, audio: bool = False):
    """(c'): PyAV decoding the video stream (and with ``audio`` the first audio stream) single-
    threaded, optionally converting the video frames to RGB."""

    def one_pass():
        with av.open(path) as container:
            streams = [container.streams.video[0]] + ([container.streams.audio[0]] if audio else [])
            streams[0].codec_context.thread_count = 1
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if rgb and isinstance(frame, av.VideoFrame):
                        frame.to_ndarray(format="rgb24")

    return one_pass


def machine_info() -> dict:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ffmpeg = shutil.which("ffmpeg")
    ffmpeg_version = ""
    if ffmpeg:
        first = subprocess.run([ffmpeg, "-version"], check=True, capture_output=True, text=True).stdout.splitlines()[:1]
        ffmpeg_version = re.sub(r"\s+Copyright.*", "", first[0]) if first else ""
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg_cli": ffmpeg_version,
    }


# ---------------------------------------------------------------------------------------------
# The two modes
# ---------------------------------------------------------------------------------------------
def per_core(cfg, source: Path, store: SnippetStore, min_seconds: float, k: int) -> dict:
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(all_cpus)})
    try:
        title = store.titles[0]
        n = title.num_snippets
        transform = build_pretrain_transform(cfg)
        dataset = PretrainDataset(cfg, store, [title])
        raw_cfg = cfg.clone()
        raw_cfg.defrost()
        raw_cfg.INPUT.ON_DEVICE = True
        raw = PretrainDataset(raw_cfg, store, [title])
        video = store.video_path(title.title_id)
        results = {
            "a_pytorchvideo_source": measure("(a) pytorchvideo on the source", pytorchvideo_pass(cfg, source, n, transform), n, min_seconds),
            "a2_avplug_decoder_source": measure("(a2) avplug PyAV decoder on the source", decoder_on_source_pass(cfg, source, n, transform), n, min_seconds),
            "b_avplug_store": measure("(b) avplug store, full transforms", store_pass(dataset, title.title_id, n, k), n, min_seconds),
            "b_raw_avplug_store_on_device_mode": measure("(b_raw) avplug store, ON_DEVICE fetch", store_pass(raw, title.title_id, n, k), n, min_seconds),
        }
        loops = max(1, math.ceil(2000 / (n * cfg.DATA.SNIPPET_FRAMES)))  # about 2000 frames per process
        cli = ffmpeg_pass(video, loops)
        if cli is not None:
            results["c_ffmpeg_cli_store_decode"] = measure("(c) ffmpeg -threads 1 on the store video", cli, n * loops, min_seconds)
        results["c_pyav_store_decode"] = measure("(c') PyAV decode of the store video", pyav_pass(video, rgb=False), n, min_seconds)
        results["c_pyav_store_decode_rgb"] = measure("(c'') PyAV decode + RGB of the store video", pyav_pass(video, rgb=True), n, min_seconds)
    finally:
        os.sched_setaffinity(0, all_cpus)
    return results


def _loader_cfg(cfg, k: int, batch_size: int, workers: int, on_device: bool = False):
    run_cfg = cfg.clone()
    run_cfg.defrost()
    run_cfg.INPUT.ON_DEVICE = on_device
    run_cfg.SAMPLER.NAME = "HierarchicalSampler"
    run_cfg.SAMPLER.K = k
    run_cfg.SAMPLER.WINDOW = 0
    run_cfg.SOLVER.BATCH_SIZE = batch_size
    run_cfg.DATA.NUM_WORKERS = workers
    run_cfg.freeze()
    return run_cfg


def fetch_locality(cfg, store: SnippetStore, ks: list[int], batch_size: int, max_batches: int, min_seconds: float) -> dict:
    """Per core: ``__getitems__`` on the sampler's batches for each k (CPU time, pinned)."""
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(all_cpus)})
    try:
        out = {}
        for k in ks:
            run_cfg = _loader_cfg(cfg, k, batch_size, 0)
            sampler = build_sampler(run_cfg, store.titles, world_size=1, rank=0)
            sampler.set_epoch(0)
            batches = [[(t, int(i)) for t, i in batch] for _, batch in zip(range(max_batches), sampler)]
            dataset = PretrainDataset(run_cfg, store)

            def one_pass(batches=batches, dataset=dataset):
                for batch in batches:
                    dataset.__getitems__(batch)

            out[f"k{k}"] = measure(f"fetch k={k}, batch {batch_size}", one_pass, len(batches) * batch_size, min_seconds)
        return out
    finally:
        os.sched_setaffinity(0, all_cpus)


def loader_mode(cfg, store: SnippetStore, ks: list[int], workers: list[int], batch_size: int, max_batches: int) -> list[dict]:
    """Wall-clock DataLoader throughput for each (transforms in the workers or on the device, k,
    worker count)."""
    rows = []
    for on_device in (False, True):
        for k in ks:
            for w in workers:
                rows.append(_loader_row(cfg, store, on_device, k, w, batch_size, max_batches))
    return rows


def _proc_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of running processes (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _loader_row(cfg, store: SnippetStore, on_device: bool, k: int, w: int, batch_size: int, max_batches: int) -> dict:
    """One row: batches after the first, wall clock, and the CPU time of the processes that
    fetched them (the workers, or the main process with 0 workers)."""
    run_cfg = _loader_cfg(cfg, k, batch_size, w, on_device)
    sampler = build_sampler(run_cfg, store.titles, world_size=1, rank=0)
    sampler.set_epoch(0)
    loader = build_pretrain_loader(run_cfg, PretrainDataset(run_cfg, store), sampler)
    it = iter(loader)
    next(it)  # worker start-up and first batch excluded
    pids = [p.pid for p in getattr(it, "_workers", [])]  # the DataLoader's worker processes

    def cpu() -> float:
        return _proc_cpu_seconds(pids) if pids else time.process_time()

    t0, c0, batches, opens = time.perf_counter(), cpu(), 0, 0
    for batch in it:
        batches += 1
        opens += len(set(batch["title_id"]))
        if batches >= max_batches:
            break
    wall, cpu_s = time.perf_counter() - t0, cpu() - c0
    del it, loader
    snippets = batches * batch_size
    row = {
        "transforms": "on device (raw fetch)" if on_device else "in workers",
        "k": k,
        "workers": w,
        "batch_size": batch_size,
        "batches": batches,
        "title_reads_per_batch": round(opens / max(batches, 1), 2),
        "snippets_per_s": round(snippets / max(wall, 1e-9), 2),
        "snippets_per_fetch_cpu_s": round(snippets / max(cpu_s, 1e-9), 2),
    }
    log.info("loader %s k=%d workers=%d: %.2f snippets/s, %.1f per CPU-s of the fetching processes (%.1f title reads per batch)",
             row["transforms"], k, w, row["snippets_per_s"], row["snippets_per_fetch_cpu_s"], row["title_reads_per_batch"])
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: demo recipe, tiny sources, short timings")
    parser.add_argument("--cfg", default=None, help="recipe (default: movie_tv.yaml, demo.yaml with --quick)")
    parser.add_argument("--source", default=None, help="a source file for (a)-(c) instead of the generated one")
    parser.add_argument("--seconds", type=float, default=None, help="length of the generated source (default 30, quick 4)")
    parser.add_argument("--size", default=None, help="WxH of the generated source (default 1920x1080, quick 256x144)")
    parser.add_argument("--min-seconds", type=float, default=None, help="wall time per per-core figure (default 10, quick 0.5)")
    parser.add_argument("--loader-titles", type=int, default=None, help="titles of the loader-mode store (default: the largest k)")
    parser.add_argument("--loader-k", default=None, help="comma-separated k values (default 1,16; quick 1,4)")
    parser.add_argument("--loader-workers", default=None, help="comma-separated worker counts (default 0,1,2; quick 0,1)")
    parser.add_argument("--loader-batches", type=int, default=None, help="batches timed per loader row (default 12, quick 2)")
    parser.add_argument("--no-loader", action="store_true", help="skip the end-to-end DataLoader mode")
    parser.add_argument("--workdir", default=None, help="keep sources and stores here (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="cfg overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    q = args.quick
    # One intra-op thread: the per-core figures are single-threaded, workers use one thread each,
    # and with workers = 0 the main process then also uses one core.
    torch.set_num_threads(1)
    cfg = load_config(args.cfg or ("demo.yaml" if q else "movie_tv.yaml"), args.opts)
    seconds = args.seconds or (4.0 if q else 30.0)
    width, height = map(int, (args.size or ("256x144" if q else "1920x1080")).split("x"))
    min_seconds = args.min_seconds if args.min_seconds is not None else (0.5 if q else 10.0)
    ks = [int(x) for x in (args.loader_k or ("1,4" if q else "1,16")).split(",")]
    workers = [int(x) for x in (args.loader_workers or ("0,1" if q else "0,1,2")).split(",")]
    loader_titles = args.loader_titles or max(ks)
    loader_batches = args.loader_batches or (2 if q else 12)
    prep_workers = min(2, os.cpu_count() or 1)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="avplug_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        if args.source:
            source = Path(args.source)
        else:
            source = work / f"source_{width}x{height}_{seconds:g}s.mp4"
            if not source.exists():
                log.info("generating a %dx%d, %.0f s H.264/AAC source", width, height, seconds)
                make_source(source, seconds, width, height, preset="ultrafast" if q else "veryfast")
        store = build_store(cfg, [source], work, "title", prep_workers)
        log.info("source and store ready in %.1f s: %s", time.perf_counter() - t0, store)
        with av.open(str(source)) as c:
            vs = c.streams.video[0]
            source_info = {"path": str(source), "width": vs.width, "height": vs.height, "fps": float(vs.average_rate or 0),
                           "seconds": float(c.duration or 0) / av.time_base, "video_codec": vs.codec_context.name,
                           "video_mbit_s": round((vs.bit_rate or 0) / 1e6, 2),
                           "audio_codec": c.streams.audio[0].codec_context.name if c.streams.audio else None}
        k_single = max(ks)
        result = {
            "benchmark": "data_throughput",
            "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
            "machine": machine_info(),
            "recipe": {
                "cfg": args.cfg or ("demo.yaml" if q else "movie_tv.yaml"),
                "snippet": f"{cfg.DATA.SNIPPET_FRAMES} frames at {cfg.DATA.FPS:g} fps",
                "store_short_side": cfg.DATA.STORE_SHORT_SIDE,
                "crop": cfg.INPUT.VIDEO.CROP,
                "audio": f"{cfg.DATA.AUDIO_RATE} Hz, {cfg.INPUT.AUDIO.MEL_BINS} mels, n_fft {cfg.INPUT.AUDIO.N_FFT}, hop {cfg.INPUT.AUDIO.HOP}",
                "decoder": cfg.DATA.DECODER,
            },
            "source": source_info,
            "store_title": {"title_id": store.titles[0].title_id, "snippets": store.titles[0].num_snippets, "k": k_single},
        }
        figures = per_core(cfg, source, store, min_seconds, k_single)
        a = figures["a_pytorchvideo_source"]["snippets_per_cpu_s"]
        b = figures["b_avplug_store"]["snippets_per_cpu_s"]
        c = figures.get("c_ffmpeg_cli_store_decode", figures["c_pyav_store_decode"])["snippets_per_cpu_s"]
        result["per_core"] = figures
        a2 = figures["a2_avplug_decoder_source"]["snippets_per_cpu_s"]
        result["ratios"] = {"b_over_a": round(b / a, 2), "b_over_a2": round(b / a2, 2), "b_over_c": round(b / c, 3)}
        if not args.no_loader:
            batch_size = max(ks)  # k = 1: one snippet from each of B distinct titles; k = B: one title
            if any(batch_size % k for k in ks) or loader_titles < batch_size // min(ks):
                raise SystemExit(f"--loader-k {ks}: every k must divide {batch_size} and --loader-titles must be >= {batch_size // min(ks)}")
            title_seconds = max(ks) * cfg.DATA.SNIPPET_SECONDS + 0.5
            log.info("loader mode: %d titles of %.0f s, batch %d", loader_titles, title_seconds, batch_size)
            sources = []
            for i in range(loader_titles):
                path = work / f"loader_{i:02d}.mp4"
                if not path.exists():
                    make_source(path, title_seconds, *((128, 72) if q else (640, 360)), seed=100 + i, preset="ultrafast")
                sources.append(path)
            loader_store = build_store(cfg, sources, work, "loader", prep_workers)
            result["fetch_per_core_by_k"] = fetch_locality(cfg, loader_store, ks, batch_size, loader_batches, min_seconds)
            result["loader"] = loader_mode(cfg, loader_store, ks, workers, batch_size, loader_batches)
        result["total_wall_s"] = round(time.perf_counter() - t0, 1)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
