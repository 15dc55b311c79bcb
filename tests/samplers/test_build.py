"""build_sampler, the registered names, and the errors users meet (each names the key and the fix)."""
from __future__ import annotations

import logging

import pytest

import registry
from avplug.config import ConfigError
from avplug.data.index import TitleRecord
from avplug.samplers import (
    HierarchicalSampler,
    IIDSampler,
    SceneAwareSampler,
    build_sampler,
    synthetic_titles,
)


def test_builtins_are_registered_under_their_class_names():
    for cls in (IIDSampler, HierarchicalSampler, SceneAwareSampler):
        assert registry.SAMPLERS.get(cls.__name__) is cls


def test_build_sampler_uses_cfg_name_and_seed(make_cfg):
    titles = synthetic_titles(40, seed=0)
    cfg = make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 32, "SEED": 9})
    sampler = build_sampler(cfg, titles, world_size=2, rank=1)
    assert isinstance(sampler, HierarchicalSampler)
    assert (sampler.seed, sampler.world_size, sampler.rank, sampler.local_batch_size) == (9, 2, 1, 16)
    assert len(sampler) == sum(t.num_snippets for t in titles) // 32
    assert build_sampler(cfg, titles, seed=3).seed == 3


def test_unknown_name_lists_the_registered_ones(make_cfg):
    cfg = make_cfg({"SAMPLER.NAME": "NoSuchSampler"})
    with pytest.raises(KeyError, match="HierarchicalSampler.*IIDSampler"):
        build_sampler(cfg, synthetic_titles(5))


def test_a_plugin_breaking_the_contract_is_named(make_cfg):
    @registry.SAMPLERS.register()
    class HalfASampler:  # no state_dict / load_state_dict
        def __init__(self, cfg, titles, *, world_size, rank, seed):
            pass

        def set_epoch(self, epoch):
            pass

        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

    try:
        with pytest.raises(TypeError, match="HalfASampler.*state_dict, load_state_dict"):
            build_sampler(make_cfg({"SAMPLER.NAME": "HalfASampler"}), synthetic_titles(5))
    finally:
        registry.SAMPLERS._obj_map.pop("HalfASampler")


@pytest.mark.parametrize(
    "opts, key",
    [
        ({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 4}, "SAMPLER.K"),
        ({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SAMPLER.GENRE_BALANCED": True}, "SAMPLER.GENRE_BALANCED"),
        ({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.SCENE_MODE": "k_scenes", "SAMPLER.WINDOW": 32}, "SAMPLER.WINDOW"),
    ],
)
def test_contradictory_policy_settings_fail_validation(make_cfg, opts, key):
    with pytest.raises(ConfigError, match=key):
        make_cfg(opts)


def test_short_titles_skip_warns_and_cap_keeps_them(make_cfg, world, caplog):
    titles = [TitleRecord(f"long{i}", 40) for i in range(6)] + [TitleRecord(f"short{i}", 2) for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="avplug.samplers.base"):
        skip = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16}), titles, 1)[0]
    assert "6 of 12 titles are skipped" in caplog.text
    assert sorted(skip.title_ids[skip.skipped_units]) == [f"short{i}" for i in range(6)]
    seen = {t for i in range(len(skip)) for t, _ in skip.global_batch(i)}
    assert not any(t.startswith("short") for t in seen)

    cap = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16, "SAMPLER.SHORT_TITLES": "cap"}), titles, 1)[0]
    groups = {}
    for epoch in range(20):
        for t, m in cap.global_batch(0, epoch=epoch):
            groups.setdefault((epoch, t), []).append(m)
    short = [sorted(g) for (_, t), g in groups.items() if t.startswith("short")]
    assert short and all(g == [0, 1] or len(g) < 2 for g in short)  # a capped group is the whole title
    assert all(len(g) <= 4 for g in groups.values())


def test_catalog_too_small_for_the_batch_is_refused_up_front(make_cfg, world):
    titles = [TitleRecord(f"t{i}", 100) for i in range(3)]
    with pytest.raises(ValueError, match="may need 4 distinct titles.*only 3 are eligible"):
        world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16}), titles, 1)
    with pytest.raises(ValueError, match="no title can give a group"):
        world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16}), [TitleRecord("a", 3)], 1)
    with pytest.raises(ValueError, match="no title can give a group.*number of scenes"):
        cfg = make_cfg({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.SCENE_MODE": "k_scenes", "SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16})
        world(cfg, [TitleRecord(f"t{i}", 100) for i in range(8)], 1)  # one scene each: no scene detection


def test_hierarchical_k1_is_not_the_iid_baseline(make_cfg, world):
    """K 1 with HierarchicalSampler draws titles uniformly; IIDSampler draws snippets uniformly."""
    titles = [TitleRecord("long", 900)] + [TitleRecord(f"s{i}", 10) for i in range(10)]
    hier = world(make_cfg({"SAMPLER.K": 1, "SOLVER.BATCH_SIZE": 4}), titles, 1)[0]
    iid = world(make_cfg({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SOLVER.BATCH_SIZE": 4}), titles, 1)[0]
    share = {}
    for name, sampler in (("hier", hier), ("iid", iid)):
        items = [t for i in range(100) for t, _ in sampler.global_batch(i)]
        share[name] = items.count("long") / len(items)
    assert share["hier"] < 0.2 and share["iid"] > 0.8  # 1/11 of titles vs 9/10 of snippets


def test_scene_boundaries_follow_the_record(make_cfg, world):
    titles = [TitleRecord(f"t{i}", 30, scene_starts=(0, 10, 20)) for i in range(8)]
    one = world(make_cfg({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 16}), titles, 1)[0]
    for i in range(len(one)):
        batch = one.global_batch(i)
        for g in range(0, 16, 4):
            assert len({m // 10 for _, m in batch[g : g + 4]}) == 1
    cfg = make_cfg({"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 3, "SAMPLER.SCENE_MODE": "k_scenes", "SOLVER.BATCH_SIZE": 12})
    spread = world(cfg, titles, 1)[0]
    for i in range(len(spread)):
        batch = spread.global_batch(i)
        for g in range(0, 12, 3):
            assert sorted(m // 10 for _, m in batch[g : g + 3]) == [0, 1, 2]
