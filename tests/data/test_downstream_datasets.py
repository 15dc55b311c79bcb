"""Downstream datasets parse the official layouts, with the real files' quirks.

The fixture trees mirror the official UCF101, HMDB51 and ESC-50 downloads (exact line formats, a
few real class names) with empty media files: the parsers only check that listed files exist.
"""
import types
from collections import Counter
from pathlib import Path

import pytest

import registry
from avplug.data.downstream_datasets import (
    ESC50,
    HMDB51,
    UCF101,
    build_downstream_dataset,
    dataset_splits,
)

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
    return types.SimpleNamespace(**{k: v for k, v in globals().items() if k.isupper() or k.startswith(("write_", "ucf_", "hmdb_"))})


def test_registered_with_splits():
    assert {"UCF101", "HMDB51", "ESC50"} <= set(registry.DATASETS.names())
    assert dataset_splits("UCF101") == (1, 2, 3)
    assert dataset_splits("HMDB51") == (1, 2, 3)
    assert dataset_splits("ESC50") == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_splits(ucf101_root, layouts, split):
    train = build_downstream_dataset("UCF101", ucf101_root, split, "train")
    test = build_downstream_dataset("UCF101", ucf101_root, split, "test")
    assert train.classes == layouts.UCF_CLASSES and train.modality == "video"
    n_classes = len(layouts.UCF_CLASSES)
    per_class_test = len(layouts.ucf_test_groups(split)) * layouts.UCF_CLIPS
    per_class_all = layouts.UCF_GROUPS * layouts.UCF_CLIPS
    assert len(test) == n_classes * per_class_test
    assert len(train) == n_classes * (per_class_all - per_class_test)
    assert Counter(label for _, label in test.samples) == {i: per_class_test for i in range(n_classes)}
    for path, label in train.samples + test.samples:
        path = Path(path)
        assert path.is_file() and path.parent.name == layouts.UCF_CLASSES[label]
        assert path.parent.parent == ucf101_root / "UCF-101"
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    # The quirky file names of HandstandPushups keep their spelling.
    assert any(Path(p).name.startswith("v_HandStandPushups_") for p, _ in test.samples)


def test_ucf101_videos_directly_under_root(tmp_path, layouts):
    root = layouts.write_ucf101(tmp_path / "u", under_ucf101_folder=False)
    ds = UCF101(root, 1, "test")
    assert all(Path(p).parent.parent == root for p, _ in ds.samples)


def test_ucf101_errors(ucf101_root):
    lists = ucf101_root / "ucfTrainTestlist"
    with pytest.raises(ValueError, match="official splits are"):
        UCF101(ucf101_root, 4, "train")
    with pytest.raises(ValueError, match="subset"):
        UCF101(ucf101_root, 1, "val")
    victim = ucf101_root / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi"  # split 1 test
    victim.unlink()
    UCF101(ucf101_root, 1, "train")
    with pytest.raises(FileNotFoundError, match=f"1 of 16 files listed in .*testlist01.txt are missing, e.g. .*{victim.name}"):
        UCF101(ucf101_root, 1, "test")
    victim.touch()
    # A train label that disagrees with classInd.txt names the list file and line.
    text = (lists / "trainlist02.txt").read_bytes().replace(b".avi 1\r\n", b".avi 3\r\n", 1)
    (lists / "trainlist02.txt").write_bytes(text)
    with pytest.raises(ValueError, match=r"trainlist02.txt:1: label '3' disagrees"):
        UCF101(ucf101_root, 2, "train")
    (lists / "testlist03.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testlist03.txt not found"):
        UCF101(ucf101_root, 3, "test")
    (lists / "classInd.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classInd.txt not found"):
        UCF101(ucf101_root, 1, "test")


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_splits(hmdb51_root, layouts, split):
    train = HMDB51(hmdb51_root, split, "train")
    test = HMDB51(hmdb51_root, split, "test")
    assert train.classes == sorted(layouts.HMDB_CLASSES) and train.modality == "video"
    marks = [layouts.hmdb_mark(split, v) for v in range(layouts.HMDB_VIDEOS)]
    n = len(layouts.HMDB_CLASSES)
    assert len(train) == n * marks.count("1")
    assert len(test) == n * marks.count("2")
    for path, label in train.samples + test.samples:
        assert Path(path).parent == hmdb51_root / "videos" / train.classes[label]


def test_hmdb51_videos_directly_under_root_and_errors(tmp_path, layouts):
    root = layouts.write_hmdb51(tmp_path / "h", under_videos_folder=False)
    assert all(Path(p).parent.parent == root for p, _ in HMDB51(root, 1, "test").samples)
    split_file = root / "testTrainMulti_7030_splits" / "catch_test_split2.txt"
    split_file.write_text(split_file.read_text() + "extra.avi 7\n")
    with pytest.raises(ValueError, match=r"catch_test_split2.txt:7: expected"):
        HMDB51(root, 2, "train")
    victim = min((root / "cartwheel").iterdir())
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        [HMDB51(root, 1, s) for s in ("train", "test")]
    with pytest.raises(FileNotFoundError, match="testTrainMulti_7030_splits not found"):
        HMDB51(tmp_path, 1, "train")


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_esc50_folds(esc50_root, layouts, fold):
    train = ESC50(esc50_root, fold, "train")
    test = ESC50(esc50_root, fold, "test")
    assert train.classes == layouts.ESC_CATEGORIES and train.modality == "audio"
    per_fold = len(layouts.ESC_CATEGORIES) * layouts.ESC_CLIPS_PER_FOLD
    assert len(test) == per_fold and len(train) == 4 * per_fold
    assert all(Path(p).name.startswith(f"{fold}-") for p, _ in test.samples)
    assert not any(Path(p).name.startswith(f"{fold}-") for p, _ in train.samples)
    for path, label in train.samples + test.samples:
        assert Path(path).parent == esc50_root / "audio" and Path(path).stem.endswith(f"-{label}")


def test_esc50_cross_checks_file_names(esc50_root):
    meta = esc50_root / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    name, fold, target, *rest = lines[3].split(",")
    lines[3] = ",".join([name, fold, str(int(target) + 1), *rest])
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"esc50.csv:4: file '{name}' encodes fold {fold} and target {target}"):
        ESC50(esc50_root, 1, "train")
    meta.unlink()
    with pytest.raises(FileNotFoundError, match="meta/esc50.csv not found"):
        ESC50(esc50_root, 1, "train")


def test_group_of_names_the_recording_clips_share(ucf101_root, hmdb51_root, esc50_root):
    """Intervals resample these groups: a UCF101 class's group gXX, an HMDB51 source video (the name
    before the class, shared across classes), an ESC-50 src_file."""
    ucf = UCF101(ucf101_root, 1, "test")
    assert {ucf.group_of(p) for p, _ in ucf.samples} == {f"{UCF_FILE_STEM.get(c, c)}_g0{g}" for c in UCF_CLASSES for g in (1, 2)}
    hmdb = HMDB51(hmdb51_root, 1, "test")
    assert {hmdb.group_of(p) for p, _ in hmdb.samples} == {"April_09"}
    esc = ESC50(esc50_root, 2, "test")
    assert [esc.group_of(p) for p, _ in esc.samples] == [Path(p).name.split("-")[1] for p, _ in esc.samples]
    assert len({esc.group_of(p) for p, _ in esc.samples}) == len(esc)
    assert ucf.group_of("/x/clip.avi") == "clip.avi"  # a name outside the official pattern is its own group


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_downstream_dataset("ESC50", tmp_path / "nowhere", 1, "test")
    with pytest.raises(KeyError, match="Registered names"):
        build_downstream_dataset("Kinetics", tmp_path, 1, "test")


def test_demo_corpus_stand_ins_parse(demo_corpus):
    """The demo corpus writes the official layouts: every split/fold parses, tests at least 200 clips,
    shares no clip and no group (setting, source video, source recording) with its training set, and
    has every class in its test set."""
    for name, root in (("UCF101", demo_corpus.ucf101_root), ("HMDB51", demo_corpus.hmdb51_root), ("ESC50", demo_corpus.esc50_root)):
        everything = set()
        for split in dataset_splits(name):
            train = build_downstream_dataset(name, root, split, "train")
            test = build_downstream_dataset(name, root, split, "test")
            assert train.classes == test.classes and len(train.classes) >= 2
            assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
            assert not {train.group_of(p) for p, _ in train.samples} & {test.group_of(p) for p, _ in test.samples}
            assert {label for _, label in test.samples} == set(range(len(test.classes)))
            assert len(test) >= 200
            everything |= {p for p, _ in test.samples}
        if name == "ESC50":  # the five test folds partition the clips
            assert len(everything) == len(train.samples) + len(test.samples)
