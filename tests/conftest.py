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


def write_esc50_layout(root: Path, *, seconds: float = 1.0, rate: int = 8000) -> Path:
    """The official ESC-50 layout under ``root``: 2 classes ("dog" a low tone, "rooster" a high one, with
    per-clip noise), 2 clips per class and fold, mono WAV of ``seconds`` at ``rate``."""
    import wave

    import numpy as np

    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows, src = ["filename,fold,target,category,esc10,src_file,take"], 100000
    t = np.arange(int(rate * seconds)) / rate
    for fold in range(1, 6):
        for target, category in enumerate(["dog", "rooster"]):
            for take in "AB":
                src += 1
                name = f"{fold}-{src}-{take}-{target}.wav"
                signal = 0.5 * np.sin(2 * np.pi * (300.0, 2500.0)[target] * t) + 0.05 * np.random.default_rng(src).normal(size=t.size)
                with wave.open(str(root / "audio" / name), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(rate)
                    w.writeframes((signal * 32767).clip(-32768, 32767).astype("<i2").tobytes())
                rows.append(f"{name},{fold},{target},{category},True,{src},{take}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def esc50_layout():
    """``esc50_layout(root, seconds=1.0, rate=8000)``: write a tiny ESC-50 layout (:func:`write_esc50_layout`)."""
    return write_esc50_layout


@pytest.fixture(scope="session")
def tiny_title():
    """``tiny_title(path, seconds, audio=..., video=...)``: a 64x48, 10 fps H.264 + AAC title made
    with the ffmpeg CLI (a test pattern and a 440 Hz tone; ``audio`` is an ``aevalsrc`` expression
    in t, written as float PCM in Matroska so that NaN and huge samples survive; ``video`` another
    lavfi source)."""
    import subprocess

    def make(path: Path, seconds: float, audio: str | None = None, video: str = "testsrc=size=64x48:rate=10") -> Path:
        sound = ["-f", "lavfi", "-i", f"aevalsrc={audio}:s=16000"] if audio else ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
        codec = ["-c:a", "pcm_f32le"] if audio else ["-c:a", "aac"]
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video, *sound, "-t", str(seconds),
             "-c:v", "libx264", "-preset", "ultrafast", "-threads", "1", *codec, str(path)],
            check=True,
        )  # fmt: skip
        return path

    return make


@pytest.fixture
def small_tmpfs(tmp_path):
    """``small_tmpfs(kib)``: a fresh tmpfs of that many KiB (a disk that fills up), unmounted after
    the test; ``small_tmpfs.resize(path, kib)`` grows it (space freed), ``small_tmpfs.fill(path)``
fills it up.  Skips where mounting is refused."""
    import subprocess

    mounted = []

    def mount(kib: int) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to fill up ({done.stderr.strip() or 'mount refused'}): needs root")
        mounted.append(where)
        return where

    def resize(where: Path, kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(where)], check=True)

    def fill(where: Path) -> Path:
        """Take every free byte of the tmpfs with one file (delete it to free the space)."""
        filler = where / "filler"
        with open(filler, "wb") as f:
            st = os.statvfs(where)
            os.posix_fallocate(f.fileno(), 0, st.f_bavail * st.f_frsize)
        return filler

    mount.resize, mount.fill = resize, fill
    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)
