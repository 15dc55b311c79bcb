"""Elastic resume at the sampler level: global batches as a function of (seed, epoch, index) only.

A sampler state saved at one world size restores at another when the policy's global batches do
not depend on the world size, and is refused, naming the reason, when they do (capped groups).
"""
import pytest

from avplug.data.index import TitleRecord


def _global(samplers, epoch, index):
    return [item for s in samplers for item in s.local_batch(index, epoch=epoch)]


@pytest.mark.parametrize("opts", [{"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1}, {"SAMPLER.K": 4},
                                  {"SAMPLER.K": 4, "SAMPLER.WINDOW": 4}, {"SAMPLER.K": 2, "SAMPLER.SPREAD_GROUPS": True}])
def test_global_batches_are_the_same_on_1_2_and_4_ranks(make_cfg, world, opts):
    titles = [TitleRecord(f"t{i}", 30 + i) for i in range(12)]
    cfg = make_cfg({"SOLVER.BATCH_SIZE": 16, **opts})
    one = world(cfg, titles, 1)
    for size in (2, 4):
        many = world(cfg, titles, size)
        assert all(s.world_size_invariant() for s in many)
        for epoch, index in [(0, 0), (0, 5), (3, 2)]:
            expected, got = _global(one, epoch, index), _global(many, epoch, index)
            if opts.get("SAMPLER.SPREAD_GROUPS"):  # dealt to the ranks in another order: the same set
                expected, got = sorted(expected), sorted(got)
            assert got == expected


def test_a_position_saved_on_2_ranks_restores_on_1_and_4(make_cfg, world):
    titles = [TitleRecord(f"t{i}", 30) for i in range(12)]
    cfg = make_cfg({"SOLVER.BATCH_SIZE": 16, "SAMPLER.K": 4})
    saved = {**world(cfg, titles, 2)[0].state_dict(), "epoch": 2, "batches_done": 3}
    for size in (1, 4):
        restored = world(cfg, titles, size)
        for s in restored:
            s.set_epoch(2)
            s.load_state_dict(saved)
        first = [next(iter(s)) for s in restored]
        assert [item for part in first for item in part] == _global(restored, 2, 3)


def test_capped_groups_make_the_batches_depend_on_the_world_size_and_resume_is_refused(make_cfg, world):
    titles = [TitleRecord(f"long{i}", 40) for i in range(8)] + [TitleRecord(f"short{i}", 2) for i in range(8)]
    cfg = make_cfg({"SOLVER.BATCH_SIZE": 16, "SAMPLER.K": 4, "SAMPLER.SHORT_TITLES": "cap"})
    saved = world(cfg, titles, 2)[0].state_dict()
    one = world(cfg, titles, 1)[0]
    assert not one.world_size_invariant()
    with pytest.raises(ValueError, match="saved at world size 2 on world size 1.*SAMPLER.SHORT_TITLES cap"):
        one.load_state_dict(saved)
