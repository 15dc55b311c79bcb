"""Downstream datasets parse the official layouts, with the real files' quirks."""
from collections import Counter
from pathlib import Path

import pytest

import registry
from avplug.data.downstream import ESC50, HMDB51, UCF101, build_downstream_dataset, dataset_splits


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
    victim = sorted((root / "cartwheel").iterdir())[0]
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


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_downstream_dataset("ESC50", tmp_path / "nowhere", 1, "test")
    with pytest.raises(KeyError, match="Registered names"):
        build_downstream_dataset("Kinetics", tmp_path, 1, "test")
