"""The trainer hook that computes the held-out measures during pretraining (registry.HOOKS ``HeldoutEvaluation``).

Every ``EVAL.DISCREPANCY_PERIOD`` steps and at the last step (0: at every epoch end; -1: never),
rank 0 computes :func:`avplug.evaluation.heldout_embedding.evaluate_discrepancy` on the held-out titles
and writes the flat measures to ``metrics.jsonl`` / TensorBoard (not to the console: the
measures log their own summary line).  The training RNG is untouched, so a run evaluated this way
trains exactly as one that is not; the other ranks wait at a barrier.
"""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

import registry
from avplug.engine import distributed as du
from avplug.engine.hooks import HookBase
from avplug.evaluation.heldout_embedding import evaluate_discrepancy

_log = logging.getLogger("avplug.train")


def evaluation_due(period: int, step: int, steps_per_epoch: int, stop_step: int) -> bool:
    """EVAL.DISCREPANCY_PERIOD: every ``period`` steps and at the last step (0: at epoch ends; -1: never)."""
    if period < 0:
        return False
    if period == 0:
        return step % steps_per_epoch == 0
    return step % period == 0 or step == stop_step


@registry.HOOKS.register()
class HeldoutEvaluation(HookBase):
    """Held-out retrieval and discrepancy measures every ``EVAL.DISCREPANCY_PERIOD`` steps (see the module docstring)."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.period = int(cfg.EVAL.DISCREPANCY_PERIOD)

    def after_step(self) -> None:
        t = self.trainer
        if not evaluation_due(self.period, t.step, t.schedule.steps_per_epoch, t.schedule.stop_step):
            return
        if du.is_main_process():
            measures = self._measure()
            if measures and t.writer:
                t.writer.write({"step": t.step, **{k: float(v) for k, v in measures.items() if isinstance(v, (int, float))}},
                               console=False)
        du.barrier()

    def _measure(self) -> dict:
        t = self.trainer
        devices = [t.device.index] if t.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            np_state, py_state = np.random.get_state(), random.getstate()
            t.module.eval()
            try:
                return evaluate_discrepancy(self.cfg, t.module, t.device)
            except (ValueError, LookupError, OSError) as exc:  # no or too few held-out snippets: train on
                _log.warning("discrepancy measures skipped at step %d: %s", t.step, exc)
                return {}
            finally:
                t.module.train()
                np.random.set_state(np_state)
                random.setstate(py_state)
