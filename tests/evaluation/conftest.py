"""Tiny real ESC-50 media and a tiny cfg for the protocol tests (the tiny UCF101 layout is suite-wide: tests/conftest.py)."""
from pathlib import Path

import numpy as np
import pytest

SOUND_CLASSES = ["dog", "rooster"]  # ESC-50 targets 0 and 1; low tone vs high tone
AUDIO_RATE, AUDIO_SECONDS = 8000, 1.0


def write_wav(path: Path, label: int, seed: int) -> None:
    import wave

    rng = np.random.default_rng(seed)
    t = np.arange(int(AUDIO_RATE * AUDIO_SECONDS)) / AUDIO_RATE
    tone = 300.0 if label == 0 else 2500.0
    signal = 0.5 * np.sin(2 * np.pi * tone * t) + 0.05 * rng.normal(size=t.size)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes((signal * 32767).clip(-32768, 32767).astype("<i2").tobytes())


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and CI's 2 cores are shared by other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_esc50(tmp_path_factory) -> Path:
    """ESC-50 layout, 2 classes, 2 clips per class and fold."""
    root = tmp_path_factory.mktemp("ESC-50-master")
    (root / "meta").mkdir()
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    src = 100000
    for fold in range(1, 6):
        for target, category in enumerate(SOUND_CLASSES):
            for take in "AB":
                src += 1
                name = f"{fold}-{src}-{take}-{target}.wav"
                write_wav(root / "audio" / name, target, seed=src)
                rows.append(f"{name},{fold},{target},{category},True,{src},{take}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


TINY_OPTS = [
    "MODEL.VIDEO.WIDTH", "0.125", "MODEL.AUDIO.WIDTH", "0.125", "MODEL.HEAD.DIM", "16",
    "DATA.AUDIO_RATE", "8000", "INPUT.AUDIO.MEL_BINS", "16", "INPUT.AUDIO.N_FFT", "256", "INPUT.AUDIO.HOP", "128",
    "EVAL.DOWNSTREAM.FRAMES", "4", "EVAL.DOWNSTREAM.FPS", "5.0", "EVAL.DOWNSTREAM.SCALE_JITTER", "(20, 24)",
    "EVAL.DOWNSTREAM.CROP", "16", "EVAL.DOWNSTREAM.CLIP_SECONDS", "0.5", "EVAL.DOWNSTREAM.NUM_CLIPS", "2",
    "EVAL.DOWNSTREAM.NUM_CROPS", "3", "EVAL.DOWNSTREAM.EPOCHS", "2", "EVAL.DOWNSTREAM.WARMUP_EPOCHS", "1",
    "EVAL.DOWNSTREAM.BASE_LR", "0.05", "EVAL.DOWNSTREAM.BATCH_SIZE", "4", "EVAL.DOWNSTREAM.NUM_WORKERS", "0",
    "EVAL.DOWNSTREAM.LINEAR_MAX_ITER", "100", "SOLVER.AMP", "off",
]


@pytest.fixture
def tiny_cfg(tmp_path):
    """``make(dataset, root, *opts)`` -> a frozen tiny cfg writing into a fresh folder."""
    from avplug.config import load_config

    def make(dataset: str, root: Path, *opts: str):
        return load_config(
            "movie_tv.yaml",
            TINY_OPTS + ["EVAL.DOWNSTREAM.DATASET", dataset, "EVAL.DOWNSTREAM.ROOT", str(root), "OUTPUT_DIR", str(tmp_path / "out"), *opts],
        )

    return make


@pytest.fixture
def tiny_opts() -> list[str]:
    """The overrides of :func:`tiny_cfg` (tiny model, clips and schedule), for command lines."""
    return list(TINY_OPTS)
