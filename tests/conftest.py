"""Suite-wide pytest set-up: keep torch to the cores CI has and make the repo importable."""
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
