"""The data stages of a run, driven by one cfg: demo corpus -> catalog -> snippet store.

Each stage is idempotent where the underlying tool is (preprocess skips finished titles), so a
rerun of ``make demo`` or of a sweep reuses what is already on disk.
"""
from __future__ import annotations

import logging
from pathlib import Path

from avplug.data.demo import generate_demo_corpus

_log = logging.getLogger("avplug.pipeline")


def make_demo_corpus(cfg, *, downstream: bool = True, progress: bool = True) -> Path:
    """Generate the demo corpus where ``cfg.DATA.META`` points (its ``meta.csv``) unless it is there.

    ``cfg.DATA.SOURCE`` should be the corpus' ``titles/`` folder, so the downstream stand-ins
    beside it are not ingested as titles.
    """
    root = Path(cfg.DATA.META).parent
    if (root / "meta.csv").is_file() and (root / "manifest.json").is_file():
        _log.info("demo corpus already in %s", root)
        return root
    d = cfg.DATA.DEMO
    generate_demo_corpus(root, seed=d.SEED, num_movies=d.NUM_MOVIES, num_shows=d.NUM_SHOWS,
                         episodes_per_show=d.EPISODES_PER_SHOW, title_seconds=d.TITLE_SECONDS,
                         downstream=downstream, progress=progress)
    return root


def ingest_from_cfg(cfg, *, progress: bool = True):
    """``tools/ingest.py`` for ``cfg.DATA.SOURCE`` / ``META`` into ``cfg.DATA.CATALOG_DIR``."""
    from avplug.data.catalog import ingest

    d = cfg.DATA
    return ingest(d.SOURCE, d.CATALOG_DIR, snippet_seconds=d.SNIPPET_SECONDS, meta=d.META,
                  heldout_fraction=d.HELDOUT_FRACTION, seed=cfg.SEED, workers=d.PREPROCESS_WORKERS,
                  genres=d.GENRES, genre_weights=d.GENRE_WEIGHTS, max_titles=d.MAX_TITLES, progress=progress)


def preprocess_from_cfg(cfg, *, progress: bool = True):
    """``tools/preprocess.py`` for ``cfg.DATA.CATALOG_DIR`` into ``cfg.DATA.STORE_DIR``."""
    from avplug.data.store import StoreSpec
    from avplug.data.store_writer import preprocess

    return preprocess(cfg.DATA.CATALOG_DIR, cfg.DATA.STORE_DIR, StoreSpec.from_cfg(cfg),
                      workers=cfg.DATA.PREPROCESS_WORKERS, progress=progress)


def prepare_data(cfg, *, demo: bool = False, progress: bool = True) -> None:
    """Every data stage the cfg needs before pretraining (the demo corpus too when ``demo``)."""
    if demo:
        make_demo_corpus(cfg, progress=progress)
    ingest_from_cfg(cfg, progress=progress)
    summary = preprocess_from_cfg(cfg, progress=progress)
    for failure in summary.failed:
        _log.warning("preprocess skipped %s", failure)
