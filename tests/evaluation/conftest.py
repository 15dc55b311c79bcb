"""Tiny real ESC-50 media and a tiny cfg for the protocol tests (the tiny UCF101 and ESC-50 layouts are suite-wide: tests/conftest.py)."""
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and CI's 2 cores are shared by other tests."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_esc50(tmp_path_factory, esc50_layout) -> Path:
    """ESC-50 layout, 2 classes, 2 clips per class and fold (1 s at 8 kHz)."""
    return esc50_layout(tmp_path_factory.mktemp("ESC-50-master"))


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
