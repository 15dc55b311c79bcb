"""Suite-wide pytest set-up: keep torch to the cores CI has, make the repo importable, and the tiny
corpora several test areas share (a demo catalog, a UCF101 layout)."""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("ingest")``: the module of tools/ingest.py, to call its main() in-process."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"avplug_tool_{name}", REPO / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


TINY_DEMO_SIZES = dict(num_movies=2, num_shows=1, episodes_per_show=2, title_seconds=12.0)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A tiny demo catalog, ingested and preprocessed with the demo recipe (built once per session).

    Returns the ``KEY VALUE`` overrides that point ``configs/demo.yaml`` at it; pass them (plus your
    own) to ``load_config("demo.yaml", opts)``.
    """
    from avplug import pipeline
    from avplug.config import load_config
    from avplug.data.demo import generate_demo_corpus

    root = tmp_path_factory.mktemp("tiny_demo")
    generate_demo_corpus(root / "corpus", seed=0, downstream=False, broken=True, progress=False, **TINY_DEMO_SIZES)
    opts = [
        "DATA.SOURCE", str(root / "corpus" / "titles"), "DATA.META", str(root / "corpus" / "meta.csv"),
        "DATA.CATALOG_DIR", str(root / "catalog"), "DATA.STORE_DIR", str(root / "store"),
        "DATA.HELDOUT_FRACTION", "0.25",
    ]
    cfg = load_config("demo.yaml", opts)
    pipeline.ingest_from_cfg(cfg, progress=False)
    pipeline.preprocess_from_cfg(cfg, progress=False)
    return opts


@pytest.fixture
def one_intra_op_thread():
    """Run a test with one torch intra-op thread (small convolutions on a shared 2-core machine run
    many times faster on one thread than on two that contend with other processes)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


VIDEO_CLASSES = ["ApplyEyeMakeup", "Archery"]  # UCF101 names; red-ish vs blue-ish clips
VIDEO_SIZE = (30, 40)  # height, width (landscape)
VIDEO_SECONDS, VIDEO_FPS = 2.0, 10


def write_video(path: Path, label: int, seed: int) -> None:
    """An MPEG-4 AVI whose color says its class (red vs blue), with per-clip noise and motion."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    height, width = VIDEO_SIZE
    base = np.array([200, 40, 40] if label == 0 else [40, 40, 200], np.float64)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(int(VIDEO_SECONDS * VIDEO_FPS)):
            frame = base + rng.normal(0, 20, (height, width, 3))
            frame[:, (2 * t) % width : (2 * t) % width + 4] = 255  # a moving bar
            image = av.VideoFrame.from_ndarray(frame.clip(0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="session")
def tiny_ucf101(tmp_path_factory) -> Path:
    """UCF101 layout, 2 classes; split 1: groups 1-2 test, 3-5 train (1 clip each)."""
    root = tmp_path_factory.mktemp("UCF101")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(VIDEO_CLASSES, 1)).encode())
    train, test = [], []
    for label, cls in enumerate(VIDEO_CLASSES):
        (root / "UCF-101" / cls).mkdir(parents=True)
        for g in range(1, 6):
            rel = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
            write_video(root / "UCF-101" / rel, label, seed=10 * label + g)
            (test if g <= 2 else train).append(rel)
    (lists / "trainlist01.txt").write_bytes("".join(f"{r} {VIDEO_CLASSES.index(r.split('/')[0]) + 1}\r\n" for r in train).encode())
    (lists / "testlist01.txt").write_bytes("".join(f"{r}\r\n" for r in test).encode())
    return root
