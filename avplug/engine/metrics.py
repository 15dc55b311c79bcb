"""Training metrics: console lines with rate and ETA, ``metrics.jsonl``, TensorBoard, loss-curve PNG."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from avplug.checksums import NoSpaceError
from avplug.engine.log import format_duration
from avplug.errors import is_disk_full

_log = logging.getLogger("avplug.train")


class MetricsWriter:
    """Writes one record per logged step; only the main process should own one.

    ``metrics.jsonl`` is appended to, so a resumed run continues the same file (records of steps
    that are replayed after a resume are dropped on read by :func:`read_metrics`).  A torn last
    line (a run killed in the middle of a write) is cut off, with a log line, before the first
    append, so it never becomes a bad line in the middle.  Nothing is written (not even the
    TensorBoard folder) before the first record.  A full disk is a
    :class:`avplug.checksums.NoSpaceError` naming the folder.
    """

    def __init__(self, output_dir: str | Path, total_steps: int, tensorboard: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / "metrics.jsonl"
        self.total_steps = total_steps
        self._tensorboard = tensorboard
        self._tb = None
        self._t0 = time.perf_counter()
        self._step0: int | None = None

    def _first_write(self) -> None:
        repair_torn_last_line(self.path)
        if self._tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))

    def write(self, record: dict[str, Any], console: bool = True) -> None:
        step = int(record["step"])
        if self._step0 is None:
            self._first_write()
            self._step0 = step - 1
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            if is_disk_full(exc):
                raise NoSpaceError(f"no space left on {self.output_dir} (metrics of step {step} not written): free space "
                                   "and rerun, it resumes from the last checkpoint") from exc
            raise
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key.replace("(", "_").replace(")", "").replace("||", "_"), value, step)
            self._tb.flush()
        if console:
            elapsed = time.perf_counter() - self._t0
            done = step - self._step0
            eta = elapsed / max(done, 1) * (self.total_steps - step)
            parts = [f"step {step}/{self.total_steps}"]
            parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "step"]
            parts.append(f"eta {format_duration(eta)}")
            _log.info("  ".join(parts))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def repair_torn_last_line(path: Path) -> None:
    """End ``path`` with a newline: a last line without one (a killed writer's) is completed when it is
    a whole record, else cut off, logging what was dropped."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            try:
                json.loads(data[keep:])
                f.write(b"\n")
                return
            except ValueError:
                f.truncate(keep)
    except FileNotFoundError:
        return
    _log.warning("%s: dropped a torn last line (%d bytes, a run killed while writing it)", path, len(data) - keep)


def read_metrics(path: str | Path, skipped: list[int] | None = None) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` in step order, the last record of each (step, keys) kept.

    A torn last line (a run killed while writing it) is skipped with a log line naming the file and
    line.  Another line that is not a record raises ``ValueError`` naming the file and line, unless
    ``skipped`` is given: then its line number is appended there and it is skipped.
    """
    records: dict[tuple[int, tuple[str, ...]], dict[str, Any]] = {}
    lines = Path(path).read_text(errors="replace").splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            records[(int(rec["step"]), tuple(sorted(rec)))] = rec
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) and not line.endswith("\n"):
                _log.warning("%s:%d: skipped a torn last line (a run killed while writing it)", path, number)
            elif skipped is None:
                raise ValueError(f"{path}:{number}: not a metrics record ({exc})") from exc
            if skipped is not None:
                skipped.append(number)
    return [records[k] for k in sorted(records, key=lambda k: k[0])]


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, title: str = "pretraining loss") -> Path:
    """Plot loss (and learning rate) against step from ``metrics.jsonl`` into ``png_path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_path) if "loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="loss (Eq. 1)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if rows and "lr" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in rows], [r["lr"] for r in rows], color="tab:orange", alpha=0.5, label="lr")
        ax2.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)


def plot_heldout_curve(metrics_path: str | Path, png_path: str | Path,
                       keys: tuple[str, ...] = ("v2a_R@1", "a2v_R@1", "v2a_within_title")) -> Path | None:
    """Plot held-out figures logged during training (``key`` with ``key_ci_low``/``key_ci_high``
    bands and ``key_chance`` as a dashed line, one panel per key) against step into ``png_path``.

    Returns None (and writes nothing) when ``metrics.jsonl`` has no record with the first key.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_path) if r.get(keys[0]) is not None]
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, key in zip(axes[0], keys):
        values = [r.get(key) for r in rows]
        ax.plot(steps, values, marker="o", label=key)
        if all(r.get(f"{key}_ci_low") is not None for r in rows):
            ax.fill_between(steps, [r[f"{key}_ci_low"] for r in rows], [r[f"{key}_ci_high"] for r in rows], alpha=0.25,
                            label="95% interval")
        if rows[-1].get(f"{key}_chance") is not None:
            ax.axhline(rows[-1][f"{key}_chance"], color="gray", linestyle="--", label="chance")
        ax.set_xlabel("step")
        ax.set_title(f"held-out {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    titles, snippets = (int(rows[-1].get(k) or 0) for k in ("num_titles", "num_snippets"))  # stored as floats
    fig.suptitle(f"held-out titles during pretraining ({titles} titles, {snippets} snippets)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
