import math

import pytest

from avplug.engine.schedule import warmup_cosine_lr


def test_paper_schedule_warms_linearly_then_cosine():
    kw = dict(total_steps=1000, warmup_steps=100, start_lr=1e-4, base_lr=0.002)
    assert warmup_cosine_lr(0, **kw) == pytest.approx(1e-4)
    assert warmup_cosine_lr(50, **kw) == pytest.approx(1e-4 + 0.5 * (0.002 - 1e-4))
    assert warmup_cosine_lr(100, **kw) == pytest.approx(0.002)
    assert warmup_cosine_lr(550, **kw) == pytest.approx(0.001)
    assert warmup_cosine_lr(1000, **kw) == pytest.approx(0.0, abs=1e-12)
    lrs = [warmup_cosine_lr(s, **kw) for s in range(100, 1001)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_no_warmup():
    assert warmup_cosine_lr(0, total_steps=10, warmup_steps=0, start_lr=0.0, base_lr=1.0) == 1.0
    assert math.isclose(warmup_cosine_lr(5, total_steps=10, warmup_steps=0, start_lr=0.0, base_lr=1.0), 0.5)
