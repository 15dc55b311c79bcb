"""Property tests of the sampling policies over random catalogs, k, w, layouts and world sizes."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from avplug.data.index import TitleRecord
from avplug.samplers import synthetic_titles

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def catalogs(draw, min_titles=6, max_titles=30, max_snippets=60):
    """Titles with 0..max_snippets snippets, random scenes, a few genres and shows."""
    n = draw(st.integers(min_titles, max_titles))
    titles = []
    for i in range(n):
        m = draw(st.integers(0, max_snippets))
        cuts = draw(st.lists(st.integers(1, max(1, m - 1)), max_size=6)) if m > 1 else []
        genre = draw(st.sampled_from(["Drama", "Comedy", "Horror", ""]))
        show = draw(st.sampled_from(["", "", "s1", "s2"]))
        titles.append(TitleRecord(f"t{i:02d}", m, genre=genre, show_id=show, scene_starts=tuple(sorted({0, *cuts}))))
    return titles


@st.composite
def setups(draw):
    """(opts, world_size) for a group policy: k, window, layout, short titles, title draw, scenes."""
    k = draw(st.integers(1, 5))
    world = draw(st.sampled_from([1, 2, 3, 4]))
    spread = draw(st.booleans())
    unit = (k * world) // math.gcd(k, world) if spread else k * world
    batch = unit * draw(st.integers(1, 3))
    name = draw(st.sampled_from(["HierarchicalSampler", "SceneAwareSampler"]))
    mode = draw(st.sampled_from(["one_scene", "k_scenes"]))
    window = 0 if mode == "k_scenes" and name == "SceneAwareSampler" else draw(st.sampled_from([0, k, k + 1, k + 4]))
    opts = {
        "SAMPLER.NAME": name,
        "SAMPLER.K": k,
        "SAMPLER.WINDOW": window,
        "SAMPLER.SPREAD_GROUPS": spread,
        "SAMPLER.SHORT_TITLES": draw(st.sampled_from(["skip", "cap"])),
        "SAMPLER.GENRE_BALANCED": draw(st.booleans()),
        "SAMPLER.SCENE_MODE": mode,
        "SOLVER.BATCH_SIZE": batch,
    }
    return opts, world


def _build_world(world_fn, cfg, titles, world_size, seed=0):
    try:
        return world_fn(cfg, titles, world_size, seed)
    except ValueError as exc:  # a catalog too small for the batch is refused up front, by design
        assume(not any(why in str(exc) for why in ("eligible", "can give a group", "hold no snippets")))
        raise


def _scene_of(title: TitleRecord, snippet: int) -> int:
    return next(i for i, (s, e) in enumerate(title.scenes()) if s <= snippet < e)


@SETTINGS
@given(titles=catalogs(), setup=setups(), data=st.data())
def test_group_policies_make_well_formed_disjoint_batches(make_cfg, world, titles, setup, data):
    opts, world_size = setup
    cfg = make_cfg(opts, world_size=world_size)
    samplers = _build_world(world, cfg, titles, world_size)
    by_id = {t.title_id: t for t in titles}
    k, w, batch = opts["SAMPLER.K"], opts["SAMPLER.WINDOW"], opts["SOLVER.BATCH_SIZE"]
    local = batch // world_size
    first = samplers[0]
    scenes = {t.title_id: t.scenes() for t in titles}
    capacity = {  # what each policy can draw from a title: its snippets, longest scene or scenes
        "HierarchicalSampler": lambda t: t.num_snippets,
        "SceneAwareSampler": lambda t: (max(e - s for s, e in scenes[t.title_id]) if opts.get("SAMPLER.SCENE_MODE", "one_scene")
                                        == "one_scene" else len(scenes[t.title_id])) if t.num_snippets else 0,
    }[opts["SAMPLER.NAME"]]
    need = k if opts["SAMPLER.SHORT_TITLES"] == "skip" else 1
    usable = [t for t in titles if capacity(t) >= need]
    assert [first.title_ids[u] for u in first.units] == [t.title_id for t in usable]
    assert len(first) == max(1, sum(t.num_snippets for t in usable) // batch)  # the epoch counts usable titles only
    index = data.draw(st.integers(0, len(first) - 1), label="batch")
    ranks = [s.local_batch(index) for s in samplers]
    assert all(len(r) == local for r in ranks)
    glob = [item for r in ranks for item in r]
    assert glob == first.global_batch(index)  # each rank's slice of the one global batch
    assert len(set(glob)) == batch  # ranks disjoint, no snippet twice
    groups, where = defaultdict(list), defaultdict(set)
    for pos, (tid, m) in enumerate(glob):
        assert 0 <= m < by_id[tid].num_snippets
        groups[tid].append(m)
        where[tid].add(pos // local)
    skip = opts["SAMPLER.SHORT_TITLES"] == "skip"
    scene_mode = opts["SAMPLER.NAME"] == "SceneAwareSampler" and opts["SAMPLER.SCENE_MODE"]
    for tid, snippets in groups.items():
        size = len(snippets)
        assert 1 <= size <= k and (size == k or not skip)
        span = max(snippets) - min(snippets) + 1
        if w and scene_mode != "k_scenes":
            assert span <= w
            if w == k and size == k:
                assert span == k  # adjacent
        if scene_mode == "one_scene":
            assert len({_scene_of(by_id[tid], m) for m in snippets}) == 1
        if scene_mode == "k_scenes":
            assert len({_scene_of(by_id[tid], m) for m in snippets}) == size
        if not opts["SAMPLER.SPREAD_GROUPS"]:
            assert len(where[tid]) == 1  # a title's group stays on one rank
        elif size == k:
            assert len(where[tid]) == min(k, world_size)


@SETTINGS
@given(titles=catalogs(min_titles=1, max_snippets=40), world_size=st.sampled_from([1, 2, 4]), per_rank=st.integers(1, 6), data=st.data())
def test_iid_baseline_covers_each_snippet_at_most_once_per_epoch(make_cfg, world, titles, world_size, per_rank, data):
    batch = world_size * per_rank
    assume(sum(t.num_snippets for t in titles) >= batch)
    cfg = make_cfg({"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1, "SOLVER.BATCH_SIZE": batch}, world_size=world_size)
    samplers = world(cfg, titles, world_size)
    epoch = data.draw(st.integers(0, 5), label="epoch")
    for s in samplers:
        s.set_epoch(epoch)
    steps = list(zip(*samplers))
    assert len(steps) == sum(t.num_snippets for t in titles) // batch
    by_id = {t.title_id: t.num_snippets for t in titles}
    seen = [item for step in steps for local in step for item in local]
    assert all(len(local) == per_rank for step in steps for local in step)
    assert len(seen) == len(set(seen))
    assert all(0 <= m < by_id[t] for t, m in seen)


def _policy_opts(name):
    base = {"SAMPLER.NAME": name, "SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 32}
    if name == "IIDSampler":
        base["SAMPLER.K"] = 1
    if name == "SceneAwareSampler":
        base["SAMPLER.SCENE_MODE"] = "k_scenes"
    return base


@SETTINGS
@given(
    name=st.sampled_from(["IIDSampler", "HierarchicalSampler", "SceneAwareSampler"]),
    world_size=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 3),
    data=st.data(),
)
def test_resume_from_any_batch_reproduces_the_rest_of_the_epoch(make_cfg, world, name, world_size, seed, epoch, data):
    titles = [replace(t, num_snippets=8 + t.num_snippets % 50) for t in synthetic_titles(40, seed=3)]
    cfg = make_cfg(_policy_opts(name), world_size=world_size)
    rank = data.draw(st.integers(0, world_size - 1), label="rank")
    reference = world(cfg, titles, world_size, seed)[rank]
    reference.set_epoch(epoch)
    full = list(reference)
    assert len(full) == len(reference) and reference.batches_done == len(full)

    cut = data.draw(st.integers(0, len(full)), label="cut")
    interrupted = world(cfg, titles, world_size, seed)[rank]
    interrupted.set_epoch(epoch)
    it = iter(interrupted)
    head = [next(it) for _ in range(cut)]
    state = interrupted.state_dict()
    assert head == full[:cut] and state["epoch"] == epoch and state["batches_done"] == cut

    resumed = world(cfg, titles, world_size, seed)[rank]
    resumed.load_state_dict(state)  # the trainer's order (PretrainTrainer.resume_or_load, then its batch loop):
    resumed.set_epoch(epoch)  # a same-epoch set_epoch keeps the just-restored position
    assert list(resumed) == full[cut:]
    other_order = world(cfg, titles, world_size, seed)[rank]
    other_order.set_epoch(epoch)
    other_order.load_state_dict(state)  # a position restored after set_epoch holds too
    assert list(other_order) == full[cut:]


@pytest.mark.parametrize("name", ["IIDSampler", "HierarchicalSampler", "SceneAwareSampler"])
def test_same_seed_same_batches_other_seed_or_epoch_other_batches(make_cfg, world, name):
    titles = synthetic_titles(60, seed=1)
    cfg = make_cfg(_policy_opts(name))
    a, b, c = (world(cfg, titles, 1, seed)[0] for seed in (5, 5, 6))
    first = [a.global_batch(i) for i in range(3)]
    assert first == [b.global_batch(i) for i in range(3)]
    assert first != [c.global_batch(i) for i in range(3)]
    assert first != [a.global_batch(i, epoch=1) for i in range(3)]


def test_set_epoch_restarts_and_exhausted_epoch_yields_nothing(make_cfg, world):
    titles = [replace(t, num_snippets=4 + t.num_snippets % 40) for t in synthetic_titles(30, seed=2)]
    sampler = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 32}), titles, 1)[0]
    sampler.set_epoch(2)
    full = list(sampler)
    assert list(sampler) == []  # the position is kept: call set_epoch for the next pass
    sampler.set_epoch(2)
    assert list(sampler) == full


def test_load_state_dict_refuses_another_setup(make_cfg, world):
    titles = synthetic_titles(60, seed=2)
    sampler = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 64}), titles, 1)[0]
    state = sampler.state_dict()
    other_batch = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 128}), titles, 1)[0]
    with pytest.raises(ValueError, match="SOLVER.BATCH_SIZE"):
        other_batch.load_state_dict(state)
    other_catalog = world(make_cfg({"SAMPLER.K": 4, "SOLVER.BATCH_SIZE": 64}), titles[:-1] + [titles[-1].__class__("x", 500)], 1)[0]
    with pytest.raises(ValueError, match="catalog"):
        other_catalog.load_state_dict(state)
    with pytest.raises(ValueError, match="batches_done"):
        sampler.load_state_dict({**state, "batches_done": len(sampler) + 1})
