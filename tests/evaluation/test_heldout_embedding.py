"""Held-out snippets embedded with a model: which snippets, deterministic inputs, the embeddings, and
the held-out measures of a model on a (synthetic) store."""
import math
import zlib

import pytest
import torch

from avplug.data.index import TitleRecord
from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.evaluation.heldout_embedding import build_eval_transform, embed_titles, evaluate_discrepancy, select_heldout_items


def test_select_heldout_items_spreads_evenly():
    titles = [TitleRecord("a", 100), TitleRecord("b", 3), TitleRecord("c", 1), TitleRecord("d", 50)]
    items = select_heldout_items(titles, 40)
    per_title = {t: sum(1 for i, _ in items if i == t) for t in "abcd"}
    assert per_title == {"a": 19, "b": 3, "c": 0, "d": 18}  # b's unused share goes to a and d
    a_indices = [s for t, s in items if t == "a"]
    assert a_indices[0] == 0 and a_indices[-1] == 99 and len(set(a_indices)) == 19
    assert select_heldout_items(titles, 40) == items
    many = [TitleRecord(f"t{i:03d}", 10) for i in range(100)]
    items = select_heldout_items(many, 20)
    assert len(items) == 20 and len({t for t, _ in items}) == 10
    assert select_heldout_items([TitleRecord("x", 1)], 10) == []


class TinyStore:
    """The SnippetStore reader API over synthetic snippets whose content depends on the title."""

    root = "/fake/store"

    def __init__(self, titles, *, frames, fps, short_side, audio_rate):
        self.titles = list(titles)
        self.snippet_frames, self.fps, self.short_side, self.audio_rate = frames, fps, short_side, audio_rate
        self.samples_per_snippet = round(frames / fps * audio_rate)

    def read_video(self, title_id, snippet_indices, decoder=None):
        out = []
        for index in snippet_indices:
            g = torch.Generator().manual_seed(zlib.crc32(f"{title_id}/{index}".encode()))
            out.append(torch.randint(0, 256, (self.snippet_frames, self.short_side, self.short_side + 8, 3), generator=g, dtype=torch.uint8))
        return torch.stack(out)

    def read_audio(self, title_id, snippet_indices):
        gens = [torch.Generator().manual_seed(zlib.crc32(f"{title_id}/{index}/audio".encode())) for index in snippet_indices]
        return torch.stack([0.1 * torch.randn(self.samples_per_snippet, generator=g) for g in gens])


TINY_PRETRAIN = [
    "DATA.SNIPPET_FRAMES", "4", "DATA.FPS", "5.0", "DATA.AUDIO_RATE", "8000", "DATA.NUM_WORKERS", "0",
    "INPUT.VIDEO.SHORT_SIDE", "24", "INPUT.VIDEO.CROP", "16", "INPUT.VIDEO.COLOR_JITTER", "0.5",
    "INPUT.AUDIO.MEL_BINS", "16", "INPUT.AUDIO.N_FFT", "256", "INPUT.AUDIO.HOP", "128",
    "MODEL.VIDEO.WIDTH", "0.125", "MODEL.AUDIO.WIDTH", "0.125", "MODEL.HEAD.DIM", "8",
    "SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "EVAL.DISCREPANCY_MAX_SNIPPETS", "24",
    "EVAL.DISCREPANCY_PAIRS_PER_SNIPPET", "4",
]


@pytest.fixture
def tiny_setup():
    from avplug.config import load_config
    from avplug.models import build_model

    def make(*opts):
        torch.manual_seed(0)
        cfg = load_config("demo.yaml", TINY_PRETRAIN + list(opts))
        titles = [TitleRecord(f"title{i}", 6 + i) for i in range(4)]
        store = TinyStore(titles, frames=4, fps=5.0, short_side=24, audio_rate=8000)
        return cfg, build_model(cfg), store, titles

    return make


def test_embed_titles_is_deterministic_and_restores_mode(tiny_setup):
    from avplug.data.dataset import PretrainDataset

    cfg, model, store, titles = tiny_setup()
    dataset = PretrainDataset(cfg, store, titles, transform=build_eval_transform(cfg))
    items = select_heldout_items(titles, 10)
    model.train()
    zv, za, ids = embed_titles(model, dataset, items, batch_size=4, device="cpu")
    assert model.training
    assert zv.shape == za.shape == (len(items), 8) and ids == [t for t, _ in items]
    zv2, za2, _ = embed_titles(model, dataset, items, batch_size=3, device="cpu")
    assert torch.allclose(zv, zv2, atol=1e-5) and torch.allclose(za, za2, atol=1e-5)
    # The same as running the model by hand on the sample (center crop, no jitter, no band drop).
    sample = dataset[items[2]]
    model.eval()
    with torch.no_grad():
        ref_v, ref_a = model(sample["video"][None], sample["audio"][None])
    assert torch.allclose(zv[2], ref_v[0], atol=1e-5) and torch.allclose(za[2], ref_a[0], atol=1e-5)
    # Raw samples transformed on the device (INPUT.ON_DEVICE) give the same embeddings.
    cfg_dev, _, _, _ = tiny_setup("INPUT.ON_DEVICE", "True")
    raw = PretrainDataset(cfg_dev, store, titles, transform=build_eval_transform(cfg_dev))
    zv3, za3, _ = embed_titles(model, raw, items, batch_size=4, device="cpu")
    assert torch.allclose(zv, zv3, atol=1e-4) and torch.allclose(za, za3, atol=1e-4)


def test_evaluate_discrepancy_on_a_store(tiny_setup, tmp_path):
    cfg, model, store, titles = tiny_setup()
    result = evaluate_discrepancy(cfg, model, "cpu", store=store, titles=titles, plot_path=tmp_path / "s.png")
    assert set(MEASURE_KEYS) <= set(result)
    assert all(math.isfinite(result[k]) for k in MEASURE_KEYS)
    assert result["num_S+"] == 24 and result["num_titles"] == 4 and result["num_S-"] == 24 * 4
    # The held-out measures with intervals ride along (heldout_measures' keys).
    assert result["num_snippets"] == 24 and result["v2a_R@1_chance"] == pytest.approx(1 / 24)
    assert all(result[f"{k}_ci_low"] <= result[k] <= result[f"{k}_ci_high"] for k in (*MEASURE_KEYS, "v2a_R@1", "a2v_within_title"))
    assert result["bootstrap_replicates"] == cfg.EVAL.BOOTSTRAP_REPLICATES and result["kl_estimator"] == "histogram"
    assert (tmp_path / "s.png").is_file()
    with pytest.raises(ValueError, match="need held-out titles"):
        evaluate_discrepancy(cfg, model, "cpu", store=store, titles=[])
