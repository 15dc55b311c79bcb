"""The pretraining loop: Eq. 1 over the global batch, hierarchical sampling, exact resume.

One call of :func:`run_pretraining` is one rank of a world that the launcher has set up (a single
process is a world of one).  Everything a resumed run needs is in the checkpoint: model, optimizer,
scaler, the step, the sampler's position and the RNG states; the learning rate is a pure function
of the step and data augmentation draws from per-sample seeds, so a run killed and resumed from a
checkpoint reproduces the uninterrupted run's losses exactly on CPU.
"""
from __future__ import annotations

import logging
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import registry
from avplug.config import write_config
from avplug.engine import distributed as du
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.log import setup_logging
from avplug.engine.metrics import MetricsWriter, plot_loss_curve
from avplug.engine.schedule import warmup_cosine_lr

_log = logging.getLogger("avplug.train")


def autocast_dtype(cfg, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype SOLVER.AMP asks for on ``device`` (None: full precision)."""
    amp = cfg.SOLVER.AMP
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZER over ``params``; SOLVER.FUSED_OPTIMIZER picks torch's single-kernel implementation."""
    s = cfg.SOLVER
    fused = {"fused": True} if s.FUSED_OPTIMIZER else {}
    if s.OPTIMIZER == "Adam":
        return torch.optim.Adam(params, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY, **fused)
    if s.OPTIMIZER == "AdamW":
        return torch.optim.AdamW(params, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY, **fused)
    return torch.optim.SGD(params, lr=s.BASE_LR, momentum=0.9, weight_decay=s.WEIGHT_DECAY, **fused)


def prepare_model(cfg, model: nn.Module, device: torch.device) -> None:
    """Apply the step's speed settings that act on the model before the optimizer and DDP see it.

    SOLVER.CHANNELS_LAST converts ``model`` (an :class:`avplug.models.AudioVisualModel`) in place to
    channels-last memory format; SOLVER.CUDNN_BENCHMARK sets ``torch.backends.cudnn.benchmark`` for
    this process when ``device`` is a GPU.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg.SOLVER.CUDNN_BENCHMARK)
    if cfg.SOLVER.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last_3d)


def compile_model(cfg, model: nn.Module, **compile_kwargs: Any) -> nn.Module:
    """``torch.compile(model, **compile_kwargs)`` when SOLVER.COMPILE is set (wrap DDP first), else ``model``."""
    return torch.compile(model, **compile_kwargs) if cfg.SOLVER.COMPILE else model


def _rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.frombuffer(np.random.get_state()[1].tobytes(), dtype=np.uint8).copy()),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = np.frombuffer(state["numpy"].numpy().tobytes(), dtype=np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _global_mean(value: torch.Tensor) -> float:
    value = value.detach().float().clone()
    if du.get_world_size() > 1:
        dist.all_reduce(value)
        value /= du.get_world_size()
    return float(value)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper
    return model.module if isinstance(model, DistributedDataParallel) else model


class _Schedule:
    """Step bookkeeping derived from the sampler's epoch length and the solver cfg."""

    def __init__(self, cfg, steps_per_epoch: int) -> None:
        s = cfg.SOLVER
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = steps_per_epoch * s.MAX_EPOCHS
        self.stop_step = min(self.total_steps, s.MAX_STEPS) if s.MAX_STEPS > 0 else self.total_steps
        self.warmup_steps = int(round(s.WARMUP_EPOCHS * steps_per_epoch))
        self._lr = dict(total_steps=self.total_steps, warmup_steps=self.warmup_steps, start_lr=s.WARMUP_START_LR, base_lr=s.BASE_LR)

    def lr(self, step: int) -> float:
        return warmup_cosine_lr(step, **self._lr)


def run_pretraining(cfg, *, resume: bool = True) -> dict[str, Any]:
    """Pretrain (or resume from ``cfg.OUTPUT_DIR``) in this process; see the module docstring.

    Returns ``{"final_loss", "steps", "epochs", "output_dir", "last_checkpoint", "clips_per_s",
    "world_size"}`` on every rank.
    """
    from avplug.data.catalog import load_titles
    from avplug.data.dataset import PretrainDataset, build_pretrain_loader
    from avplug.data.store import SnippetStore
    from avplug.data.transforms import build_batch_transform
    from avplug.models import build_model
    from avplug.plugins import setup_plugins
    from avplug.samplers import build_sampler

    setup_plugins(cfg.PLUGINS)  # a spawned or requeued process starts with empty registries
    info = du.init_distributed(cfg.LAUNCH.BACKEND)
    rank, world, device = info.rank, info.world_size, info.device
    out = Path(cfg.OUTPUT_DIR)
    setup_logging(out, rank)
    if rank == 0:
        write_config(cfg, out)
    _seed_everything(cfg.SEED)

    store = SnippetStore(cfg.DATA.STORE_DIR)
    titles = load_titles(cfg, "train")
    sampler = build_sampler(cfg, titles, world_size=world, rank=rank)
    sched = _Schedule(cfg, len(sampler))

    model = build_model(cfg).to(device)
    prepare_model(cfg, model, device)
    loss_fn = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module).to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    checkpointer = Checkpointer(out / "checkpoints")

    step = 0
    loaded = checkpointer.load_latest() if resume else None
    if loaded is not None:
        path, state = loaded
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        rng = state["rng"]
        _set_rng_state(rng[rank] if isinstance(rng, list) and rank < len(rng) else rng[0] if isinstance(rng, list) else rng)
        _log.info("resumed from %s at step %d", path, step)
    elif cfg.MODEL.WEIGHTS:
        weights = torch.load(cfg.MODEL.WEIGHTS, map_location="cpu", weights_only=True)
        model.load_state_dict(weights.get("model", weights))
        _log.info("initialized from %s", cfg.MODEL.WEIGHTS)

    train_model: nn.Module = model
    if world > 1:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    train_model = compile_model(cfg, train_model)
    dataset = PretrainDataset(cfg, store, titles)
    batch_transform = build_batch_transform(cfg, device)
    writer = MetricsWriter(out, sched.stop_step) if rank == 0 else None
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext

    _log.info(
        "pretraining: %d train titles, %d steps/epoch, %d steps (stop at %d), world size %d, device %s",
        len(titles), sched.steps_per_epoch, sched.total_steps, sched.stop_step, world, device,
    )
    local_batch = cfg.SOLVER.BATCH_SIZE // world
    last_loss, window_t0, window_steps, clips_per_s = float("nan"), time.perf_counter(), 0, 0.0
    loader = build_pretrain_loader(cfg, dataset, sampler)
    train_model.train()
    while step < sched.stop_step:
        epoch, consumed = divmod(step, sched.steps_per_epoch)
        sampler.set_epoch(epoch)
        if consumed:  # resume inside an epoch: the sampler yields the rest of it exactly
            sampler.load_state_dict({**sampler.state_dict(), "epoch": epoch, "batches_done": consumed})
        for batch in loader:
            batch = batch_transform(batch)
            for group in optimizer.param_groups:
                group["lr"] = sched.lr(step)
            with autocast():
                z_video, z_audio = train_model(batch["video"], batch["audio"])
                loss = loss_fn(z_video, z_audio)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.SOLVER.CLIP_GRAD_NORM > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.CLIP_GRAD_NORM)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            window_steps += 1

            if step % cfg.SOLVER.LOG_PERIOD == 0 or step == sched.stop_step:
                # The only host sync of the step; a NaN persists, so checking here loses nothing.
                last_loss = _global_mean(loss)
                if not math.isfinite(last_loss):
                    raise FloatingPointError(f"loss is {last_loss} at step {step}; lower SOLVER.BASE_LR or set LOSS.NORMALIZE")
                elapsed = time.perf_counter() - window_t0
                clips_per_s = window_steps * local_batch * world / max(elapsed, 1e-9)
                if writer:
                    writer.write({"step": step, "epoch": step / sched.steps_per_epoch, "loss": last_loss,
                                  "lr": sched.lr(step - 1), "clips_per_s": clips_per_s, "world_size": world})
                window_t0, window_steps = time.perf_counter(), 0
            end_of_epoch = step % sched.steps_per_epoch == 0
            if _evaluation_due(cfg, step, end_of_epoch, sched.stop_step):
                _maybe_evaluate(cfg, _unwrap(train_model), device, step, writer)
            if end_of_epoch or step == sched.stop_step or (cfg.SOLVER.CHECKPOINT_PERIOD and step % cfg.SOLVER.CHECKPOINT_PERIOD == 0):
                _save(checkpointer, cfg, model, optimizer, scaler, sampler, step, sched)
            if step >= sched.stop_step or end_of_epoch:
                break

    last_path = checkpointer.latest_path()
    if writer:
        writer.close()
        if (out / "metrics.jsonl").is_file():
            plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
    du.barrier()
    return {
        "final_loss": last_loss,
        "steps": step,
        "epochs": step / sched.steps_per_epoch,
        "output_dir": str(out),
        "last_checkpoint": str(last_path) if last_path else "",
        "clips_per_s": clips_per_s,
        "world_size": world,
    }


def _save(checkpointer, cfg, model, optimizer, scaler, sampler, step, sched) -> None:
    """Gather every rank's RNG state and let rank 0 write one atomic checkpoint."""
    rng = _rng_state()
    if du.get_world_size() > 1:
        gathered: list[Any] = [None] * du.get_world_size()
        dist.all_gather_object(gathered, rng)
        rng = gathered
    else:
        rng = [rng]
    if du.is_main_process():
        epoch, consumed = divmod(step, sched.steps_per_epoch)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "epoch": epoch,
            "sampler": {**sampler.state_dict(), "epoch": epoch, "batches_done": consumed},
            "rng": rng,
            "cfg": cfg.dump(),
        }
        path = checkpointer.save(step, state)
        _log.info("checkpoint %s", path)
    du.barrier()


def _evaluation_due(cfg, step: int, end_of_epoch: bool, stop_step: int) -> bool:
    """EVAL.DISCREPANCY_PERIOD: every that many steps and at the last step (0: at epoch ends; -1: never)."""
    period = cfg.EVAL.DISCREPANCY_PERIOD
    if period < 0:
        return False
    if period == 0:
        return end_of_epoch
    return step % period == 0 or step == stop_step


def _maybe_evaluate(cfg, model: nn.Module, device, step: int, writer) -> None:
    """Discrepancy measures on held-out titles (rank 0), without touching the training RNG."""
    if du.is_main_process():
        from avplug.evaluation.discrepancy import evaluate_discrepancy

        devices = [device.index] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            np_state, py_state = np.random.get_state(), random.getstate()
            model.eval()
            try:
                measures = evaluate_discrepancy(cfg, model, device)
            except (ValueError, LookupError, OSError) as exc:  # no or too few held-out snippets: train on
                _log.warning("discrepancy measures skipped at step %d: %s", step, exc)
                measures = {}
            finally:
                model.train()
                np.random.set_state(np_state)
                random.setstate(py_state)
        if measures and writer:  # evaluate_discrepancy logs its own summary line
            writer.write({"step": step, **{k: float(v) for k, v in measures.items() if isinstance(v, (int, float))}},
                         console=False)
    du.barrier()
