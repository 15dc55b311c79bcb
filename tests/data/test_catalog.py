"""Catalog ingest: rejection reasons, snippet counts, the show-grouped held-out split, genre subsampling."""
from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from avplug.data.catalog import (
    CatalogError,
    ingest,
    list_sources,
    load_catalog,
    load_rejected,
    load_split,
    make_split,
    subsample_by_genre,
)

GOOD = {"tc": 8.0, "sc": 8.0, "sur": 4.0, "mono": 3.4}  # title ids of conftest.meta_csv -> seconds
REJECTED = {
    "noaudio.mp4": "no audio stream",
    "short.mp4": "shorter than one snippet",
    "truncated.mp4": "truncated",
    "nomoov.mp4": "corrupt or truncated MP4",
    "notmedia.mp4": "not a media file",
    "readme.txt": "not a media file extension (.txt)",  # never probed, still accounted for
}


REJECTED_TXT = "not a media file extension (.txt): not probed"


def test_every_usable_title_is_cataloged_with_its_snippet_count(demo_catalog, demo_cfg):
    out, result = demo_catalog
    entries = {e["title_id"]: e for e in load_catalog(str(out))}
    assert entries == {e["title_id"]: e for e in result.catalog}
    assert set(entries) == set(GOOD)
    L = demo_cfg.DATA.SNIPPET_SECONDS  # 8 frames at 5 fps
    for title_id, seconds in GOOD.items():
        e = entries[title_id]
        assert e["duration_s"] == pytest.approx(seconds, abs=0.02)
        assert e["num_snippets"] == math.floor(seconds / L)
    assert (entries["sur"]["audio_channels"], entries["sur"]["audio_rate"]) == (6, 44100)  # 5.1 at 44.1 kHz accepted
    assert (entries["mono"]["audio_channels"], entries["mono"]["audio_rate"], entries["mono"]["fps"]) == (1, 48000, 30.0)
    assert (entries["tc"]["show_id"], entries["tc"]["genre"]) == ("showA", "Drama")
    assert (entries["sur"]["show_id"], entries["sur"]["width"], entries["sur"]["height"]) == ("", 96, 128)


def test_each_bad_file_is_rejected_with_its_reason(demo_catalog):
    out, _ = demo_catalog
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in load_rejected(str(out))}
    assert set(reasons) == set(REJECTED)
    for name, words in REJECTED.items():
        assert words in reasons[name], (name, reasons[name])


def test_list_file_unreadable_paths_and_duplicates(media_dir, tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text(
        "# one path per line\n"
        f"{media_dir}/timecode.mp4\n"
        f"{media_dir}/readme.txt\n"
        f"{tmp_path}/gone.mp4\n"
        f"{media_dir}\n"
        "copy/timecode.mp4\n"
    )
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "timecode.mp4").write_bytes((media_dir / "timecode.mp4").read_bytes())
    result = ingest(str(listing), str(tmp_path / "cat"), snippet_seconds=1.6, workers=1, progress=False)
    assert [e["title_id"] for e in result.catalog] == ["timecode"]
    reasons = {r["path"]: r["reason"] for r in result.rejected}
    assert "not a media file" in reasons[f"{media_dir}/readme.txt"]
    assert reasons[f"{tmp_path}/gone.mp4"] == "no such file"
    assert "folder" in reasons[str(media_dir)]
    dup = [r for p, r in reasons.items() if p.endswith("timecode.mp4")]
    assert len(dup) == 1 and "duplicate title_id: 'timecode' is already used by" in dup[0]


def test_without_meta_the_title_is_the_file_name(media_dir, tmp_path):
    result = ingest(str(media_dir), str(tmp_path), snippet_seconds=1.6, workers=2, progress=False)
    assert sorted(e["title_id"] for e in result.catalog) == ["mono48k", "scenes", "surround", "timecode"]
    assert all(e["show_id"] == "" and e["genre"] == "" for e in result.catalog)


def test_meta_csv_names_the_titles(media_dir, meta_csv, tmp_path):
    lines = meta_csv.read_text().splitlines()
    partial = tmp_path / "meta.csv"
    partial.write_text("\n".join(line.replace(f"{media_dir.name}/", f"{media_dir}/") for line in lines[:3]) + "\n")
    result = ingest(str(media_dir), str(tmp_path / "cat"), snippet_seconds=1.6, meta=str(partial), workers=1, progress=False)
    assert [e["title_id"] for e in result.catalog] == ["sc", "tc"]
    reasons = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in result.rejected}  # the rest: no row
    unlisted = {"mono48k.mp4", "surround.mp4", *REJECTED} - {"readme.txt"}
    assert reasons == {**dict.fromkeys(unlisted, "not listed in the meta.csv (not a title)"), "readme.txt": REJECTED_TXT}
    result = ingest("", str(tmp_path / "cat2"), snippet_seconds=1.6, meta=str(meta_csv), workers=1, progress=False)
    assert len(result.catalog) == 4 and len(result.rejected) == 5  # no --src: every row, nothing else


def test_no_source_and_no_media_are_usage_errors(tmp_path):
    with pytest.raises(CatalogError, match="neither a folder nor a list file"):
        list_sources(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="names no media files"):
        ingest(str(tmp_path / "empty"), str(tmp_path / "cat"), snippet_seconds=1.6, progress=False)


def synthetic_entries(num_movies=40, shows=((8, "s1"), (5, "s2"), (3, "s3"), (12, "s4")), seed=0):
    rng = random.Random(seed)
    genres = ["Drama", "Comedy", "Action", "Horror"]
    entries = [{"title_id": f"m{i:03d}", "show_id": "", "genre": rng.choice(genres)} for i in range(num_movies)]
    for n, show in shows:
        genre = rng.choice(genres)
        entries += [{"title_id": f"{show}e{i}", "show_id": show, "genre": genre} for i in range(n)]
    return entries


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_split_keeps_shows_together_and_respects_the_fraction(seed, fraction):
    entries = synthetic_entries()
    split = make_split(entries, fraction, seed)
    train, held = set(split["train"]), set(split["heldout"])
    assert not train & held and train | held == {e["title_id"] for e in entries}
    for show in ("s1", "s2", "s3", "s4"):
        sides = {e["title_id"] in held for e in entries if e["show_id"] == show}
        assert len(sides) == 1, f"show {show} is split across train and held-out"
    assert len(held) == round(fraction * len(entries))  # movies are singletons: the target is reachable
    assert make_split(entries, fraction, seed) == split  # deterministic


def test_split_depends_on_the_seed_and_zero_holds_nothing_out():
    entries = synthetic_entries()
    assert make_split(entries, 0.2, 0)["heldout"] != make_split(entries, 0.2, 1)["heldout"]
    assert make_split(entries, 0.0, 0)["heldout"] == []
    with pytest.raises(CatalogError):
        make_split(entries, 1.0, 0)


def test_catalog_split_file(demo_catalog):
    out, _result = demo_catalog
    split = load_split(str(out))
    assert set(split) == {"train", "heldout"}
    assert len(split["heldout"]) == 1  # round(0.25 * 4)
    assert {"tc", "sc"} <= set(split["train"]) or {"tc", "sc"}.isdisjoint(split["train"])
    assert json.loads((out / "split.json").read_text())["excluded"] == []


def test_genre_filter_and_cap():
    entries = synthetic_entries(num_movies=200, shows=())
    kept, dropped = subsample_by_genre(entries, ["drama", "Comedy"], [], 0, seed=0)
    assert {e["genre"] for e in entries if e["title_id"] in kept} == {"Drama", "Comedy"}
    assert len(kept) == sum(e["genre"] in ("Drama", "Comedy") for e in entries)
    assert set(kept) | set(dropped) == {e["title_id"] for e in entries}
    kept, _ = subsample_by_genre(entries, [], [], 50, seed=0)
    assert len(kept) == 50 and kept == subsample_by_genre(entries, [], [], 50, seed=0)[0]


@pytest.mark.parametrize("weights", [[1, 1, 1, 1], [4, 2, 1, 1], [0, 1, 1, 2]])
def test_genre_weights_set_the_proportions(weights):
    entries = synthetic_entries(num_movies=400, shows=())
    genres = ["Drama", "Comedy", "Action", "Horror"]
    kept, _ = subsample_by_genre(entries, genres, weights, 60, seed=3)
    counts = Counter(e["genre"] for e in entries if e["title_id"] in kept)
    assert len(kept) == 60
    for g, w in zip(genres, weights):
        assert counts[g] == pytest.approx(60 * w / sum(weights), abs=1)


def test_genre_weights_without_a_cap_take_as_many_as_the_rarest_genre_allows():
    entries = [{"title_id": f"d{i}", "genre": "Drama"} for i in range(30)]
    entries += [{"title_id": f"h{i}", "genre": "Horror"} for i in range(5)]
    kept, _ = subsample_by_genre(entries, ["Drama", "Horror"], [1, 1], 0, seed=0)
    assert Counter(t[0] for t in kept) == {"d": 5, "h": 5}
    with pytest.raises(CatalogError, match="Romance"):
        subsample_by_genre(entries, ["Drama", "Romance"], [1, 1], 0, seed=0)


def test_ingest_applies_genre_subsampling_to_the_train_split_only(media_dir, meta_csv, tmp_path):
    result = ingest(
        str(media_dir), str(tmp_path), snippet_seconds=1.6, meta=str(meta_csv), heldout_fraction=0.25, seed=0,
        workers=1, genres=["Drama"], progress=False,
    )  # fmt: skip
    split = result.split
    genre = {e["title_id"]: e["genre"] for e in result.catalog}
    assert all(genre[t] == "Drama" for t in split["train"])
    assert set(split["excluded"]) == {t for t in genre if genre[t] != "Drama"} - set(split["heldout"])
    assert load_split(str(tmp_path))["heldout"] == split["heldout"]


def test_ingest_tool(media_dir, meta_csv, tmp_path, capsys, load_tool):
    main = load_tool("ingest").main
    out = tmp_path / "cat"
    rc = main(["--src", str(media_dir), "--meta", str(meta_csv), "--out", str(out), "--cfg", "demo.yaml",
               "--workers", "1", "--no-progress", "DATA.HELDOUT_FRACTION", "0.5"])  # fmt: skip
    assert rc == 0
    assert "4 titles, 6 rejected (1 corrupt or truncated MP4/QuickTime container, 1 no audio stream, 1 not a media file, " \
        "1 not a media file extension, 1 shorter than one snippet, 1 truncated or corrupt); 2 train / 2 held out" in capsys.readouterr().out
    assert len(load_split(str(out))["heldout"]) == 2
    assert main(["--src", str(tmp_path / "missing"), "--out", str(out), "--no-progress"]) == 2
    assert "neither a folder nor a list file" in capsys.readouterr().err
