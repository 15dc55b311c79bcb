"""Small catalogs: a batch needing more titles than there are is refused naming the setting that fits;
skipped titles are named and left out of the epoch."""
from __future__ import annotations

import logging

import pytest

from avplug.data.index import TitleRecord
from avplug.errors import UserError
from avplug.samplers.errors import SamplerError


def test_a_batch_needing_more_titles_names_the_batch_size_that_fits(make_cfg, world):
    """The demo's batch (32, k = 16) on 1 title: 2 distinct titles needed; a batch of 16 fits."""
    cfg = make_cfg({"SOLVER.BATCH_SIZE": 32, "SAMPLER.K": 16})
    with pytest.raises(SamplerError) as exc:
        world(cfg, [TitleRecord("only", 40)], 1)
    assert isinstance(exc.value, UserError) and "\n" not in str(exc.value)
    assert str(exc.value) == (
        "HierarchicalSampler: a global batch of SOLVER.BATCH_SIZE = 32 may need 2 distinct titles (groups of up to "
        "SAMPLER.K = 16, each title at most once per batch), but only 1 are eligible: set SOLVER.BATCH_SIZE 16 "
        "(or SAMPLER.K 32)"
    )
    (fixed,) = world(make_cfg({"SOLVER.BATCH_SIZE": 16, "SAMPLER.K": 16}), [TitleRecord("only", 40)], 1)
    assert len(fixed) == 2


def test_short_titles_in_the_refusal_and_every_named_setting_works(make_cfg, world):
    """3 of 4 titles below k: the batch of 16, k 20, or 'cap' each fit (checked by building them)."""
    titles = [TitleRecord("long", 20)] + [TitleRecord(f"short{i}", 10) for i in range(3)]
    with pytest.raises(SamplerError, match=r"only 1 are eligible; 3 of the 4 have M_n < SAMPLER.K = 16 "
                       r"\(SAMPLER.SHORT_TITLES skip\): set SOLVER.BATCH_SIZE 16 \(or SAMPLER.SHORT_TITLES cap\)$"):
        world(make_cfg({"SOLVER.BATCH_SIZE": 32, "SAMPLER.K": 16}), titles, 1)
    for fix in ({"SOLVER.BATCH_SIZE": 16}, {"SAMPLER.SHORT_TITLES": "cap"}):
        world(make_cfg({"SOLVER.BATCH_SIZE": 32, "SAMPLER.K": 16, **fix}), titles, 1)


def test_per_rank_groups_need_a_title_per_rank(make_cfg, world):
    """2 ranks, groups kept on a rank: a batch of 16 with k = 4 needs 4 titles; 3 titles fit a batch of 8."""
    titles = [TitleRecord(f"t{i}", 50) for i in range(3)]
    with pytest.raises(SamplerError, match=r"may need 4 distinct titles.*only 3 are eligible: set SOLVER.BATCH_SIZE 8 "
                       r"\(or SAMPLER.K 8\)$"):
        world(make_cfg({"SOLVER.BATCH_SIZE": 16, "SAMPLER.K": 4}, world_size=2), titles, 2)
    assert len(world(make_cfg({"SOLVER.BATCH_SIZE": 8, "SAMPLER.K": 4}, world_size=2), titles, 2)) == 2


def test_capped_groups_explain_the_demo_batch_needing_seven_titles(make_cfg, world):
    """With 'cap', 8-s titles at the demo's 1.6-s snippets give groups of 5: 32 / 5 -> 7 titles."""
    cfg = make_cfg({"SOLVER.BATCH_SIZE": 32, "SAMPLER.K": 16, "SAMPLER.SHORT_TITLES": "cap"})
    with pytest.raises(SamplerError, match="may need 7 distinct titles.*only 6 are eligible: set SOLVER.BATCH_SIZE 16$"):
        world(cfg, [TitleRecord(f"t{i}", 5) for i in range(6)], 1)
    assert world(cfg, [TitleRecord(f"t{i}", 5) for i in range(7)], 1)[0].max_groups == 7


def test_no_usable_title_and_no_fix_says_add_titles(make_cfg, world):
    with pytest.raises(SamplerError, match=r"no title can give a group \(M_n < SAMPLER.K = 16 for all 2\): add titles$"):
        world(make_cfg({"SOLVER.BATCH_SIZE": 32, "SAMPLER.K": 16}), [TitleRecord("a", 3), TitleRecord("b", 3)], 1)


def test_iid_batch_larger_than_the_catalog_names_the_batch_that_fits(make_cfg, world):
    cfg = make_cfg({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SOLVER.BATCH_SIZE": 32}, world_size=2)
    with pytest.raises(SamplerError, match=r"hold 21 snippets, fewer than one global batch \(SOLVER.BATCH_SIZE = 32\): "
                       r"set SOLVER.BATCH_SIZE 20$"):
        world(cfg, [TitleRecord("a", 11), TitleRecord("b", 10)], 2)


def scene_titles() -> list[TitleRecord]:
    """4 titles whose longest scene holds >= 4 snippets and 2 whose scenes are all shorter."""
    good = [TitleRecord(f"good{i}", 30, scene_starts=(0, 10, 20)) for i in range(4)]
    choppy = [TitleRecord(f"choppy{i}", 40, scene_starts=tuple(range(0, 40, 3))) for i in range(2)]
    return good + choppy


def test_scene_aware_epoch_counts_only_usable_titles_and_names_the_skipped(make_cfg, world, caplog):
    cfg = make_cfg({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 8})
    with caplog.at_level(logging.INFO, logger="avplug.samplers.base"):
        (sampler,) = world(cfg, scene_titles(), 1)
    assert sampler.usable_snippets == 120 and len(sampler) == 120 // 8  # not (120 + 80) // 8
    (skipped,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert skipped.getMessage() == (
        "SceneAwareSampler: 2 of 6 titles are skipped, their longest scene is below SAMPLER.K = 4 (SAMPLER.SHORT_TITLES "
        "skip; 'cap' keeps them with smaller groups); the epoch counts only the others' snippets: choppy0, choppy1"
    )
    seen = {t for i in range(len(sampler)) for t, _ in sampler.global_batch(i)}
    assert seen == {f"good{i}" for i in range(4)}


def test_a_long_skipped_list_is_cut_to_twenty_names(make_cfg, world, caplog):
    titles = [TitleRecord(f"long{i}", 50) for i in range(2)] + [TitleRecord(f"s{i:02d}", 2) for i in range(25)]
    with caplog.at_level(logging.WARNING, logger="avplug.samplers.base"):
        (sampler,) = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 8}), titles, 1)
    assert len(sampler) == 100 // 8
    assert caplog.records[0].getMessage().endswith(", ".join(f"s{i:02d}" for i in range(20)) + " and 5 more")
