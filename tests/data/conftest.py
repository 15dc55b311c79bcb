"""Fixture trees mirroring the official UCF101, HMDB51 and ESC-50 downloads (empty media files:
the parsers only check that listed files exist)."""
from pathlib import Path

import pytest

UCF_CLASSES = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "HandstandPushups"]
# The official file names of HandstandPushups spell the class "HandStandPushups".
UCF_FILE_STEM = {"HandstandPushups": "HandStandPushups"}
# Split s tests on groups 2s-1 and 2s (the real splits use 7 groups each), trains on the others.
UCF_GROUPS, UCF_CLIPS = 6, 2

HMDB_CLASSES = ["brush_hair", "cartwheel", "catch"]
HMDB_VIDEOS = 6  # per class; in split s video v is train (1), test (2) or unused (0)

ESC_CATEGORIES = ["dog", "rooster", "pig"]  # targets 0, 1, 2 as in the real esc50.csv
ESC_CLIPS_PER_FOLD = 2  # per class and fold


def ucf_test_groups(split):
    return {2 * split - 1, 2 * split}


def write_ucf101(root: Path, *, under_ucf101_folder: bool = True) -> Path:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    videos = root / "UCF-101" if under_ucf101_folder else root
    # The official lists use CRLF line endings.
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)).encode())
    for split in (1, 2, 3):
        train, test = [], []
        for label, cls in enumerate(UCF_CLASSES, 1):
            (videos / cls).mkdir(parents=True, exist_ok=True)
            for g in range(1, UCF_GROUPS + 1):
                for c in range(1, UCF_CLIPS + 1):
                    rel = f"{cls}/v_{UCF_FILE_STEM.get(cls, cls)}_g{g:02d}_c{c:02d}.avi"
                    (videos / rel).touch()
                    if g in ucf_test_groups(split):
                        test.append(f"{rel}\r\n")
                    else:
                        train.append(f"{rel} {label}\r\n")
        (lists / f"trainlist0{split}.txt").write_bytes("".join(train).encode())
        (lists / f"testlist0{split}.txt").write_bytes("".join(test).encode())
    return root


def hmdb_mark(split, v):
    """1 = train, 2 = test, 0 = unused, rotating with the split."""
    return "2" if v % 3 == split - 1 else ("0" if v == 5 else "1")


def write_hmdb51(root: Path, *, under_videos_folder: bool = True) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    videos = root / "videos" if under_videos_folder else root
    for cls in HMDB_CLASSES:
        (videos / cls).mkdir(parents=True)
        names = [f"April_09_{cls}_u_nm_np1_ba_goo_{v}.avi" for v in range(HMDB_VIDEOS)]
        for name in names:
            (videos / cls / name).touch()
        for split in (1, 2, 3):
            lines = "".join(f"{name} {hmdb_mark(split, v)} \n" for v, name in enumerate(names))
            (splits / f"{cls}_test_split{split}.txt").write_text(lines)
    return root


def write_esc50(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    src = 100032
    for fold in range(1, 6):
        for target, category in enumerate(ESC_CATEGORIES):
            for take in "AB"[:ESC_CLIPS_PER_FOLD]:
                src += 1
                name = f"{fold}-{src}-{take}-{target}.wav"
                (root / "audio" / name).touch()
                rows.append(f"{name},{fold},{target},{category},{target == 0},{src},{take}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def ucf101_root(tmp_path):
    return write_ucf101(tmp_path / "UCF101")


@pytest.fixture
def hmdb51_root(tmp_path):
    return write_hmdb51(tmp_path / "HMDB51")


@pytest.fixture
def esc50_root(tmp_path):
    return write_esc50(tmp_path / "ESC-50-master")


@pytest.fixture
def layouts():
    """The writers and the facts the fixture trees are built from, for tests to check counts."""
    import types

    return types.SimpleNamespace(**{k: v for k, v in globals().items() if k.isupper() or k.startswith(("write_", "ucf_", "hmdb_"))})
