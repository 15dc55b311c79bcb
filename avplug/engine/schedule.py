"""Learning-rate schedules expressed per step."""
from __future__ import annotations

import math


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
