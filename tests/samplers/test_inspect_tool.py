"""tools/inspect_sampler.py as users run it (subprocesses), and sampler_stats on known batches."""
from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from avplug.data.index import TitleRecord
from avplug.samplers import sampler_stats

BATCH = 64


def _inspect(python_exe, repo_root, *args, check=True):
    proc = subprocess.run(
        [python_exe, str(repo_root / "tools" / "inspect_sampler.py"), "--cfg", "demo.yaml", *args],
        check=False, capture_output=True, text=True, cwd=repo_root, timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "opts",
    [
        ["SAMPLER.NAME", "IIDSampler", "SAMPLER.K", "1"],
        ["SAMPLER.K", "4"],
        ["SAMPLER.K", "16", "SAMPLER.WINDOW", "32"],
    ],
    ids=["iid", "k4", "k16w32"],
)
def test_stats_same_title_negatives_rise_with_k(python_exe, repo_root, opts):
    _, lines = _inspect(
        python_exe, repo_root, "--synthetic-titles", "400", "--world-size", "2", "--batches", "30", "--stats", "--quiet",
        "SOLVER.BATCH_SIZE", str(BATCH), *opts,
    )
    (summary,) = lines
    stats, about = summary["stats"], summary["sampler"]
    k = about["k"]
    assert stats["batches"] == 30 and stats["batch_size"] == BATCH and stats["duplicates"] == 0
    fraction = stats["same_title_negative_fraction"]
    if k == 1:
        assert fraction < 0.01  # i.i.d. snippets of 400 titles: same-title pairs are rare
    else:
        # Groups stay on one rank: each item has k - 1 same-title partners among its B - 1 negatives.
        assert fraction == pytest.approx((k - 1) / (BATCH - 1), rel=1e-9)
        assert stats["local_same_title_negative_fraction"] == pytest.approx((k - 1) / (BATCH // 2 - 1), rel=1e-9)
        assert stats["mean_group_size"] == k
    if "SAMPLER.WINDOW" in opts:
        assert stats["max_group_span"] <= 32 and stats["mean_group_span"] <= 32


def _tool(repo_root):
    """The tool's module, imported in this process (cheaper than a subprocess for the CLI checks)."""
    spec = importlib.util.spec_from_file_location("inspect_sampler_tool", repo_root / "tools" / "inspect_sampler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(repo_root, capsys, *args):
    code = _tool(repo_root).main(["--cfg", "demo.yaml", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_batches_are_json_lines_per_rank_and_match_the_global_batch(repo_root, capsys):
    common = ["--synthetic-titles", "60", "--world-size", "4", "--batches", "2", "--epoch", "3", "SAMPLER.K", "4"]
    code, every_rank, _ = _main(repo_root, capsys, *common)
    assert code == 0
    assert [(d["epoch"], d["batch"], d["rank"]) for d in every_rank] == [(3, b, r) for b in range(2) for r in range(4)]
    assert all(len(d["items"]) == 32 // 4 for d in every_rank)
    code, one_rank, _ = _main(repo_root, capsys, *common[:4], "--rank", "2", *common[4:])
    assert code == 0 and one_rank == [d for d in every_rank if d["rank"] == 2]
    items = [tuple(i) for d in every_rank if d["batch"] == 0 for i in d["items"]]
    assert len(set(items)) == len(items) == 32


@pytest.mark.parametrize(
    "args, message",
    [
        (["--synthetic-titles", "60", "--world-size", "2", "--rank", "2"], "rank 2"),
        (["--synthetic-titles", "60", "SAMPLER.K", "5"], "SAMPLER.K"),
        (["SAMPLER.K", "4", "DATA.STORE_DIR", "/nonexistent/store"], "--synthetic-titles"),
        (["--synthetic-titles", "3", "SAMPLER.K", "4"], "may need 8 distinct titles (groups of up to SAMPLER.K = 4, each title at most once per batch), but only 3 are eligible: set SOLVER.BATCH_SIZE 12 (or SAMPLER.K 16)"),
    ],
    ids=["rank", "k", "store", "catalog"],
)
def test_bad_arguments_are_clear_errors(repo_root, capsys, args, message):
    code, _, err = _main(repo_root, capsys, *args)
    assert code == 2 and message in err


def test_sampler_stats_on_a_known_batch():
    titles = [TitleRecord("a", 10, genre="Drama"), TitleRecord("b", 10, genre="Comedy"), TitleRecord("c", 5)]
    # Two ranks: rank 0 holds a's group, rank 1 b's group (spans 3 and 8).
    batch = [[("a", 0), ("a", 2)], [("b", 1), ("b", 8)]]
    stats = sampler_stats([batch], titles)
    assert stats["same_title_negative_fraction"] == pytest.approx(4 / 12)
    assert stats["local_same_title_negative_fraction"] == 1.0
    assert (stats["mean_group_size"], stats["mean_group_span"], stats["max_group_span"]) == (2.0, 5.5, 8)
    assert stats["title_coverage"] == pytest.approx(2 / 3) and stats["snippet_coverage"] == pytest.approx(4 / 25)
    assert stats["genre_fractions"] == {"Comedy": 0.5, "Drama": 0.5}
    assert stats["duplicates"] == 0
    assert sampler_stats([[[("c", 1), ("c", 1)]]], titles)["duplicates"] == 1
