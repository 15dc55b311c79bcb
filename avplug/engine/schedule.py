"""Learning-rate schedules expressed per step."""
from __future__ import annotations

import logging
import math

_log = logging.getLogger("avplug.train")


def warmup_cosine_lr(step: int, *, total_steps: int, warmup_steps: int, start_lr: float, base_lr: float, final_lr: float = 0.0) -> float:
    """Linear warm-up from ``start_lr`` to ``base_lr`` over ``warmup_steps``, then cosine to ``final_lr``.

    ``step`` counts optimizer steps from 0; the value at ``warmup_steps`` is ``base_lr`` and at
    ``total_steps`` it is ``final_lr``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return start_lr + (base_lr - start_lr) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * progress))


class TrainingSchedule:
    """Step bookkeeping of a run: the epoch length (the sampler's), the stop step and the lr at each step.

    A checkpointable: its state is the schedule's parameters, and restoring a checkpoint whose
    schedule differs (another MAX_EPOCHS, BASE_LR, ...) logs what changed and keeps the new one.
    """

    def __init__(self, solver, steps_per_epoch: int) -> None:
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = self.steps_per_epoch * int(solver.MAX_EPOCHS)
        self.stop_step = min(self.total_steps, int(solver.MAX_STEPS)) if solver.MAX_STEPS > 0 else self.total_steps
        self.warmup_steps = int(round(solver.WARMUP_EPOCHS * self.steps_per_epoch))
        self.start_lr, self.base_lr = float(solver.WARMUP_START_LR), float(solver.BASE_LR)

    def lr(self, step: int) -> float:
        return warmup_cosine_lr(step, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                                start_lr=self.start_lr, base_lr=self.base_lr)

    def state_dict(self) -> dict[str, float | int]:
        keys = ("steps_per_epoch", "total_steps", "warmup_steps", "start_lr", "base_lr")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        changed = [f"{key} {state[key]} -> {value}" for key, value in self.state_dict().items() if key in state and state[key] != value]
        if changed:
            _log.warning("the learning-rate schedule differs from the checkpoint's (%s); continuing with the new one", ", ".join(changed))
