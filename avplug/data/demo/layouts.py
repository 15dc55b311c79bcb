"""The demo corpus' sidecar files, written from the manifest after the media: ``meta.csv``,
``scenes.json``, ``broken.json``, and the list files of the stand-ins in their official formats
(UCF101 ``ucfTrainTestlist/``, HMDB51 ``testTrainMulti_7030_splits/``, ESC-50 ``meta/esc50.csv``).
The formats are described in ``docs/demo_corpus.md``."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from avplug.data.demo.plan import UCF_GROUPS

__all__ = ["write_sidecars"]


def _ucf_test_groups(split: int) -> range:
    """The groups UCF101 split ``split`` tests: the ``split``-th third of ``1..UCF_GROUPS``."""
    size = UCF_GROUPS // 3
    return range((split - 1) * size + 1, split * size + 1)


def _write_meta_csv(path: Path, titles: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "title_id", "show_id", "genre"])
        for t in titles:
            writer.writerow([t["path"], t["title_id"], t["show_id"], t["genre"]])


def _write_scenes_json(path: Path, titles: list[dict]) -> None:
    out = {}
    for t in titles:
        if "scenes" not in t:
            continue
        out[t["title_id"]] = {
            "path": t["path"], "fps": t["fps"], "duration": t["duration"], "num_frames": t["num_frames"],
            "scene_starts": [s["start"] for s in t["scenes"]],
            "scene_ends": [s["end"] for s in t["scenes"]],
            "scene_start_frames": [s["start_frame"] for s in t["scenes"]],
            "locations": [s["location"] for s in t["scenes"]],
        }
    path.write_text(json.dumps({"version": 1, "titles": out}, indent=1))


def _write_ucf101_lists(root: Path, plan: dict) -> None:
    lists = root / "ucf101" / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {name}{crlf}" for i, name in enumerate(plan["classes"], 1)).encode())
    for s in (1, 2, 3):
        test_groups = set(_ucf_test_groups(s))
        train, test = [], []
        for clip in plan["clips"]:
            rel = clip["path"].split("UCF-101/", 1)[1]
            if clip["group"] in test_groups:
                test.append(f"{rel}{crlf}")
            else:
                train.append(f"{rel} {clip['label']}{crlf}")
        (lists / f"trainlist0{s}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist0{s}.txt").write_bytes("".join(test).encode())


def _write_hmdb51_splits(root: Path, plan: dict) -> None:
    folder = root / "hmdb51" / "testTrainMulti_7030_splits"
    folder.mkdir(parents=True, exist_ok=True)
    for s, per_class in plan["splits"].items():
        for name, marks in per_class.items():
            (folder / f"{name}_test_split{s}.txt").write_text(
                "".join(f"{clip} {mark} \n" for clip, mark in marks.items()))


def _write_esc50_csv(root: Path, plan: dict) -> None:
    meta = root / "esc50" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    with open(meta / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for c in plan["clips"]:
            writer.writerow([c["filename"], c["fold"], c["target"], c["category"], str(c["esc10"]), c["src_file"], c["take"]])


def _write_broken_json(path: Path, broken: list[dict]) -> None:
    path.write_text(json.dumps({"version": 1, "broken": broken}, indent=1))


def write_sidecars(root: Path, manifest: dict) -> None:
    """Write every sidecar the manifest asks for into ``root`` (broken.json only with broken titles
    planned, the stand-ins' lists only with the stand-ins)."""
    _write_meta_csv(root / "meta.csv", manifest["titles"])
    _write_scenes_json(root / "scenes.json", manifest["titles"])
    if manifest["sizes"]["broken"]:
        _write_broken_json(root / "broken.json", manifest["broken"])
    downstream = manifest["downstream"]
    if downstream is not None:
        _write_ucf101_lists(root, downstream["ucf101"])
        _write_hmdb51_splits(root, downstream["hmdb51"])
        _write_esc50_csv(root, downstream["esc50"])
