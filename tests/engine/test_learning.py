"""Pretraining learns audio-visual correspondence that holds on titles it never saw.

A short pretraining (about two minutes on 2 idle cores) on a small demo catalog, then the held-out
titles' video->audio ranks of the pretrained encoders against randomly initialized ones. Seeds are
fixed; the margin asked for is several binomial standard deviations, far below what the run gives
(see the numbers in the assertion messages), so the test is not flaky.
"""
import math

import numpy as np
import pytest
import torch

from avplug import pipeline
from avplug.config import load_config
from avplug.data.demo import generate_demo_corpus
from avplug.evaluation.heldout_embedding import build_eval_transform, embed_titles, select_heldout_items
from avplug.evaluation.retrieval import retrieval_outcomes
from avplug.models import build_model

# 33 titles of 45 s (a show of 3 episodes among the held-out quarter); inputs smaller than the
# demo's so that 280 steps fit in about two minutes; the learning rate stays near its peak (the
# cosine is set for 100 epochs), which a short run needs.
SIZES = dict(num_movies=24, num_shows=3, episodes_per_show=3, title_seconds=45.0)
RECIPE = ["SAMPLER.K", "16", "SOLVER.BATCH_SIZE", "32", "SOLVER.MAX_EPOCHS", "100", "SOLVER.MAX_STEPS", "280", "SOLVER.CHECKPOINT_PERIOD", "0",
          "DATA.STORE_SHORT_SIDE", "64", "INPUT.VIDEO.SHORT_SIDE", "48", "INPUT.VIDEO.CROP", "40", "EVAL.DISCREPANCY_PERIOD", "-1",
          "DATA.HELDOUT_FRACTION", "0.25"]


@pytest.fixture(scope="module")
def learning_catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    generate_demo_corpus(root / "corpus", seed=0, downstream=False, broken=False, progress=False, **SIZES)
    opts = ["DATA.SOURCE", str(root / "corpus" / "titles"), "DATA.META", str(root / "corpus" / "meta.csv"),
            "DATA.CATALOG_DIR", str(root / "catalog"), "DATA.STORE_DIR", str(root / "store"), *RECIPE]
    cfg = load_config("demo.yaml", opts)
    pipeline.ingest_from_cfg(cfg, progress=False)
    pipeline.preprocess_from_cfg(cfg, progress=False)
    return root, opts


def _v2a_ranks(cfg, model) -> np.ndarray:
    from avplug.data.dataset import PretrainDataset
    from avplug.data.splits import load_titles
    from avplug.data.store import SnippetStore

    titles = load_titles(cfg, "heldout")
    dataset = PretrainDataset(cfg, SnippetStore(cfg.DATA.STORE_DIR), titles, transform=build_eval_transform(cfg))
    items = select_heldout_items(titles, 4096)
    zv, za, title_ids = embed_titles(model, dataset, items, batch_size=64, device="cpu")
    assert len(set(title_ids)) >= 8 and any(t.startswith("show_") for t in title_ids)
    return retrieval_outcomes(zv, za, title_ids)["v2a_rank"]


@pytest.mark.slow
def test_pretraining_beats_random_init_on_held_out_titles(learning_catalog, tmp_path, one_intra_op_thread):
    from avplug.engine.train import run_pretraining

    _, opts = learning_catalog
    cfg = load_config("demo.yaml", opts + ["OUTPUT_DIR", str(tmp_path / "run")])
    summary = run_pretraining(cfg)
    torch.manual_seed(cfg.SEED)
    random_init = build_model(cfg).eval()
    pretrained = build_model(cfg)
    pretrained.load_state_dict(torch.load(summary["last_checkpoint"], weights_only=True)["model"])
    ranks = {"random": _v2a_ranks(cfg, random_init), "pretrained": _v2a_ranks(cfg, pretrained.eval())}
    n = ranks["random"].size
    # A snippet's own audio in the top half of all held-out audios: Binomial(n, 1/2) by chance.
    top_half = {k: int((r <= n / 2).sum()) for k, r in ranks.items()}
    sd = math.sqrt(n * 0.25)
    assert abs(top_half["random"] - n / 2) < 4 * sd, (top_half, n)
    assert top_half["pretrained"] - top_half["random"] > 4 * math.sqrt(2) * sd, (top_half, n, {k: float(np.median(r)) for k, r in ranks.items()})
