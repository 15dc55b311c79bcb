"""Trainer hooks (detectron2 ``engine/hooks.py`` style): each job around the step is a small object.

A hook subclasses :class:`HookBase` and overrides any of ``before_train``, ``before_step``,
``after_step`` and ``after_train``; the trainer calls them in list order and sets ``hook.trainer``
before training starts.  Inside ``after_step``, ``trainer.step`` is the number of steps done (the
step just run is ``trainer.step - 1``), so ``trainer.step % period == 0`` means "every ``period``
steps".  ``after_train`` runs also when training raised.

Hooks a plugin adds are registered in :data:`registry.HOOKS` and named in the cfg's ``HOOKS`` list
(the built-in held-out evaluation is one: :mod:`avplug.evaluation.heldout_hook`).  The built-ins here
are the trainer's own: the learning rate (:class:`LRSchedule`), the bad-snippet policy
(:class:`BadSnippetGuard`), loss logging and the NaN check (:class:`MetricsLogger`), checkpoints
(:class:`PeriodicCheckpointer`) and the loss-curve PNG (:class:`LossCurvePlot`).
"""
from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from avplug.data.dataset import BadSnippetError
from avplug.engine.metrics import plot_loss_curve
from avplug.errors import UserError

if TYPE_CHECKING:
    from avplug.engine.trainer import PretrainTrainer

_log = logging.getLogger("avplug.train")


class HookBase:
    """A no-op at every point of the loop; subclasses override what they need."""

    trainer: PretrainTrainer

    def before_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_train(self) -> None:
        pass


class LRSchedule(HookBase):
    """Sets every parameter group's learning rate to ``trainer.schedule.lr(step)`` before the step."""

    def before_step(self) -> None:
        lr = self.trainer.schedule.lr(self.trainer.step)
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = lr


class TrainingDivergedError(UserError, FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the last batch's titles."""


class BadSnippetGuard(HookBase):
    """``DATA.BAD_SNIPPETS`` for the snippets the dataset replaced by substitutes (:mod:`avplug.data.dataset`).

    Each distinct bad snippet is logged once (a warning naming its title, snippet and file) and
    counted in ``trainer.bad_snippets`` (all ranks, written to ``metrics.jsonl``).  ``"stop"`` ends
    the run at the first one; ``"skip"`` ends it once more than ``max_fraction`` of the train
    snippets were bad.  Either ending is a :class:`avplug.data.dataset.BadSnippetError` naming the
    files, raised on every rank at the same step: in a world of one after the step that met it, in
    a larger world at the next of every ``period`` steps, when the count is summed over the ranks
    (like the loss, so that the step keeps its single host sync).
    """

    def __init__(self, policy: str, max_fraction: float, period: int) -> None:
        self.policy, self.max_fraction, self.period = policy, float(max_fraction), max(1, int(period))

    def before_train(self) -> None:
        self._seen: dict[tuple[str, int], str] = {}  # (title_id, snippet_index) -> why
        train_snippets = len(getattr(self.trainer.loader, "dataset", ()))
        self.cap = 0 if self.policy == "stop" else int(self.max_fraction * train_snippets)
        self._train_snippets = train_snippets

    def after_step(self) -> None:
        t = self.trainer
        for title_id, index, why in t.step_bad_snippets:
            if (title_id, index) not in self._seen:
                self._seen[(title_id, index)] = why
                _log.warning("bad snippet skipped (a substitute took its place): title %r snippet %d: %s", title_id, index, why)
        if t.world_size > 1 and t.step % self.period and t.step != t.schedule.stop_step:
            return
        t.bad_snippets = t.global_sum(len(self._seen))
        if t.bad_snippets > self.cap:
            raise BadSnippetError(self._message(t.gather_objects([(*key, why) for key, why in self._seen.items()]), t.bad_snippets))

    def _message(self, bad: list[tuple[str, int, str]], total: int) -> str:
        by_why: dict[str, dict[str, list[int]]] = {}
        for title_id, index, why in bad:
            by_why.setdefault(why, {}).setdefault(title_id, []).append(index)
        parts = [f"{why} ({', '.join(f'title {t!r} snippets {sorted(i)}' for t, i in titles.items())})"
                 for why, titles in list(by_why.items())[:3]]
        shown = "; ".join(parts) + (f"; and {len(by_why) - 3} more files or reasons (see the log)" if len(by_why) > 3 else "")
        if self.policy == "stop":
            return f"bad snippet (DATA.BAD_SNIPPETS stop): {shown}: fix or remove the file, or set DATA.BAD_SNIPPETS skip"
        return (f"{total} bad snippets, more than DATA.MAX_BAD_FRACTION {self.max_fraction:g} of the {self._train_snippets} "
                f"train snippets allows ({self.cap}): {shown}: fix or remove these files, or raise DATA.MAX_BAD_FRACTION")


class MetricsLogger(HookBase):
    """Every ``period`` steps and at the last: ``trainer.last_loss`` (the global mean, checked finite) and ``trainer.clips_per_s``.

    Reading the loss is the step's only host sync; a NaN persists, so checking every ``period``
    steps loses nothing.  Rank 0 writes the record (console, ``metrics.jsonl``, TensorBoard).
    """

    def __init__(self, period: int) -> None:
        self.period = max(1, int(period))

    def before_train(self) -> None:
        self._t0, self._steps = time.perf_counter(), 0

    def after_step(self) -> None:
        t = self.trainer
        self._steps += 1
        if t.step % self.period and t.step != t.schedule.stop_step:
            return
        t.last_loss = t.global_mean(t.loss)
        if not math.isfinite(t.last_loss):
            titles = sorted({title for title, _ in t.batch_ids})
            raise TrainingDivergedError(f"loss is {t.last_loss} at step {t.step} (the last batch held titles {', '.join(titles)}; "
                                        "its inputs were finite): lower SOLVER.BASE_LR or set LOSS.NORMALIZE")
        elapsed = time.perf_counter() - self._t0
        t.clips_per_s = self._steps * t.global_batch_size / max(elapsed, 1e-9)
        if t.writer:
            t.writer.write({"step": t.step, "epoch": t.step / t.schedule.steps_per_epoch, "loss": t.last_loss,
                            "lr": t.schedule.lr(t.step - 1), "clips_per_s": t.clips_per_s, "world_size": t.world_size,
                            "bad_snippets": t.bad_snippets})
        self._t0, self._steps = time.perf_counter(), 0


class PeriodicCheckpointer(HookBase):
    """A checkpoint every ``period`` steps (0: none), at every epoch end and at the last step."""

    def __init__(self, period: int) -> None:
        self.period = int(period)

    def after_step(self) -> None:
        t = self.trainer
        due = t.step % t.schedule.steps_per_epoch == 0 or t.step == t.schedule.stop_step
        if due or (self.period > 0 and t.step % self.period == 0):
            t.save_checkpoint()


class LossCurvePlot(HookBase):
    """``loss_curve.png`` from ``metrics.jsonl`` when training ends (rank 0)."""

    def after_train(self) -> None:
        t = self.trainer
        if t.writer and t.writer.path.is_file():
            try:
                plot_loss_curve(t.writer.path, t.output_dir / "loss_curve.png")
            except OSError as exc:  # a full disk must not hide why training stopped
                _log.warning("loss_curve.png not written: %s", exc)
