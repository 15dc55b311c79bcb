"""The titles of a split: the catalog's split.json intersected with the snippet store."""
from __future__ import annotations

import pytest

from avplug.data.catalog import load_split
from avplug.data.splits import load_titles


def test_load_titles_filters_by_split(demo_store, demo_catalog, demo_cfg):
    cfg = demo_cfg.clone()
    cfg.defrost()
    cfg.DATA.STORE_DIR, cfg.DATA.CATALOG_DIR = str(demo_store[0]), str(demo_catalog[0])
    split = load_split(cfg.DATA.CATALOG_DIR)
    assert [t.title_id for t in load_titles(cfg, "train")] == sorted(split["train"])
    assert [t.title_id for t in load_titles(cfg, "heldout")] == sorted(split["heldout"])
    assert len(load_titles(cfg, "all")) == 4
    with pytest.raises(ValueError):
        load_titles(cfg, "test")
