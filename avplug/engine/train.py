"""Pretraining of one rank from a cfg: builders for its parts, the default hooks, :func:`run_pretraining`.

One call of :func:`run_pretraining` is one rank of a world that the launcher has set up (a single
process is a world of one).  Rank 0 first claims ``OUTPUT_DIR`` (:mod:`avplug.engine.run_dir`: its
lock for the run's life; on a fresh start the previous run's files set aside).  It then builds a
:class:`avplug.engine.trainer.PretrainTrainer`, resumes it from the newest checkpoint of
``OUTPUT_DIR`` when that checkpoint's cfg matches (exact and elastic, see that module), writes
``config.yaml`` (only now: a refused resume leaves the old run's files as they were), and runs it
with :func:`default_hooks`.  The learning rate is a pure function of the step and data augmentation draws
from per-sample seeds, so a run killed and resumed from a checkpoint reproduces the uninterrupted
run's losses exactly on CPU.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import registry
from avplug.builtin_plugins import setup_plugins
from avplug.config import write_config
from avplug.data.dataset import PretrainDataset, build_pretrain_loader
from avplug.data.splits import load_titles
from avplug.data.store import SnippetStore
from avplug.data.transforms import build_batch_transform
from avplug.engine import distributed as du
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.hooks import BadSnippetGuard, HookBase, LossCurvePlot, LRSchedule, MetricsLogger, PeriodicCheckpointer
from avplug.engine.log import setup_logging
from avplug.engine.metrics import MetricsWriter
from avplug.engine.rng import seed_everything
from avplug.engine.run_dir import CHECKPOINT_DIR, OutputDirLock, resume_mode, set_aside_previous_run
from avplug.engine.schedule import TrainingSchedule
from avplug.engine.trainer import PretrainTrainer
from avplug.errors import UserError
from avplug.models import build_model
from avplug.samplers import build_sampler

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


def build_hooks(cfg) -> list[HookBase]:
    """The hooks named in ``cfg.HOOKS``, built from :data:`registry.HOOKS` (None results dropped)."""
    hooks = []
    for name in cfg.HOOKS:
        factory = registry.HOOKS.get(name)
        hook = factory(cfg)
        if hook is not None and not isinstance(hook, HookBase):
            raise TypeError(f"HOOKS entry {name!r} ({factory.__module__}) returned {type(hook).__name__}, expected a HookBase")
        if hook is not None:
            hooks.append(hook)
    return hooks


def default_hooks(cfg) -> list[HookBase]:
    """The trainer's hooks in order: lr, bad snippets, logging, the cfg's ``HOOKS``, checkpoints, the loss-curve PNG."""
    extra = build_hooks(cfg)
    return [LRSchedule(), BadSnippetGuard(cfg.DATA.BAD_SNIPPETS, cfg.DATA.MAX_BAD_FRACTION, cfg.SOLVER.LOG_PERIOD), MetricsLogger(cfg.SOLVER.LOG_PERIOD), *extra,
            PeriodicCheckpointer(cfg.SOLVER.CHECKPOINT_PERIOD), LossCurvePlot()]


def build_trainer(cfg, *, world_size: int, rank: int, device: torch.device) -> PretrainTrainer:
    """Every part of one rank's pretraining from ``cfg``: store, sampler, model, loss, optimizer, loader."""
    store = SnippetStore(cfg.DATA.STORE_DIR)
    titles = load_titles(cfg, "train")
    sampler = build_sampler(cfg, titles, world_size=world_size, rank=rank)
    model = build_model(cfg).to(device)
    prepare_model(cfg, model, device)
    loss_fn = registry.build(registry.LOSSES, cfg.LOSS, expected_type=nn.Module).to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    train_model: nn.Module = model
    if world_size > 1:
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    schedule = TrainingSchedule(cfg.SOLVER, len(sampler))
    loader = build_pretrain_loader(cfg, PretrainDataset(cfg, store, titles), sampler)
    writer = MetricsWriter(cfg.OUTPUT_DIR, schedule.stop_step) if rank == 0 else None
    _log.info(
        "pretraining: %d train titles, %d steps/epoch, %d steps (stop at %d), world size %d, device %s",
        len(titles), schedule.steps_per_epoch, schedule.total_steps, schedule.stop_step, world_size, device,
    )
    return PretrainTrainer(cfg=cfg, model=compile_model(cfg, train_model), module=model, loss_fn=loss_fn, optimizer=optimizer,
                           scaler=scaler, sampler=sampler, loader=loader, batch_transform=build_batch_transform(cfg, device),
                           schedule=schedule, device=device, amp_dtype=amp_dtype, writer=writer)


def claim_output_dir(cfg, rank: int, mode: str) -> OutputDirLock | None:
    """Rank 0 locks OUTPUT_DIR, removes temp files a killed run left and, when ``mode`` is "never",
    sets the previous run aside; its lock (None on other ranks).  Rank 0's refusal is raised on every rank."""
    lock, error = None, None
    if rank == 0:
        try:
            lock = OutputDirLock(cfg.OUTPUT_DIR).acquire()
            Checkpointer(Path(cfg.OUTPUT_DIR) / CHECKPOINT_DIR).remove_stale_temp_files()
            if mode == "never":
                set_aside_previous_run(cfg.OUTPUT_DIR)
        except UserError as exc:
            error = exc
    du.raise_on_every_rank(error)
    return lock


def run_pretraining(cfg, *, resume: bool | str = True) -> dict[str, Any]:
    """Pretrain (or resume from ``cfg.OUTPUT_DIR``) in this process; see the module docstring.

    ``resume``: True / "auto", "force" or False / "never" (:func:`avplug.engine.run_dir.resume_mode`).
    Returns ``{"final_loss", "steps", "epochs", "output_dir", "last_checkpoint", "clips_per_s",
    "world_size"}`` on every rank.
    """
    mode = resume_mode(resume)
    setup_plugins(cfg.PLUGINS)  # a spawned or requeued process starts with empty registries
    info = du.init_distributed(cfg.LAUNCH.BACKEND)
    setup_logging(cfg.OUTPUT_DIR, info.rank)
    lock = claim_output_dir(cfg, info.rank, mode)
    try:
        trainer = _train(cfg, info, mode)
    finally:
        if lock is not None:
            lock.release()
    last_path = trainer.checkpointer.latest_path()
    return {
        "final_loss": trainer.last_loss,
        "steps": trainer.step,
        "epochs": trainer.step / trainer.schedule.steps_per_epoch,
        "output_dir": str(cfg.OUTPUT_DIR),
        "last_checkpoint": str(last_path) if last_path else "",
        "clips_per_s": trainer.clips_per_s,
        "world_size": info.world_size,
    }


def _train(cfg, info: du.DistInfo, mode: str) -> PretrainTrainer:
    """Build, resume (or initialize), record ``config.yaml`` and train; the trainer when every rank is done."""
    seed_everything(cfg.SEED)
    trainer = build_trainer(cfg, world_size=info.world_size, rank=info.rank, device=info.device)
    trainer.resume_or_load(mode, cfg.MODEL.WEIGHTS)
    if info.rank == 0:
        write_config(cfg, cfg.OUTPUT_DIR)
    trainer.register_hooks(default_hooks(cfg))
    try:
        trainer.train()
    finally:
        if trainer.writer:
            trainer.writer.close()
    du.barrier()
    return trainer
