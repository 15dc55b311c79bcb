"""The titles a run uses: a split of the catalog (``split.json``) that the snippet store holds.

Above both the catalog and the store (it reads one of each), so neither imports the other back.
"""
from __future__ import annotations

import logging

from avplug.data.catalog import load_split
from avplug.data.errors import StoreError
from avplug.data.index import TitleRecord
from avplug.data.store import SnippetStore

logger = logging.getLogger(__name__)


def load_titles(cfg, split: str) -> list[TitleRecord]:
    """The store's titles (``cfg.DATA.STORE_DIR``) in ``split``: "train", "heldout" or "all".

    Titles of the split that the store lacks (failed preprocessing) are skipped with a warning;
    a non-empty split none of whose titles is in the store is an error.
    """
    if split not in ("train", "heldout", "all"):
        raise ValueError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    store = SnippetStore(cfg.DATA.STORE_DIR)
    if split == "all":
        return list(store.titles)
    wanted = load_split(cfg.DATA.CATALOG_DIR)[split]
    have = {t.title_id: t for t in store.titles}
    missing = [t for t in wanted if t not in have]
    if missing:
        logger.warning(
            "%d of %d %s titles are not in the store %s (failed or not yet preprocessed), e.g. %s",
            len(missing), len(wanted), split, cfg.DATA.STORE_DIR, ", ".join(missing[:5]),
        )  # fmt: skip
    titles = [have[t] for t in wanted if t in have]
    if wanted and not titles:
        raise StoreError(
            cfg.DATA.STORE_DIR,
            f"holds none of the {len(wanted)} {split} titles of the catalog {cfg.DATA.CATALOG_DIR}: "
            "were they built from the same catalog?",
        )
    return titles
