#!/usr/bin/env python
"""Pretraining step throughput: snippets/s per device for the paper's recipe, variant by variant.

One timed train step is the engine's (``avplug.engine.train``): the batch goes from host memory to
the device (``build_batch_transform``), both encoders and projection heads run forward, Eq. 1 loss
(``CrossModalNCE``), backward, optimizer step (Adam), all with the engine's helpers
(``autocast_dtype``, ``build_optimizer``, ``prepare_model``, ``compile_model``) under the cfg
overrides that define each variant.  Every variant runs in the same process on the same batches
and from the same initial weights.  The first five rows each add one setting to the row above;
"eager" below is the fifth row, ``bf16+cl3d+cudnn_bench+fused_adam``:

================================================  ============================================
variant                                           cfg overrides
================================================  ============================================
fp32_eager (the baseline)                         SOLVER.AMP off
bf16_autocast                                     SOLVER.AMP bf16
bf16+cl3d                                         + SOLVER.CHANNELS_LAST True
bf16+cl3d+cudnn_bench                             + SOLVER.CUDNN_BENCHMARK True (a no-op on CPU)
bf16+cl3d+cudnn_bench+fused_adam                  + SOLVER.FUSED_OPTIMIZER True
bf16+cl3d+cudnn_bench+fused_adam+compile          eager + SOLVER.COMPILE True
...+fused_adam+on_device_aug                      eager + INPUT.ON_DEVICE True
...+fused_adam+compile+on_device_aug              eager + SOLVER.COMPILE True + INPUT.ON_DEVICE True
...+fused_adam+loss_item_sync                     eager + ``loss.item()`` every step
================================================  ============================================

cl3d: the model in channels_last_3d (video) / channels_last (audio) memory format.  Overrides given
after ``--`` apply to every row (before the row's own).

What each timing includes.  Every variant starts each step from a batch in host memory (pinned on
CUDA), as the DataLoader hands it over, so the host-to-device copy is inside the step.  Without
``on_device_aug`` that batch is already transformed (float video ``[B, 3, T, crop, crop]``,
log-mel audio ``[B, 1, mels, frames]``): the loader workers' decoding and augmentation are NOT in
the step (``benchmarks/data_throughput.py`` measures them).  With ``on_device_aug`` the batch is
the raw one (uint8 video at the store's size ``[B, 3, T, 190, 338]`` for the paper, the 48 kHz
waveform and the drawn augmentation parameters) and the log-mel spectrogram, crop, color jitter,
normalization and band drop run on the device inside the timed step; decoding stays in workers.

Timing: ``--warmup`` untimed steps (compilation and cuDNN autotuning happen there; the first
step's time is reported), then ``--steps`` timed steps; on CUDA with ``torch.cuda.synchronize``
around the loop and CUDA events per step, on CPU with ``time.perf_counter``.  "CPU ms" is the
process's CPU time per step (``time.process_time``, all threads): on a GPU the host's cost of
launching the step; on a shared CPU with ``--threads 1`` the figure that other processes do not
distort (the wall-clock rate drops when they take the core).  Peak memory is
``torch.cuda.max_memory_allocated`` per variant on CUDA; on CPU the process's peak RSS so far
(``resource.getrusage``: a high-water mark over the whole run, not per variant).  FLOPs per clip are
counted by fvcore (``FlopCountAnalysis``, one multiply-accumulate counted once) on one clip of each
tower plus its head; a training step costs about 3x the forward, so achieved TFLOP/s = snippets/s x
3 x 2 x MACs, shown against the device's dense bf16 peak where the script knows it.

``--profile VARIANT`` instead times the regions of that variant's step (inputs, forward of each
tower, loss, backward of each tower, optimizer; synchronized between regions; wall time on CUDA,
process CPU time on CPU) and prints
torch.profiler's most expensive operators.  Prints a table and one JSON object (also ``--json``).

    python benchmarks/train_throughput.py                        # GPU: movie_tv.yaml, batch 64
    python benchmarks/train_throughput.py --device cpu           # CPU: demo.yaml sizes, batch 8
    python benchmarks/train_throughput.py --profile fp32_eager   # where the step's time goes
    python benchmarks/train_throughput.py --quick --device cpu   # smoke run, well under a minute
    python benchmarks/train_throughput.py --variants fp32_eager bf16_autocast -- INPUT.VIDEO.COLOR_JITTER 0.5
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
import traceback
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

import avplug  # noqa: F401  (pytorchvideo shim first)
import registry
from avplug.config import load_config
from avplug.data.store_writer import store_size
from avplug.data.transforms import (
    build_batch_transform,
    build_pretrain_transform,
    stack_params,
)
from avplug.engine.train import (
    autocast_dtype,
    build_optimizer,
    compile_model,
    prepare_model,
)
from avplug.models import build_model

#: The paper's run (issue 8): 42 h on 8 A100s for 10 epochs of ~7M snippets.
PAPER_SNIPPETS_PER_S_PER_GPU = 58.0
#: Issue 8's goal for the full recipe on one H100.
GOAL_SNIPPETS_PER_S_H100 = 600.0

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, matched against the device name in order.
BF16_PEAK_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM5
    ("A100", 312.0),
)


@dataclass(frozen=True)
class Variant:
    """One row: a name, the cfg overrides that define it, and whether it syncs on the loss each step."""

    name: str
    opts: tuple[str, ...]
    loss_item_sync: bool = False
    note: str = ""

    @property
    def compiles(self) -> bool:
        return "SOLVER.COMPILE" in self.opts[::2]

    @property
    def on_device(self) -> bool:
        return "INPUT.ON_DEVICE" in self.opts[::2]


_FP32 = ("SOLVER.AMP", "off")
_BF16 = ("SOLVER.AMP", "bf16")
_CL = ("SOLVER.CHANNELS_LAST", "True")
_BENCH = ("SOLVER.CUDNN_BENCHMARK", "True")
_FUSED = ("SOLVER.FUSED_OPTIMIZER", "True")
_COMPILE = ("SOLVER.COMPILE", "True")
_ON_DEVICE = ("INPUT.ON_DEVICE", "True")
_BEST_EAGER = _BF16 + _CL + _BENCH + _FUSED

VARIANTS = (
    Variant("fp32_eager", _FP32, note="baseline"),
    Variant("bf16_autocast", _BF16),
    Variant("bf16+cl3d", _BF16 + _CL),
    Variant("bf16+cl3d+cudnn_bench", _BF16 + _CL + _BENCH, note="cudnn.benchmark is CUDA only"),
    Variant("bf16+cl3d+cudnn_bench+fused_adam", _BEST_EAGER),
    Variant("bf16+cl3d+cudnn_bench+fused_adam+compile", _BEST_EAGER + _COMPILE),
    Variant("bf16+cl3d+cudnn_bench+fused_adam+on_device_aug", _BEST_EAGER + _ON_DEVICE, note="transforms in the step"),
    Variant("bf16+cl3d+cudnn_bench+fused_adam+compile+on_device_aug", _BEST_EAGER + _COMPILE + _ON_DEVICE,
            note="transforms in the step"),
    Variant("bf16+cl3d+cudnn_bench+fused_adam+loss_item_sync", _BEST_EAGER, loss_item_sync=True,
            note="per-step loss.item()"),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)

#: Sizes when no --cfg is given.  CPU: the demo recipe's input and model sizes (a CPU cannot run
#: the paper's model at a useful rate); quick: smaller still, for the smoke test.
CPU_DEFAULT = ("demo.yaml", 8, [])
QUICK = ("demo.yaml", 4, ["MODEL.VIDEO.WIDTH", "0.0625", "MODEL.AUDIO.WIDTH", "0.0625", "MODEL.HEAD.DIM", "16",
                          "DATA.SNIPPET_FRAMES", "4", "DATA.STORE_SHORT_SIDE", "40", "INPUT.VIDEO.SHORT_SIDE", "40",
                          "INPUT.VIDEO.CROP", "32"])
GPU_DEFAULT = ("movie_tv.yaml", 64, [])


# ------------------------------------------------------------------------------------------ setup
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    info = {
        "device": str(device),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def bf16_peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak from :data:`BF16_PEAK_TFLOPS` (None: unknown device or CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def base_config(args) -> tuple:
    """The benchmark's base cfg (frozen) and a line saying where its sizes come from."""
    preset = QUICK if args.quick else GPU_DEFAULT if args.device.type == "cuda" else CPU_DEFAULT
    cfg_name = args.cfg or preset[0]
    batch = args.batch or preset[1]
    size_opts = [] if args.cfg else preset[2]
    opts = size_opts + ["SOLVER.BATCH_SIZE", str(batch), "SAMPLER.K", "1"] + list(args.opts)
    cfg = load_config(cfg_name, opts)
    source = f"{cfg_name} + {' '.join(size_opts + list(args.opts)) or 'no overrides'}, per-device batch {batch}"
    return cfg, source


def variant_config(base, variant: Variant):
    cfg = base.clone()
    cfg.defrost()
    cfg.merge_from_list(list(variant.opts))
    cfg.freeze()
    return cfg


def raw_frame_size(cfg) -> tuple[int, int]:
    """(height, width) of a 16:9 title in the store (short side DATA.STORE_SHORT_SIDE, the store's rounding)."""
    width, height = store_size(1920, 1080, int(cfg.DATA.STORE_SHORT_SIDE))
    return height, width


def make_batches(cfg, count: int, seed: int, pin: bool) -> list[dict]:
    """``count`` raw batches and the same batches already transformed, in host memory.

    Returns a list of ``{"raw": {"video", "audio", "aug"}, "ready": {"video", "audio"}}``: the raw
    batch is what a dataset with ``INPUT.ON_DEVICE True`` collates (uint8 video at the store's size,
    the waveform, the drawn parameters); ``ready`` is the worker path's output for the same
    parameters (``PretrainTransform`` applied on the CPU).
    """
    generator = torch.Generator().manual_seed(seed)
    batch, frames = cfg.SOLVER.BATCH_SIZE, cfg.DATA.SNIPPET_FRAMES
    height, width = raw_frame_size(cfg)
    samples = round(frames / cfg.DATA.FPS * cfg.DATA.AUDIO_RATE)
    transform = build_pretrain_transform(cfg)
    out = []
    for _ in range(count):
        video = torch.randint(0, 256, (batch, 3, frames, height, width), dtype=torch.uint8, generator=generator)
        audio = 0.1 * torch.randn(batch, 1, samples, generator=generator)
        params = stack_params([transform.draw(video.shape[1:], audio.shape[1:], generator) for _ in range(batch)])
        with torch.no_grad():
            ready = {"video": transform.apply_video_batch(video, params), "audio": transform.apply_audio_batch(audio, params)}
        raw = {"video": video, "audio": audio, "aug": params}
        if pin:
            raw = {"video": video.pin_memory(), "audio": audio.pin_memory(), "aug": {k: v.pin_memory() for k, v in params.items()}}
            ready = {k: v.pin_memory() for k, v in ready.items()}
        out.append({"raw": raw, "ready": ready})
    return out


def flops_per_clip(cfg, device: torch.device) -> dict:
    """Forward multiply-accumulates of one clip through f + h_f and g + h_g (fvcore)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importing fvcore.nn scripts functions with torch.jit, which warns
        from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    batch = make_batches(_with_batch(cfg, 1), 1, seed=0, pin=False)[0]["ready"]
    video, audio = batch["video"].to(device), batch["audio"].to(device)
    result = {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore traces with torch.jit, which warns that it is deprecated
        for name, module, x in (("video", _Tower(model, "video"), video), ("audio", _Tower(model, "audio"), audio)):
            counter = FlopCountAnalysis(module, (x,))
            counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            result[f"{name}_gmacs"] = counter.total() / 1e9
    result["total_gmacs"] = result["video_gmacs"] + result["audio_gmacs"]
    result["train_gflops_per_clip"] = 3 * 2 * result["total_gmacs"]  # forward + ~2x backward, 2 FLOPs per MAC
    del model
    return {k: round(v, 4) for k, v in result.items()}


class _Tower(nn.Module):
    def __init__(self, model, which: str) -> None:
        super().__init__()
        self.model, self.which = model, which

    def forward(self, x):
        return self.model.embed_video(x) if self.which == "video" else self.model.embed_audio(x)


def _with_batch(cfg, batch: int):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.BATCH_SIZE = batch
    cfg.freeze()
    return cfg


# ------------------------------------------------------------------------------------------ the step
@dataclass
class Trainer:
    """The engine's train step for one variant's cfg (model, loss, optimizer, batch transform)."""

    cfg: object
    device: torch.device
    loss_item_sync: bool = False
    compile_backend: str = "inductor"
    model: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        cfg, device = self.cfg, self.device
        torch.manual_seed(cfg.SEED)  # the same initial weights for every variant
        self.model = build_model(cfg).to(device)
        prepare_model(cfg, self.model, device)
        self.loss_fn = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module).to(device)
        self.optimizer = build_optimizer(cfg, self.model.parameters())
        amp = autocast_dtype(cfg, device)
        self.autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else nullcontext
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        self.train_model = compile_model(cfg, self.model, backend=self.compile_backend)
        self.batch_transform = build_batch_transform(cfg, device)
        self.input_key = "raw" if cfg.INPUT.ON_DEVICE else "ready"
        self.model.train()

    def step(self, batches: dict) -> torch.Tensor:
        batch = self.batch_transform(dict(batches[self.input_key]))
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.SOLVER.BASE_LR
        with self.autocast():
            z_video, z_audio = self.train_model(batch["video"], batch["audio"])
            loss = self.loss_fn(z_video, z_audio)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.loss_item_sync and not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()}")
        return loss

    def close(self) -> None:
        del self.model, self.train_model, self.optimizer
        if self.cfg.SOLVER.COMPILE:
            torch._dynamo.reset()


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(base_cfg, variant: Variant, data: list[dict], args) -> dict:
    """Time one variant; a failure (compile unsupported, out of memory) becomes a row with its error."""
    device = args.device
    cfg = variant_config(base_cfg, variant)
    batch = cfg.SOLVER.BATCH_SIZE
    row = {"variant": variant.name, "opts": " ".join(variant.opts), "note": variant.note,
           "includes": "H2D + on-device mel/crop/jitter/normalize/drop + step" if variant.on_device else "H2D + step"}
    trainer = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        trainer = Trainer(cfg, device, loss_item_sync=variant.loss_item_sync, compile_backend=args.compile_backend)
        first_s = 0.0
        for i in range(args.warmup):
            t0 = time.perf_counter()
            trainer.step(data[i % len(data)])
            _sync(device)
            if i == 0:
                first_s = time.perf_counter() - t0
        step_ms = []
        if device.type == "cuda":
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(args.steps)]
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(args.steps):
            if device.type == "cuda":
                events[i][0].record()
                loss = trainer.step(data[i % len(data)])
                events[i][1].record()
            else:
                s0 = time.perf_counter()
                loss = trainer.step(data[i % len(data)])
                step_ms.append(1e3 * (time.perf_counter() - s0))
        _sync(device)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if device.type == "cuda":
            step_ms = [start.elapsed_time(end) for start, end in events]
        final_loss = float(loss.detach())
        row.update(
            ok=True,
            snippets_per_s=batch * args.steps / wall,
            ms_per_step=1e3 * wall / args.steps,
            cpu_ms_per_step=1e3 * cpu / args.steps,
            snippets_per_cpu_s=batch * args.steps / max(cpu, 1e-9),
            median_step_ms=sorted(step_ms)[len(step_ms) // 2],
            first_step_s=first_s,
            peak_memory_mib=_peak_memory_mib(device),
            final_loss=final_loss if math.isfinite(final_loss) else str(final_loss),
        )
    except Exception as exc:  # noqa: BLE001  (a variant that cannot run is a result, not a crash)
        row.update(ok=False, error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}")
        if args.verbose:
            traceback.print_exc()
    finally:
        if trainer is not None:
            trainer.close()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


# ------------------------------------------------------------------------------------------ profile
def profile(base_cfg, variant: Variant, data: list[dict], args) -> dict:
    """Region times of ``variant``'s step (synchronized between regions) and the top operators."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    if variant.compiles:
        raise SystemExit("--profile times the towers separately in eager mode: pick a variant without compile")
    device = args.device
    trainer = Trainer(variant_config(base_cfg, variant), device)
    model, opt = trainer.model, trainer.optimizer
    video_params = list(model.video_backbone.parameters()) + list(model.video_head.parameters())
    audio_params = list(model.audio_backbone.parameters()) + list(model.audio_head.parameters())
    regions = ("inputs", "forward_video", "forward_audio", "loss", "backward_video", "backward_audio", "optimizer")
    totals = dict.fromkeys(regions, 0.0)

    clock = time.perf_counter if device.type == "cuda" else time.process_time  # CPU: robust to other processes

    def timed_step(batches: dict, record: bool) -> None:
        marks = [clock()]

        def mark() -> None:
            _sync(device)
            marks.append(clock())

        batch = trainer.batch_transform(dict(batches[trainer.input_key]))
        mark()
        with trainer.autocast():
            z_video = model.embed_video(batch["video"])
            mark()
            z_audio = model.embed_audio(batch["audio"])
            mark()
            loss = trainer.loss_fn(z_video, z_audio)
        mark()
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=video_params, retain_graph=True)  # the loss's own backward is negligible
        mark()
        loss.backward(inputs=audio_params)
        mark()
        opt.step()
        mark()
        if record:
            for name, t0, t1 in zip(regions, marks, marks[1:]):
                totals[name] += t1 - t0

    for i in range(args.warmup):
        timed_step(data[i % len(data)], record=False)
    _sync(device)
    for i in range(args.steps):
        timed_step(data[i % len(data)], record=True)
    step_total = sum(totals.values())
    breakdown = {name: {"ms_per_step": 1e3 * t / args.steps, "percent": 100 * t / step_total} for name, t in totals.items()}

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for i in range(max(1, min(args.steps, 3))):
            trainer.step(data[i % len(data)])
        _sync(device)
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_key, row_limit=15)
    trainer.close()
    return {"variant": variant.name, "steps": args.steps, "breakdown": breakdown, "top_ops_table": table}


# ------------------------------------------------------------------------------------------ report
def primary_rate_key(device: torch.device) -> str:
    """The rate rows are compared by: wall-clock on CUDA, per CPU-second on CPU (see add_speedups)."""
    return "snippets_per_s" if device.type == "cuda" else "snippets_per_cpu_s"


def median_row(rows: list[dict], key: str) -> dict:
    """One variant's rounds -> the round with the median ``key`` (a failed round: that failure),
    with every round's ``key`` in ``rounds``, the largest peak memory and the first round's first step."""
    failed = [r for r in rows if not r["ok"]]
    if failed:
        return failed[0]
    ordered = sorted(rows, key=lambda r: r[key])
    row = dict(ordered[(len(ordered) - 1) // 2])
    row.update(rounds=[round(r[key], 3) for r in rows], peak_memory_mib=max(r["peak_memory_mib"] for r in rows),
               first_step_s=rows[0]["first_step_s"])
    return row


def add_speedups(result: dict) -> None:
    """``speedup`` of every row against the baseline row (fp32_eager if it ran, else the first row).

    On CUDA by wall-clock rate; on CPU by snippets per CPU-second, which other processes sharing the
    machine do not distort (``speedup_by`` says which).
    """
    done = [r for r in result["variants"] if r["ok"]]
    base = next((r for r in done if r["variant"] == "fp32_eager"), done[0] if done else None)
    key = primary_rate_key(torch.device(result["machine"]["device"]))
    result["baseline"], result["speedup_by"] = (base["variant"] if base else None), key
    for r in done:
        r["speedup"] = r[key] / base[key]


def print_table(result: dict) -> None:
    on_gpu = result["machine"]["device"].startswith("cuda")
    mem = "peak MiB" if on_gpu else "peak RSS MiB"
    header = (f"{'variant':<56} {'snippets/s':>10} {'per CPU-s':>9} {'speed-up':>8} {'ms/step':>8} {'CPU ms':>8} "
              f"{'first s':>7} {mem:>12} {'TFLOP/s':>8} {'% peak':>6}")
    print(header)
    print("-" * len(header))
    for r in result["variants"]:
        if not r["ok"]:
            print(f"{r['variant']:<56} FAILED: {r['error']}")
            continue
        tflops = f"{r['tflops']:.3g}" if r.get("tflops") is not None else "-"
        peak = f"{r['percent_of_bf16_peak']:.1f}" if r.get("percent_of_bf16_peak") is not None else "-"
        print(f"{r['variant']:<56} {r['snippets_per_s']:>10.1f} {r['snippets_per_cpu_s']:>9.1f} {r['speedup']:>7.2f}x "
              f"{r['ms_per_step']:>8.1f} {r['cpu_ms_per_step']:>8.1f} {r['first_step_s']:>7.1f} "
              f"{r['peak_memory_mib']:>12.0f} {tflops:>8} {peak:>6}")
    by = "wall-clock snippets/s" if on_gpu else "snippets per CPU-second (robust on a shared machine)"
    rounds = f"; each row the median of {result['repeats']} rounds" if result["repeats"] > 1 else ""
    print(f"speed-up: vs {result['baseline']}, by {by}{rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cfg", default="", help="recipe (default: movie_tv.yaml on GPU, demo.yaml sizes on CPU)")
    parser.add_argument("--batch", type=int, default=0, help="per-device batch (default: 64 on GPU, 8 on CPU)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per variant (default: 20 GPU, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps first (default: 5 GPU, 1 CPU)")
    parser.add_argument("--variants", nargs="+", choices=VARIANT_NAMES, default=list(VARIANT_NAMES), metavar="NAME",
                        help=f"subset to run, in this order (default: all): {', '.join(VARIANT_NAMES)}")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure every variant this many times, round-robin, and keep the median round")
    parser.add_argument("--profile", choices=VARIANT_NAMES, metavar="VARIANT", help="profile this variant's step instead")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--compile-backend", default="",
                        help="torch.compile backend of the compile rows (default: inductor; --quick: eager, which "
                             "captures the graph with dynamo but generates no code)")
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore FLOP count")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 warm-up + 1 timed step: the smoke test")
    parser.add_argument("--json", default="", help="also write the JSON result here")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failed variants")
    parser.add_argument("opts", nargs="*", help="cfg overrides KEY VALUE ... applied to every variant (after --)")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.repeats < 1 or args.steps < 0 or args.warmup < 0 or args.batch < 0:
        parser.error("--repeats must be >= 1 and --steps, --warmup, --batch >= 0 (0: the default)")
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = args.device.type == "cuda"
    args.steps = args.steps or (1 if args.quick else 20 if on_gpu else 3)
    args.warmup = args.warmup or (1 if args.quick else 5 if on_gpu else 1)
    args.compile_backend = args.compile_backend or ("eager" if args.quick else "inductor")

    cfg, source = base_config(args)
    print(f"# {source}; {args.warmup} warm-up + {args.steps} timed steps per variant on {args.device}", file=sys.stderr)
    data = make_batches(cfg, count=1 if args.quick else 2, seed=cfg.SEED, pin=on_gpu)
    ready, raw = data[0]["ready"], data[0]["raw"]
    result = {
        "benchmark": "train_throughput",
        "machine": machine_info(args.device),
        "config": source,
        "per_device_batch": cfg.SOLVER.BATCH_SIZE,
        "inputs": {
            "ready_video": list(ready["video"].shape), "ready_audio": list(ready["audio"].shape),
            "raw_video_uint8": list(raw["video"].shape), "raw_audio": list(raw["audio"].shape),
        },
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "repeats": args.repeats,
        "compile_backend": args.compile_backend,
        "reference": {"paper_snippets_per_s_per_a100": PAPER_SNIPPETS_PER_S_PER_GPU,
                      "goal_snippets_per_s_per_h100": GOAL_SNIPPETS_PER_S_H100},
    }
    if args.profile:
        variant = next(v for v in VARIANTS if v.name == args.profile)
        result["profile"] = prof = profile(cfg, variant, data, args)
        print(prof["top_ops_table"], file=sys.stderr)
        print(f"{'region':<16} {'ms/step':>9} {'%':>6}", file=sys.stderr)
        for name, entry in prof["breakdown"].items():
            print(f"{name:<16} {entry['ms_per_step']:>9.1f} {entry['percent']:>6.1f}", file=sys.stderr)
    else:
        flops = None if args.no_flops else flops_per_clip(cfg, args.device)
        peak = bf16_peak_tflops(args.device)
        result.update(flops_per_clip=flops, bf16_peak_tflops=peak, variants=[])
        selected = [v for v in VARIANTS if v.name in args.variants]
        rounds = []
        for repeat in range(args.repeats):  # round-robin, so that drifting machine load hits every row alike
            rounds.append([])
            for variant in selected:
                print(f"# {variant.name} (round {repeat + 1} of {args.repeats}) ...", file=sys.stderr, flush=True)
                rounds[-1].append(measure(cfg, variant, data, args))
        for index in range(len(selected)):
            row = median_row([r[index] for r in rounds], primary_rate_key(args.device))
            if row["ok"] and flops:
                row["tflops"] = row["snippets_per_s"] * flops["train_gflops_per_clip"] / 1e3
                row["percent_of_bf16_peak"] = 100 * row["tflops"] / peak if peak else None
            result["variants"].append(row)
        add_speedups(result)
        print_table(result)
        done = [r for r in result["variants"] if r["ok"]]
        if done:
            best = max(done, key=lambda r: r["speedup"])
            full = [r for r in done if r["variant"].endswith("on_device_aug")]
            result["best"] = best["variant"]
            result["best_with_on_device_aug"] = max(full, key=lambda r: r["speedup"])["variant"] if full else None
            print(f"best: {best['variant']} at {best['snippets_per_s']:.1f} snippets/s per device "
                  f"(paper: {PAPER_SNIPPETS_PER_S_PER_GPU:.0f}/s per A100; goal on an H100: {GOAL_SNIPPETS_PER_S_H100:.0f}/s)")
            if on_gpu and "H100" in result["machine"]["gpu"]:  # issue 8's goal: the full recipe, transforms included
                rate = max(r["snippets_per_s"] for r in (full or done))
                result["goal"] = {"snippets_per_s": rate, "target": GOAL_SNIPPETS_PER_S_H100,
                                  "met": rate >= GOAL_SNIPPETS_PER_S_H100}
                print(f"goal (>= {GOAL_SNIPPETS_PER_S_H100:.0f} snippets/s on an H100, full recipe): "
                      f"{'met' if result['goal']['met'] else 'NOT met'} at {rate:.1f}")
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
