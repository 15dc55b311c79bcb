"""Discrepancy measures: the KL estimator against analytic Gaussians, the three score distributions
(which pairs land where) and the measures on embeddings with known title structure."""
import math
import zlib

import numpy as np
import pytest
import torch

from avplug.data.index import TitleRecord
from avplug.evaluation.discrepancy import (
    MEASURE_KEYS,
    discrepancy_measures,
    embed_titles,
    evaluate_discrepancy,
    kl_divergence,
    plot_score_histograms,
    score_distributions,
    select_heldout_items,
)


def gaussian_kl(mu_p, sd_p, mu_q, sd_q):
    return math.log(sd_q / sd_p) + (sd_p**2 + (mu_p - mu_q) ** 2) / (2 * sd_q**2) - 0.5


# (sd_p, sd_q / sd_p, |mu_p - mu_q| / sd_q): Q at least as wide as P, P's mean within 2 sd_q of Q's.
GRID = [(sd, ratio, shift) for sd in (0.3, 2.0) for ratio in (1.0, 1.5, 3.0) for shift in (0.5, 1.0, 2.0)]


@pytest.mark.parametrize("sd_p,ratio,shift", GRID)
def test_kl_matches_analytic_gaussians_within_10_percent(sd_p, ratio, shift):
    rng = np.random.default_rng(hash((sd_p, ratio, shift)) % 2**32)
    sd_q = sd_p * ratio
    mu_q = 1.7 + shift * sd_q
    truth = gaussian_kl(1.7, sd_p, mu_q, sd_q)
    estimate = kl_divergence(rng.normal(1.7, sd_p, 100_000), rng.normal(mu_q, sd_q, 100_000))
    assert abs(estimate - truth) <= 0.1 * truth, (estimate, truth)


@pytest.mark.parametrize("ratio", [1.5, 3.0])
def test_kl_width_only_difference(ratio):
    rng = np.random.default_rng(7)
    truth = gaussian_kl(0.0, 1.0, 0.0, ratio)
    estimate = kl_divergence(rng.normal(0, 1, 100_000), rng.normal(0, ratio, 100_000))
    assert abs(estimate - truth) <= 0.1 * truth


def test_kl_of_identical_distributions_is_near_zero_and_handles_ties():
    rng = np.random.default_rng(1)
    assert abs(kl_divergence(rng.normal(size=100_000), rng.normal(size=100_000))) < 0.01
    # Unequal sample sizes are accounted for by the log(m / (n - 1)) term.
    assert abs(kl_divergence(rng.normal(size=20_000), rng.normal(size=100_000))) < 0.02
    # A collapsed embedding gives identical scores: finite, about zero.
    assert abs(kl_divergence(np.zeros(1000), np.zeros(1000))) < 0.01


def test_kl_rejects_too_few_or_bad_samples():
    with pytest.raises(ValueError, match="too few samples"):
        kl_divergence(np.arange(5.0), np.arange(100.0))
    with pytest.raises(ValueError, match="NaN"):
        kl_divergence(np.array([np.nan] * 50), np.arange(100.0))


def index_embeddings(title_sizes):
    """Embeddings whose score z_v^i . z_a^j = i * N + j encodes the pair (i, j)."""
    titles = [f"t{t}" for t, size in enumerate(title_sizes) for _ in range(size)]
    n = len(titles)
    z_video = np.eye(n)
    z_audio = np.arange(n)[None, :] * n + np.arange(n)[:, None]  # z_a[j, i] = i * n + j
    return z_video, z_audio.astype(float), titles


def decode(scores, n):
    s = np.rint(scores).astype(int)
    return s // n, s % n


def test_score_distributions_sample_the_right_pairs():
    sizes = [1, 2, 3, 10, 20]
    z_video, z_audio, titles = index_embeddings(sizes)
    n, p = len(titles), 4
    # Shuffle rows so that titles are not contiguous; scores still decode to the original indices.
    perm = np.random.default_rng(0).permutation(n)
    out = score_distributions(z_video, z_audio[perm][:, perm], [titles[i] for i in perm], pairs_per_snippet=p, seed=3)
    i, j = decode(out["S+"], n)
    assert (i == j).all() and sorted(i) == list(range(n))
    i, j = decode(out["S-"], n)
    assert all(titles[a] == titles[b] and a != b for a, b in zip(i, j))
    size_of = {t: titles.count(t) for t in titles}
    assert len(out["S-"]) == sum(min(p, size_of[t] - 1) for t in titles)
    assert len(set(zip(i, j))) == len(i)  # distinct partners
    i, j = decode(out["S!="], n)
    assert all(titles[a] != titles[b] for a, b in zip(i, j))
    assert len(out["S!="]) == sum(min(p, n - size_of[t]) for t in titles)
    assert len(set(zip(i, j))) == len(i)
    again = score_distributions(z_video, z_audio[perm][:, perm], [titles[i] for i in perm], pairs_per_snippet=p, seed=3)
    assert all(np.array_equal(out[k], again[k]) for k in out)


def structured_embeddings(title_scale, *, titles=40, per_title=25, dim=16, seed=0):
    """Matched pairs share a snippet vector; every snippet of a title shares a title offset."""
    rng = np.random.default_rng(seed)
    offsets = np.repeat(rng.normal(size=(titles, dim)) * title_scale, per_title, axis=0)
    shared = rng.normal(size=(titles * per_title, dim))
    z_video = offsets + shared + 0.3 * rng.normal(size=shared.shape)
    z_audio = offsets + shared + 0.3 * rng.normal(size=shared.shape)
    ids = np.repeat(np.arange(titles), per_title)
    return z_video, z_audio, ids


def test_title_offsets_put_s_minus_between_s_diff_and_s_plus():
    z_video, z_audio, ids = structured_embeddings(title_scale=1.0)
    scores = score_distributions(z_video, z_audio, ids, pairs_per_snippet=16)
    assert scores["S!="].mean() < scores["S-"].mean() < scores["S+"].mean()
    m = discrepancy_measures(z_video, z_audio, ids, pairs_per_snippet=16)
    assert set(MEASURE_KEYS) <= set(m)
    assert m["KL(S!=||S+)"] > m["KL(S-||S+)"] > 0
    assert m["gap"] == pytest.approx(m["KL(S!=||S+)"] - m["KL(S-||S+)"])
    assert m["gap"] > 0.1 and m["KL(S-||S!=)"] > 0.1
    assert m["num_S+"] == 1000 and m["num_S-"] == 16_000 and m["num_titles"] == 40


def test_no_title_structure_gives_no_discrepancy():
    z_video, z_audio, ids = structured_embeddings(title_scale=0.0)
    m = discrepancy_measures(z_video, z_audio, ids, pairs_per_snippet=16)
    assert abs(m["KL(S-||S!=)"]) < 0.03
    assert abs(m["gap"]) < 0.05
    assert m["KL(S-||S+)"] > 0.3  # matched pairs still stand out


def test_single_snippet_titles_are_reported():
    z = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match="S- has 0 scores"):
        discrepancy_measures(z, z, list(range(30)))


def test_plot_score_histograms_writes_png(tmp_path):
    z_video, z_audio, ids = structured_embeddings(title_scale=1.0, titles=5, per_title=10)
    path = plot_score_histograms(score_distributions(z_video, z_audio, ids), tmp_path / "plots" / "scores.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# Held-out snippets embedded with a model
# ---------------------------------------------------------------------------------------------
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
    from avplug.evaluation.discrepancy import build_eval_transform

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
