"""The training loop and its state (detectron2 ``TrainerBase`` / ``SimpleTrainer`` style).

:class:`TrainerBase` runs ``before_train``, then ``before_step`` / ``run_step`` / ``after_step`` until
``schedule.stop_step``, then ``after_train``, over its hooks (:mod:`avplug.engine.hooks`).
:class:`PretrainTrainer` is one rank of Eq. 1 pretraining: its ``run_step`` takes the next local
batch, runs both encoders and the loss over the global batch, and steps the optimizer.

Resume is exact and elastic.  A checkpoint holds named checkpointables (model, optimizer, scaler,
schedule, sampler) plus the step and every rank's RNG state.  The sampler's entry is its position
in global batches (epoch, batches done), which does not depend on the world size, and restoring
it runs the sampler's own checks (policy, seed, batch size, catalog fingerprint).  Global batches
are pure functions of (seed, epoch, index), so a run resumed on another number of ranks continues
the same sequence of global batches.

Resume adopts only the run's own checkpoint: the newest checkpoint that verifies (its sha256,
:mod:`avplug.engine.checkpoint`) is restored only when the cfg stored in it matches this run's, or
when the user said ``--resume`` (:mod:`avplug.engine.run_dir`); checkpoints of which none loads stop
the run instead of being silently started over.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from avplug.checksums import load_torch_file
from avplug.engine import distributed as du
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.hooks import HookBase
from avplug.engine.rng import capture_rng_state, restore_rng_state
from avplug.engine.run_dir import CHECKPOINT_DIR, ConfigChangedError, check_config_unchanged, resume_mode
from avplug.engine.schedule import TrainingSchedule
from avplug.errors import UserError

_log = logging.getLogger("avplug.train")


class TrainerBase:
    """A step loop over hooks; subclasses implement :meth:`run_step` and set ``schedule``."""

    schedule: TrainingSchedule

    def __init__(self) -> None:
        self.hooks: list[HookBase] = []
        self.step = 0  # steps done

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append ``hooks`` (None entries are skipped), in the order they will run."""
        for hook in hooks:
            if hook is None:
                continue
            if not isinstance(hook, HookBase):
                raise TypeError(f"{type(hook).__name__} is not a HookBase (avplug.engine.hooks)")
            hook.trainer = self  # type: ignore[assignment]
            self.hooks.append(hook)

    def train(self) -> None:
        """Run from ``self.step`` to ``self.schedule.stop_step``."""
        try:
            for hook in self.hooks:
                hook.before_train()
            while self.step < self.schedule.stop_step:
                for hook in self.hooks:
                    hook.before_step()
                self.run_step()
                self.step += 1
                for hook in self.hooks:
                    hook.after_step()
        finally:
            for hook in self.hooks:
                hook.after_train()

    def run_step(self) -> None:
        raise NotImplementedError


class CheckpointUnusableError(UserError, RuntimeError):
    """OUTPUT_DIR holds checkpoints but none of them loads."""


class _SamplerPosition:
    """The sampler as a checkpointable: its state at the trainer's step, not at the loader's prefetch."""

    def __init__(self, trainer: PretrainTrainer) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        epoch, done = divmod(self.trainer.step, self.trainer.schedule.steps_per_epoch)
        return {**self.trainer.sampler.state_dict(), "epoch": epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trainer.sampler.load_state_dict(state)


class PretrainTrainer(TrainerBase):
    """One rank of pretraining with everything :func:`avplug.engine.train.run_pretraining` built.

    ``model`` is the module the step runs (DDP / compiled wrapper or not), ``module`` the plain
    model whose weights are saved and evaluated.  ``loader`` iterates the local batches of the
    sampler's current epoch; ``batch_transform`` moves a batch to the device.
    """

    def __init__(self, *, cfg, model: nn.Module, module: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, sampler, loader: Iterable, batch_transform: Callable[[dict], dict],
                 schedule: TrainingSchedule, device: torch.device, amp_dtype: torch.dtype | None, writer=None) -> None:
        super().__init__()
        self.cfg, self.model, self.module, self.loss_fn = cfg, model, module, loss_fn
        self.optimizer, self.scaler, self.sampler, self.loader = optimizer, scaler, sampler, loader
        self.batch_transform, self.schedule, self.device, self.amp_dtype = batch_transform, schedule, device, amp_dtype
        self.writer = writer
        self.output_dir = Path(cfg.OUTPUT_DIR)
        self.world_size, self.rank = du.get_world_size(), du.get_rank()
        self.global_batch_size = int(cfg.SOLVER.BATCH_SIZE)
        self.clip_grad_norm = float(cfg.SOLVER.CLIP_GRAD_NORM)
        self.loss = torch.zeros((), device=device)  # the last step's local loss, on the device
        self.last_loss, self.clips_per_s = float("nan"), 0.0  # set by MetricsLogger
        self.batch_ids: list[tuple[str, int]] = []  # the last step's local batch, (title_id, snippet_index)
        self.step_bad_snippets: list[tuple[str, int, str]] = []  # the last step's substituted snippets (avplug.data.dataset)
        self.bad_snippets = 0  # distinct bad snippets met so far, all ranks (set by BadSnippetGuard)
        self.checkpointer = Checkpointer(self.output_dir / CHECKPOINT_DIR, model=module, optimizer=optimizer, scaler=scaler,
                                         schedule=schedule, sampler=_SamplerPosition(self))
        self._batches: Iterator[dict] | None = None

    # --- the step --------------------------------------------------------------------------

    def run_step(self) -> None:
        if self._batches is None:
            self._batches = self._local_batches()
        batch = next(self._batches)
        self.batch_ids = list(zip(batch["title_id"], batch["snippet_index"]))
        self.step_bad_snippets = batch.get("bad_snippets", [])
        batch = self.batch_transform(batch)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        with autocast:
            z_video, z_audio = self.model(batch["video"], batch["audio"])
            loss = self.loss_fn(z_video, z_audio)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.loss = loss.detach()

    def _local_batches(self) -> Iterator[dict]:
        """The loader's batches from ``self.step`` on, epoch after epoch (a restored position first)."""
        steps_per_epoch = self.schedule.steps_per_epoch
        while True:
            epoch = self.step // steps_per_epoch
            self.sampler.set_epoch(epoch)  # keeps a just-restored position inside this epoch
            for batch in self.loader:
                yield batch  # resumed once the step ran and self.step counts it
                if self.step % steps_per_epoch == 0:
                    break

    # --- helpers for hooks -----------------------------------------------------------------

    def global_mean(self, value: torch.Tensor) -> float:
        """The mean of ``value`` over the ranks (a collective: every rank calls it)."""
        value = value.detach().float().clone()
        if self.world_size > 1:
            dist.all_reduce(value)
            value /= self.world_size
        return float(value)

    def global_sum(self, value: int) -> int:
        """The sum of ``value`` over the ranks (a collective when the world is larger than one)."""
        if self.world_size == 1:
            return int(value)
        total = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.all_reduce(total)
        return int(total)

    def gather_objects(self, items: list[Any]) -> list[Any]:
        """Every rank's picklable ``items`` in one list, rank 0's first (a collective when the world is larger than one)."""
        if self.world_size == 1:
            return list(items)
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, list(items))
        return [item for part in gathered for item in part]

    # --- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(self) -> Path | None:
        """Gather every rank's RNG state; rank 0 writes one atomic checkpoint (a collective)."""
        rng: list[Any] = [capture_rng_state()]
        if self.world_size > 1:
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        path, error = None, None
        if du.is_main_process():
            extra = {"step": self.step, "epoch": self.step // self.schedule.steps_per_epoch, "rng": rng, "cfg": self.cfg.dump()}
            try:
                path = self.checkpointer.save(self.step, extra)
                _log.info("checkpoint %s", path)
            except UserError as exc:  # a full disk: every rank stops, the previous checkpoint intact
                error = exc
        du.raise_on_every_rank(error)
        return path

    def resume_or_load(self, resume: bool | str, weights: str = "") -> None:
        """Restore the newest readable checkpoint unless ``resume`` says never (see
        :func:`avplug.engine.run_dir.resume_mode`; its stored cfg is compared first), else load ``weights`` if given."""
        mode = resume_mode(resume)
        loaded = self.checkpointer.load_latest() if mode != "never" else None
        if loaded is None and mode != "never" and self.checkpointer.candidates():
            raise CheckpointUnusableError(f"no checkpoint in {self.checkpointer.directory} is usable (each is named in the log): "
                                          "restore one, or rerun with --no-resume to start over (they are kept)")
        if loaded is not None:
            path, state = loaded
            check_config_unchanged(state.get("cfg"), self.cfg, f"the checkpoint {path}", mode)
            try:
                self.checkpointer.restore(state, path, optional=("schedule",))  # checkpoints before 0.2 have no schedule
            except (ValueError, RuntimeError, KeyError) as exc:
                if mode != "force":
                    raise
                why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigChangedError(f"--resume cannot continue {path} with this config ({why}): use --no-resume "
                                         "to start over (the old run is kept) or another OUTPUT_DIR") from exc
            self.step = int(state["step"])
            done = state["sampler"]["epoch"] * self.schedule.steps_per_epoch + state["sampler"]["batches_done"]
            if done != self.step:
                raise ValueError(f"{path}: the sampler's position ({done} batches) disagrees with the step {self.step}")
            rng: Sequence[Any] = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
            restore_rng_state(rng[self.rank] if self.rank < len(rng) else rng[0])
            saved_world = state["sampler"].get("world_size", self.world_size)
            _log.info("resumed from %s at step %d (saved at world size %s, now %d)", path, self.step, saved_world, self.world_size)
        elif weights:
            state = load_torch_file(weights)
            self.module.load_state_dict(state.get("model", state))
            _log.info("initialized from %s", weights)
