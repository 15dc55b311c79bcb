"""Generating the demo corpus: plan it, render every file (in worker processes), write the sidecars.

The output folder's layout and what each file holds are described in ``docs/demo_corpus.md``.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from avplug.data.demo.layouts import write_sidecars
from avplug.data.demo.plan import DOWNSTREAM_FPS, DOWNSTREAM_SECONDS, plan_demo_corpus
from avplug.data.demo.render import render_task
from avplug.resources import available_cpus, process_pool

__all__ = ["DemoCorpus", "generate_demo_corpus"]


@dataclass(frozen=True)
class DemoCorpus:
    """Where :func:`generate_demo_corpus` put things (``None`` for parts that were not asked for)."""

    root: Path
    manifest_json: Path
    meta_csv: Path
    scenes_json: Path
    broken_json: Path | None
    titles: tuple[Path, ...]  # every file listed in meta.csv, broken ones included
    ucf101_root: Path | None
    hmdb51_root: Path | None
    esc50_root: Path | None


_OWNED = ("manifest.json", "meta.csv", "scenes.json", "broken.json", "titles", "ucf101", "hmdb51", "esc50")


def _prepare_out_dir(root: Path) -> None:
    """Create ``root``; clean a previous demo corpus there; refuse to write into anything else."""
    if root.exists() and any(root.iterdir()):
        if not (root / "manifest.json").is_file():
            raise FileExistsError(
                f"demo corpus: {root} is not empty and holds no manifest.json of a previous demo corpus; "
                "refusing to write into it (choose an empty or new folder)")
        for name in _OWNED:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _render_tasks(manifest: dict) -> list[tuple[str, list, dict | None, float]]:
    """The manifest's files as worker tasks ``(kind, items, content, cost estimate)``, costliest first
    (which keeps the pool busy to the end): one title each, stand-in clips in batches."""
    tasks: list[tuple[str, list, dict | None, float]] = []
    for t in manifest["titles"]:
        cost = t.get("duration", 0.0) * t.get("fps", 0) * 1.0 + 1.0
        tasks.append(("title", [t], manifest["contents"][t["content"]], cost))
    if manifest["downstream"] is not None:
        for name in ("ucf101", "hmdb51"):
            clips = manifest["downstream"][name]["clips"]
            for i in range(0, len(clips), 6):
                tasks.append(("video_clip", clips[i : i + 6], None, 6 * DOWNSTREAM_SECONDS * DOWNSTREAM_FPS * 2.0))
        esc = manifest["downstream"]["esc50"]["clips"]
        for i in range(0, len(esc), 10):
            tasks.append(("esc_clip", esc[i : i + 10], None, 50.0))
    tasks.sort(key=lambda task: -task[3])
    return tasks


def _run_tasks(root: Path, tasks: list, workers: int, progress: bool) -> None:
    """Render ``tasks`` in ``workers`` processes (1: in this one), with a tqdm bar over the files."""
    bar = tqdm(total=sum(len(task[1]) for task in tasks), desc="demo corpus", unit="file", disable=not progress)
    try:
        if workers == 1:
            for kind, items, content, _ in tasks:
                render_task(str(root), kind, items, content)
                bar.update(len(items))
            return
        with process_pool(workers) as pool:
            futures = {pool.submit(render_task, str(root), kind, items, content): len(items)
                       for kind, items, content, _ in tasks}
            for future in as_completed(futures):
                future.result()
                bar.update(futures[future])
    finally:
        bar.close()


def generate_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    num_movies: int = 6,
    num_shows: int = 2,
    episodes_per_show: int = 3,
    title_seconds: float = 60.0,
    downstream: bool = True,
    broken: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> DemoCorpus:
    """Write the demo corpus planned by :func:`plan_demo_corpus` (same sizes) into ``out_dir``.

    ``out_dir`` must be empty, new, or hold a previous demo corpus (which is replaced).
    ``workers`` processes render files in parallel (default: the usable CPU cores; 1 renders in
    this process).  ``progress`` shows a tqdm bar over the files.
    """
    root = Path(out_dir)
    manifest = plan_demo_corpus(seed=seed, num_movies=num_movies, num_shows=num_shows,
                                episodes_per_show=episodes_per_show, title_seconds=title_seconds,
                                downstream=downstream, broken=broken)
    _prepare_out_dir(root)
    (root / "manifest.json").write_text(json.dumps(manifest))
    _run_tasks(root, _render_tasks(manifest), available_cpus() if workers is None else max(1, int(workers)), progress)
    write_sidecars(root, manifest)
    ds = manifest["downstream"] is not None
    return DemoCorpus(
        root=root, manifest_json=root / "manifest.json", meta_csv=root / "meta.csv",
        scenes_json=root / "scenes.json", broken_json=root / "broken.json" if broken else None,
        titles=tuple(root / t["path"] for t in manifest["titles"]),
        ucf101_root=root / "ucf101" if ds else None, hmdb51_root=root / "hmdb51" if ds else None,
        esc50_root=root / "esc50" if ds else None,
    )
