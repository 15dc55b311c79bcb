"""Held-out tables: every cell an estimate with its interval, chance levels, and z against a baseline."""
import numpy as np

from avplug.evaluation.discrepancy import heldout_measures
from avplug.evaluation.heldout_report import heldout_markdown, separation, small_sample_note


def _embeddings(rng, titles=10, per_title=30, d=16, noise=None):
    zv = rng.normal(size=(titles * per_title, d))
    za = zv + noise * rng.normal(size=zv.shape) if noise is not None else rng.normal(size=zv.shape)
    return zv, za, [f"t{i // per_title}" for i in range(titles * per_title)]


def test_a_planted_correspondence_is_many_standard_errors_above_random_and_the_table_says_so():
    rng = np.random.default_rng(0)
    random_init = heldout_measures(*_embeddings(rng), seed=0, replicates=200)
    learned = heldout_measures(*_embeddings(rng, noise=1.0), seed=0, replicates=200)
    z = separation(learned, random_init, "v2a_R@1")["z"]
    assert z > 5, z
    assert abs(separation(random_init, heldout_measures(*_embeddings(rng), seed=1, replicates=200), "v2a_R@1")["z"]) < 3
    lines = heldout_markdown({"random init": random_init, "pretrained": learned}, baseline="random init")
    row = next(line for line in lines if line.startswith("| video->audio R@1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{1 / 300:.3f}"  # chance 1/N
    assert cells[3].startswith(f"{learned['v2a_R@1']:.3f} [") and float(cells[4]) == round(z, 1)
    assert any(line.startswith("| KL(S-\\|\\|S!=) |") for line in lines)
    assert "300 snippets of 10 held-out titles" in "\n".join(lines)


def test_the_tables_say_when_the_held_out_sample_is_too_small():
    """10 titles x 30 snippets: enough for retrieval (5 titles, 100 snippets), not for the measures (10, 500)."""
    measures = heldout_measures(*_embeddings(np.random.default_rng(0)), seed=0, replicates=50)
    retrieval_text, discrepancy_text = (line for line in heldout_markdown({"enc": measures}) if line.startswith(("300 ", "S+ ")))
    assert "Too few" not in retrieval_text
    assert discrepancy_text.endswith(
        "**Too few for a meaningful figure**: 10 titles and 300 snippets; the measures need at least 10 titles and 500 "
        "snippets (add held-out titles: DATA.HELDOUT_FRACTION).")
    assert small_sample_note("retrieval figures", 2, 39, 5, 100).startswith(" **Too few for a meaningful figure**: 2 titles")
