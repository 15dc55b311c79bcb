"""PretrainDataset and its loader against a fake store with the SnippetStore reader API."""
from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import torch

import avplug  # noqa: F401
from avplug.config import load_config
from avplug.data.dataset import (
    EpochTaggedBatches,
    PretrainDataset,
    augmentation_seed,
    build_pretrain_loader,
    collate_snippets,
)
from avplug.data.errors import StoreError
from avplug.data.index import TitleRecord
from avplug.data.transforms import build_batch_transform

# The store and input sizes these tests are written for, pinned so they do not move with the demo recipe.
SIZES = ["DATA.STORE_SHORT_SIDE", "64", "INPUT.VIDEO.SHORT_SIDE", "64", "INPUT.VIDEO.CROP", "56"]


def _code(title_id: str, index: int) -> int:
    """A byte identifying a snippet, written into its frames and audio."""
    return (hashlib.blake2b(title_id.encode(), digest_size=1).digest()[0] + 17 * index) % 256


class FakeStore:
    """The SnippetStore reader API over synthetic content; counts the reads per title."""

    def __init__(self, titles, *, frames=8, fps=5.0, short_side=64, width=85, audio_rate=16000, seconds=1.6):
        self.root = "/fake/store"
        self.titles = list(titles)
        self.snippet_frames, self.fps, self.short_side, self.audio_rate = frames, fps, short_side, audio_rate
        self.samples_per_snippet = round(seconds * audio_rate)
        self.width = width
        self.video_reads: Counter[str] = Counter()
        self.audio_reads: Counter[str] = Counter()
        self.decoders: list = []

    def read_video(self, title_id, snippet_indices, decoder=None):
        self.video_reads[title_id] += 1
        self.decoders.append(decoder)
        out = torch.empty(len(snippet_indices), self.snippet_frames, self.short_side, self.width, 3, dtype=torch.uint8)
        for row, index in enumerate(snippet_indices):
            g = torch.Generator().manual_seed(_code(title_id, index))
            out[row] = torch.randint(0, 256, out.shape[1:], dtype=torch.uint8, generator=g)
            out[row, :, 0, 0, :] = _code(title_id, index)
        return out

    def read_audio(self, title_id, snippet_indices):
        self.audio_reads[title_id] += 1
        out = torch.empty(len(snippet_indices), self.samples_per_snippet)
        for row, index in enumerate(snippet_indices):
            g = torch.Generator().manual_seed(1000 + _code(title_id, index))
            out[row] = 0.1 * torch.randn(self.samples_per_snippet, generator=g)
            out[row, 0] = float(_code(title_id, index))
        return out


class ListSampler:
    """A batch sampler (SAMPLERS contract) replaying fixed batches per epoch, resumable."""

    def __init__(self, batches_per_epoch):
        self.batches_per_epoch = batches_per_epoch
        self.epoch = 0
        self.batches_done = 0

    def set_epoch(self, epoch):
        self.epoch, self.batches_done = epoch, 0

    def __len__(self):
        return len(self.batches_per_epoch(self.epoch))

    def __iter__(self):
        for batch in self.batches_per_epoch(self.epoch)[self.batches_done :]:
            self.batches_done += 1
            yield list(batch)

    def state_dict(self):
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state):
        self.epoch, self.batches_done = state["epoch"], state["batches_done"]


TITLES = [TitleRecord("a", 10), TitleRecord("b", 6), TitleRecord("c", 4)]


@pytest.fixture
def cfg():
    return load_config("demo", [*SIZES, "INPUT.VIDEO.COLOR_JITTER", "0.5", "DATA.NUM_WORKERS", "0"])


@pytest.fixture
def store():
    return FakeStore(TITLES)


def test_len_shapes_and_ids(cfg, store):
    dataset = PretrainDataset(cfg, store)
    assert len(dataset) == 20
    sample = dataset[("b", 5)]
    crop = cfg.INPUT.VIDEO.CROP
    assert sample["video"].shape == (3, 8, crop, crop) and sample["video"].dtype == torch.float32
    assert sample["audio"].shape == (1, 40, 101) and sample["audio"].dtype == torch.float32
    assert sample["title_id"] == "b" and sample["snippet_index"] == 5


def test_getitems_reads_each_title_once_and_keeps_order(cfg, store):
    dataset = PretrainDataset(load_config("demo", [*SIZES, "INPUT.ON_DEVICE", "True"]), store)
    keys = [("a", 7), ("b", 1), ("a", 2), ("c", 3), ("b", 4), ("a", 7), ("a", 0), ("c", 0)]
    samples = dataset.__getitems__(keys)
    assert store.video_reads == {"a": 1, "b": 1, "c": 1}
    assert store.audio_reads == {"a": 1, "b": 1, "c": 1}
    assert [(s["title_id"], s["snippet_index"]) for s in samples] == keys
    for (title_id, index), sample in zip(keys, samples):
        assert sample["video"].shape == (3, 8, 64, 85) and sample["video"].dtype == torch.uint8
        assert int(sample["video"][0, 0, 0, 0]) == _code(title_id, index)  # the right snippet, RGB first
        assert sample["audio"].shape == (1, 25600) and float(sample["audio"][0, 0]) == _code(title_id, index)
        assert set(sample["aug"]) == {"crop_top", "crop_left", "drop_axis", "drop_start", "drop_width"}
    assert store.decoders == [cfg.DATA.DECODER] * 3


def test_bad_keys_and_store_mismatch(cfg, store):
    dataset = PretrainDataset(cfg, store, titles=TITLES[:2])
    with pytest.raises(KeyError, match="'c' is not among its 2 titles"):
        dataset[("c", 0)]
    with pytest.raises(IndexError, match="snippets 0 .. 5, asked for 6"):
        dataset[("b", 6)]
    with pytest.raises(StoreError, match="DATA.AUDIO_RATE = 48000"):
        PretrainDataset(cfg, FakeStore(TITLES, audio_rate=48000))


def test_augmentation_depends_only_on_seed_item_epoch(cfg, store):
    assert augmentation_seed(0, "tt0111161", 3, 2) == 5283425057461352829  # stable across processes and versions
    dataset = PretrainDataset(cfg, store)
    first = dataset.__getitems__([("a", 1, 0), ("b", 2, 0)])
    again = PretrainDataset(cfg, FakeStore(TITLES)).__getitems__([("b", 2, 0), ("a", 1, 0)])  # other batch, other order
    torch.manual_seed(123)  # global RNG state is irrelevant
    assert torch.equal(first[0]["video"], again[1]["video"]) and torch.equal(first[0]["audio"], again[1]["audio"])
    assert torch.equal(first[1]["video"], again[0]["video"])
    next_epoch = dataset.__getitems__([("a", 1, 1)])[0]
    assert not torch.equal(first[0]["video"], next_epoch["video"])
    other_seed = PretrainDataset(load_config("demo", [*SIZES, "INPUT.VIDEO.COLOR_JITTER", "0.5", "SEED", "1"]), store)[("a", 1, 0)]
    assert not torch.equal(first[0]["video"], other_seed["video"])
    dataset.set_epoch(1)
    assert torch.equal(dataset[("a", 1)]["video"], next_epoch["video"])


def _batches(epoch):
    """Two groups of k = 2 per batch, different per epoch."""
    g = torch.Generator().manual_seed(epoch)
    out = []
    for _ in range(3):
        batch = []
        for title in torch.randperm(3, generator=g)[:2].tolist():
            record = TITLES[title]
            start = int(torch.randint(0, record.num_snippets - 1, (), generator=g))
            batch += [(record.title_id, start), (record.title_id, start + 1)]
        out.append(batch)
    return out


def _run_loader(cfg, epoch, workers, *, resume_from=0):
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATA.NUM_WORKERS = workers
    sampler = ListSampler(_batches)
    sampler.set_epoch(epoch)
    if resume_from:
        sampler.load_state_dict({**sampler.state_dict(), "batches_done": resume_from})
    loader = build_pretrain_loader(cfg, PretrainDataset(cfg, FakeStore(TITLES)), sampler)
    return list(loader)


def test_loader_keeps_sampler_order_and_is_reproducible_across_workers_and_resume(cfg):
    plain = _run_loader(cfg, epoch=1, workers=0)
    assert [list(zip(b["title_id"], b["snippet_index"])) for b in plain] == _batches(1)
    assert plain[0]["video"].shape == (4, 3, 8, 56, 56) and plain[0]["audio"].shape == (4, 1, 40, 101)
    workers = _run_loader(cfg, epoch=1, workers=2)
    resumed = _run_loader(cfg, epoch=1, workers=2, resume_from=1)
    assert len(workers) == 3 and len(resumed) == 2
    for a, b in zip(plain, workers):
        assert a["title_id"] == b["title_id"] and torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    for a, b in zip(plain[1:], resumed):
        assert a["snippet_index"] == b["snippet_index"] and torch.equal(a["video"], b["video"])


def test_loader_tags_the_sampler_epoch():
    sampler = ListSampler(_batches)
    sampler.set_epoch(4)
    tagged = EpochTaggedBatches(sampler)
    assert len(tagged) == 3
    assert next(iter(tagged)) == [(t, i, 4) for t, i in _batches(4)[0]]
    tagged.set_epoch(5)
    assert sampler.epoch == 5 and next(iter(tagged))[0][2] == 5


def test_on_device_batches_equal_worker_batches(cfg, store):
    keys = [("a", 3), ("a", 4), ("c", 1), ("c", 2)]
    worker = collate_snippets(PretrainDataset(cfg, store).__getitems__(keys))
    raw_cfg = load_config("demo", [*SIZES, "INPUT.VIDEO.COLOR_JITTER", "0.5", "INPUT.ON_DEVICE", "True"])
    raw = collate_snippets(PretrainDataset(raw_cfg, store).__getitems__(keys))
    assert raw["video"].dtype == torch.uint8 and raw["audio"].shape == (4, 1, 25600)
    device = build_batch_transform(raw_cfg, "cpu")(raw)
    assert device["title_id"] == worker["title_id"] and device["snippet_index"] == worker["snippet_index"]
    torch.testing.assert_close(device["video"], worker["video"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(device["audio"], worker["audio"], rtol=1e-5, atol=1e-4)


def test_loader_with_the_hierarchical_sampler(store):
    from avplug.samplers import build_sampler

    cfg = load_config("demo", [*SIZES, "SAMPLER.K", "2", "SOLVER.BATCH_SIZE", "4", "DATA.NUM_WORKERS", "0"])
    sampler = build_sampler(cfg, TITLES)
    sampler.set_epoch(3)
    expected = [[(t, int(i)) for t, i in batch] for batch in sampler]
    sampler.set_epoch(3)
    batches = list(build_pretrain_loader(cfg, PretrainDataset(cfg, store), sampler))
    assert [list(zip(b["title_id"], b["snippet_index"])) for b in batches] == expected
    assert sum(store.video_reads.values()) == sum(len({t for t, _ in batch}) for batch in expected)  # one read per title and batch
    title_id, index = expected[0][0]
    assert torch.equal(batches[0]["video"][0], PretrainDataset(cfg, FakeStore(TITLES))[(title_id, index, 3)]["video"])


def test_stacking_keeps_the_clips_memory_order():
    from avplug.data.dataset import stack_in_memory_order

    frames = [torch.randint(0, 255, (4, 6, 8, 3), dtype=torch.uint8) for _ in range(3)]
    clips = [f.permute(3, 0, 1, 2) for f in frames]  # [3, T, H, W] views, as raw samples are
    out = stack_in_memory_order(clips)
    assert torch.equal(out, torch.stack(clips))
    assert out.permute(0, 2, 3, 4, 1).is_contiguous()  # one copy of the frames, channels last
    mixed = stack_in_memory_order([clips[0], clips[1].contiguous()])
    assert mixed.is_contiguous() and torch.equal(mixed, torch.stack(clips[:2]))
    plain = [torch.randn(2, 5) for _ in range(2)]
    assert torch.equal(stack_in_memory_order(plain), torch.stack(plain))
