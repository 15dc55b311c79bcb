"""The held-out split of small catalogs: at least 2 held-out titles when 3 stay for training, shows on one side."""
from __future__ import annotations

import logging

import pytest

from avplug.data.catalog import MIN_HELDOUT_TITLES, MIN_TRAIN_TITLES, make_split


def movies(n: int) -> list[dict]:
    return [{"title_id": f"m{i}", "show_id": ""} for i in range(n)]


def with_show(n: int, episodes: int) -> list[dict]:
    """``n`` titles, ``episodes`` of them one show."""
    return movies(n - episodes) + [{"title_id": f"s{i}", "show_id": "show"} for i in range(episodes)]


# Titles -> held-out titles at the default fraction 0.1 (and the demo's 0.2): round(f N) when that is
# >= 2, else 2 when 3 titles remain for training, else what the fraction gives.
EXPECTED = {2: 0, 3: 0, 4: 0, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2, 10: 2}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", sorted(EXPECTED))
def test_small_catalog_holds_out_two_titles_when_three_stay_for_training(n, seed):
    for fraction in (0.1, 0.2):
        split = make_split(movies(n), fraction, seed)
        expected = max(EXPECTED[n], round(fraction * n))
        assert len(split["heldout"]) == expected, (n, fraction)
        assert len(split["train"]) == n - expected
        assert not set(split["train"]) & set(split["heldout"])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", range(2, 11))
def test_small_catalog_keeps_a_show_on_one_side(n, seed):
    """A 2-episode show among movies: both episodes on one side; from 5 titles on, >= 2 held out and >= 3
    trained on (at most the show on top of one movie); below, nothing (the fraction gives 0)."""
    split = make_split(with_show(n, 2), 0.1, seed)
    held = set(split["heldout"])
    assert {"s0", "s1"} <= held or not {"s0", "s1"} & held
    if n < MIN_HELDOUT_TITLES + MIN_TRAIN_TITLES:
        assert held == set() and len(split["train"]) == n
    else:
        assert MIN_HELDOUT_TITLES <= len(held) <= 3 and len(split["train"]) >= MIN_TRAIN_TITLES


@pytest.mark.parametrize("seed", range(4))
def test_a_show_too_big_to_hold_out_is_passed_over(seed):
    """6 titles, 4 of them one show: holding the show out would leave 2 titles; the 2 movies are held out.
    With 5 (one movie) nothing can be held out."""
    split = make_split(with_show(6, 4), 0.1, seed)
    assert split["heldout"] == ["m0", "m1"] and split["train"] == ["s0", "s1", "s2", "s3"]
    assert make_split(with_show(5, 4), 0.1, seed)["heldout"] == []


def test_the_log_says_why_the_split_differs_from_the_fraction(caplog):
    with caplog.at_level(logging.INFO, logger="avplug.data.catalog"):
        make_split(movies(6), 0.1, 0)
    assert "holding out 2 of 6 titles, not round(DATA.HELDOUT_FRACTION 0.1 x 6) = 1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="avplug.data.catalog"):
        make_split(movies(4), 0.1, 0)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "only 0 of 4 titles held out" in record.getMessage()


def test_zero_fraction_and_large_catalogs_are_unchanged(caplog):
    assert make_split(movies(6), 0.0, 0)["heldout"] == []
    with caplog.at_level(logging.INFO, logger="avplug.data.catalog"):
        assert len(make_split(movies(48), 0.2, 0)["heldout"]) == 10
    assert caplog.text == ""


def test_the_demo_split_is_the_one_before_the_minimum():
    """The 48-title demo (32 movies, 4 shows of 4, fraction 0.2, seed 0) keeps its published split."""
    entries = movies(32) + [{"title_id": f"s{s}e{e}", "show_id": f"s{s}"} for s in range(4) for e in range(4)]
    held = make_split(entries, 0.2, 0)["heldout"]
    assert len(held) == 10 and sum(t.startswith("s") for t in held) in (0, 4, 8)
