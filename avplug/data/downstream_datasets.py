"""Downstream datasets (UCF101, HMDB51, ESC-50) read from the files users download.

Each is registered in ``registry.DATASETS`` under its name and follows that registry's contract:
``cls(root, split, subset)`` with ``split`` the official 1-based split (UCF101, HMDB51: 1-3) or
fold (ESC-50: 1-5) and ``subset`` "train" or "test"; the object has ``.samples`` (list of
``(path, label_index)``), ``.classes`` (class names in label order) and ``.modality``.  The class
attribute ``SPLITS`` lists the official splits (used when ``EVAL.DOWNSTREAM.SPLITS`` is empty), and
``group_of(path)`` names the recording a clip shares with others, read from its official file name
(UCF101: class and group ``gXX``, the clips of one setting; HMDB51: the source video before the
class name; ESC-50: ``src_file``, the takes of one recording): the confidence intervals of
:mod:`avplug.evaluation.downstream_statistics` resample these groups, not single clips.

Expected layouts (as unpacked from the official archives):

UCF101 (``UCF101.rar`` + ``UCF101TrainTestSplits-RecognitionTask.zip``)::

    root/ucfTrainTestlist/classInd.txt        "1 ApplyEyeMakeup" (1-based)
    root/ucfTrainTestlist/trainlist0{1,2,3}.txt  "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    root/ucfTrainTestlist/testlist0{1,2,3}.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi   (or root/<Class>/... directly)

HMDB51 (``hmdb51_org.rar`` with its per-class archives unpacked + ``test_train_splits.rar``)::

    root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   "<name>.avi <mark>"
        mark 1 = train, 2 = test, 0 = unused in that split
    root/videos/<class>/<name>.avi           (or root/<class>/<name>.avi)

ESC-50 (the ``ESC-50-master`` folder of the GitHub archive)::

    root/meta/esc50.csv    filename,fold,target,category,esc10,src_file,take
    root/audio/{fold}-{src_file}-{take}-{target}.wav
    train = the four other folds, test = the fold itself

Lines may end in CRLF (the official UCF101 lists do) and carry trailing spaces (HMDB51's do).
Every listed file must exist: a missing list or media file is a ``FileNotFoundError`` naming the
path, and a malformed line a ``ValueError`` naming the file and line number.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import ClassVar

from avplug.errors import UserError
from registry import DATASETS


class DownstreamDatasetError(UserError, ValueError):
    """A downstream dataset folder, split or list file that does not hold what it should; the
    message names the file (and line)."""

SUBSETS = ("train", "test")


class DownstreamDataset:
    """Base of the built-in datasets: checks ``split``/``subset`` and exposes the contract."""

    SPLITS: ClassVar[tuple[int, ...]] = (1,)
    modality: ClassVar[str] = "video"

    def __init__(self, root: str | Path, split: int, subset: str) -> None:
        name = type(self).__name__
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{name}: dataset root {self.root} is not a folder")
        if int(split) not in self.SPLITS:
            raise DownstreamDatasetError(f"{name}: split {split!r} does not exist; official splits are {list(self.SPLITS)}")
        if subset not in SUBSETS:
            raise DownstreamDatasetError(f"{name}: subset {subset!r} must be one of {SUBSETS}")
        self.split = int(split)
        self.subset = subset
        self.classes: list[str] = []
        self.samples: list[tuple[str, int]] = []

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split}, subset={self.subset!r}, "
            f"{len(self.samples)} samples, {len(self.classes)} classes)"
        )

    def group_of(self, path: str) -> str:
        """The recording ``path`` belongs to (clips of one group are not independent); here the clip itself."""
        return Path(path).name

    def _check_exist(self, listed_in: Path | str) -> None:
        missing = [p for p, _ in self.samples if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{type(self).__name__} split {self.split} {self.subset}: {len(missing)} of {len(self.samples)} "
                f"files listed in {listed_in} are missing, e.g. {missing[0]}"
            )


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, stripped lines of a text file with their 1-based line numbers."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    return [(no, line.strip()) for no, line in enumerate(text.splitlines(), 1) if line.strip()]


@DATASETS.register()
class UCF101(DownstreamDataset):
    """UCF101 action recognition: 101 classes, 3 official train/test splits of 13,320 videos."""

    SPLITS = (1, 2, 3)
    modality = "video"
    LIST_DIR = "ucfTrainTestlist"

    def __init__(self, root: str | Path, split: int, subset: str) -> None:
        super().__init__(root, split, subset)
        lists = self.root / self.LIST_DIR
        if not (lists / "classInd.txt").is_file():
            raise FileNotFoundError(
                f"UCF101: {lists / 'classInd.txt'} not found; unzip UCF101TrainTestSplits-RecognitionTask.zip into {self.root}"
            )
        self.classes = self._read_class_index(lists / "classInd.txt")
        index = {c: i for i, c in enumerate(self.classes)}
        folded = {c.lower(): i for i, c in enumerate(self.classes)}
        videos = self.root / "UCF-101" if (self.root / "UCF-101").is_dir() else self.root
        list_file = lists / f"{subset}list0{self.split}.txt"
        for no, line in _lines(list_file):
            parts = line.split()
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else ""
            label = index.get(folder, folded.get(folder.lower()))
            if label is None:
                raise DownstreamDatasetError(f"{list_file}:{no}: class folder {folder!r} of {rel!r} is not in classInd.txt")
            if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) != label + 1):
                raise DownstreamDatasetError(
                    f"{list_file}:{no}: label {parts[1]!r} disagrees with classInd.txt, "
                    f"which gives {folder} the label {label + 1}"
                )
            self.samples.append((str(videos / rel), label))
        self._check_exist(list_file)

    GROUP = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c\d+\.avi", re.IGNORECASE)

    def group_of(self, path: str) -> str:
        """``<Class>_gXX`` of ``v_<Class>_gXX_cYY.avi`` (the clips of one group share a setting)."""
        m = self.GROUP.fullmatch(Path(path).name)
        return f"{m['cls']}_g{int(m['group']):02d}" if m else super().group_of(path)

    @staticmethod
    def _read_class_index(path: Path) -> list[str]:
        classes = []
        for no, line in _lines(path):
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
                raise DownstreamDatasetError(f"{path}:{no}: expected '<{len(classes) + 1}> <ClassName>', got {line!r}")
            classes.append(parts[1])
        if not classes:
            raise DownstreamDatasetError(f"{path} lists no classes")
        return classes


@DATASETS.register()
class HMDB51(DownstreamDataset):
    """HMDB51 action recognition: 51 classes, 3 official 70/30 splits (70 train, 30 test per class)."""

    SPLITS = (1, 2, 3)
    modality = "video"
    SPLIT_DIR = "testTrainMulti_7030_splits"
    MARKS: ClassVar[dict[str, str | None]] = {"1": "train", "2": "test", "0": None}

    def __init__(self, root: str | Path, split: int, subset: str) -> None:
        super().__init__(root, split, subset)
        split_dir = self.root / self.SPLIT_DIR
        if not split_dir.is_dir():
            raise FileNotFoundError(f"HMDB51: split folder {split_dir} not found; unpack test_train_splits.rar into {self.root}")
        pattern = re.compile(rf"^(.+)_test_split{self.split}\.txt$")
        files = {m.group(1): p for p in split_dir.iterdir() if (m := pattern.match(p.name))}
        if not files:
            raise FileNotFoundError(f"HMDB51: no <class>_test_split{self.split}.txt files in {split_dir}")
        self.classes = sorted(files)
        videos = self.root / "videos" if (self.root / "videos").is_dir() else self.root
        for label, name in enumerate(self.classes):
            for no, line in _lines(files[name]):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in self.MARKS:
                    raise DownstreamDatasetError(f"{files[name]}:{no}: expected '<video>.avi <0|1|2>', got {line!r}")
                if self.MARKS[parts[1]] == subset:
                    self.samples.append((str(videos / name / parts[0]), label))
        self._check_exist(split_dir)

    def group_of(self, path: str) -> str:
        """The source video: the part of ``<source>_<class>_<tags>_<n>.avi`` before the class folder's name."""
        name, cls = Path(path).name, Path(path).parent.name
        return name.split(f"_{cls}_", 1)[0] if f"_{cls}_" in name else super().group_of(path)


@DATASETS.register()
class ESC50(DownstreamDataset):
    """ESC-50 environmental sound classification: 2,000 5-s clips, 50 classes, 5 official folds."""

    SPLITS = (1, 2, 3, 4, 5)
    modality = "audio"
    COLUMNS = ("filename", "fold", "target", "category")

    def __init__(self, root: str | Path, split: int, subset: str) -> None:
        super().__init__(root, split, subset)
        meta = self.root / "meta" / "esc50.csv"
        if not meta.is_file():
            raise FileNotFoundError(f"ESC50: metadata {meta} not found (expected the ESC-50-master folder as root)")
        with meta.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in self.COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DownstreamDatasetError(f"{meta}: missing columns {missing} (header: {reader.fieldnames})")
            rows = list(reader)
        categories: dict[int, str] = {}
        for row_no, row in enumerate(rows, 2):
            name = row["filename"].strip()
            try:
                fold, target = int(row["fold"]), int(row["target"])
            except ValueError:
                raise DownstreamDatasetError(f"{meta}:{row_no}: fold {row['fold']!r} and target {row['target']!r} must be integers") from None
            self._cross_check(meta, row_no, name, fold, target)
            category = row["category"].strip()
            if categories.setdefault(target, category) != category:
                raise DownstreamDatasetError(
                    f"{meta}:{row_no}: target {target} is {category!r} here but {categories[target]!r} earlier"
                )
            if (fold == self.split) == (subset == "test"):
                self.samples.append((str(self.root / "audio" / name), target))
        if sorted(categories) != list(range(len(categories))):
            raise DownstreamDatasetError(f"{meta}: targets must be 0..{len(categories) - 1}, got {sorted(categories)}")
        self.classes = [categories[t] for t in range(len(categories))]
        self._check_exist(meta)

    def group_of(self, path: str) -> str:
        """``src_file`` of ``{fold}-{src_file}-{take}-{target}.wav`` (the takes of one recording)."""
        return Path(path).stem.split("-")[1]

    @staticmethod
    def _cross_check(meta: Path, row_no: int, name: str, fold: int, target: int) -> None:
        """The file name ``{fold}-{src}-{take}-{target}.wav`` must agree with the csv row."""
        parts = Path(name).stem.split("-")
        if len(parts) != 4 or not (parts[0].isdigit() and parts[3].isdigit()):
            raise DownstreamDatasetError(f"{meta}:{row_no}: file name {name!r} is not '{{fold}}-{{src}}-{{take}}-{{target}}.wav'")
        if (int(parts[0]), int(parts[3])) != (fold, target):
            raise DownstreamDatasetError(
                f"{meta}:{row_no}: file {name!r} encodes fold {int(parts[0])} and target {int(parts[3])} "
                f"but the csv says fold {fold} and target {target}"
            )


def build_downstream_dataset(name: str, root: str | Path, split: int, subset: str) -> DownstreamDataset:
    """Build the DATASETS entry ``name`` and check that it honours the registry's contract."""
    dataset = DATASETS.get(name)(root, split, subset)
    for attr in ("samples", "classes", "modality"):
        if not hasattr(dataset, attr):
            raise TypeError(f"DATASETS entry {name!r} returned {type(dataset).__name__} without .{attr}")
    if dataset.modality not in ("video", "audio"):
        raise TypeError(f"DATASETS entry {name!r}: modality {dataset.modality!r} must be 'video' or 'audio'")
    if not dataset.samples:
        raise DownstreamDatasetError(f"{name} split {split} {subset} under {root} holds no samples")
    return dataset


def dataset_splits(name: str) -> tuple[int, ...]:
    """The official splits of the DATASETS entry ``name`` (its ``SPLITS`` attribute, else ``(1,)``)."""
    return tuple(getattr(DATASETS.get(name), "SPLITS", (1,)))
