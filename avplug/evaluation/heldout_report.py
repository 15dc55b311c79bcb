"""Held-out figures as Markdown: retrieval and discrepancy measures of one or more encoders side by side.

Input: one :func:`avplug.evaluation.discrepancy.heldout_measures` dict per column (e.g. random init and
pretrained).  Every cell is an estimate with its 95% interval; the chance level and the sample sizes
are printed with the table (with a note when they are below what the figures need), and with a ``baseline`` column each other column gets z = (column -
baseline) / combined standard error (the two title bootstraps taken as independent).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from avplug.evaluation import discrepancy, retrieval
from avplug.evaluation.discrepancy import MEASURE_KEYS
from avplug.evaluation.intervals import format_estimate

#: Held-out retrieval figures: (key, label, higher is better).
RETRIEVAL_FIGURES = (
    ("v2a_R@1", "video->audio R@1", True), ("v2a_R@5", "video->audio R@5", True),
    ("v2a_median_rank", "video->audio median rank", False), ("v2a_within_title", "video->audio own vs same-title audio", True),
    ("a2v_R@1", "audio->video R@1", True), ("a2v_R@5", "audio->video R@5", True),
    ("a2v_median_rank", "audio->video median rank", False), ("a2v_within_title", "audio->video own vs same-title video", True),
)


def separation(a: dict[str, Any], b: dict[str, Any], key: str) -> dict[str, Any]:
    """``a[key] - b[key]``, its standard error (independent bootstraps) and ``z`` = difference / se."""
    diff = a[key] - b[key]
    se = math.hypot(a.get(f"{key}_se") or 0.0, b.get(f"{key}_se") or 0.0)
    return {"difference": diff, "se": se, "z": diff / se if se > 0 else math.inf if diff else 0.0}


def small_sample_note(figures: str, num_titles: int, num_snippets: int, min_titles: int, min_snippets: int) -> str:
    """A sentence saying the figures rest on too few held-out titles or snippets ("" when they do not)."""
    if num_titles >= min_titles and num_snippets >= min_snippets:
        return ""
    return (f" **Too few for a meaningful figure**: {num_titles} titles and {num_snippets} snippets; {figures} need at "
            f"least {min_titles} titles and {min_snippets} snippets (add held-out titles: DATA.HELDOUT_FRACTION).")


def heldout_markdown(columns: Mapping[str, Mapping[str, Any]], *, baseline: str | None = None) -> list[str]:
    """Markdown lines: a retrieval table and a discrepancy table, one column per entry of ``columns``."""
    labels = list(columns)
    first = columns[labels[0]]
    others = [label for label in labels if label != baseline] if baseline in columns else []
    n = first["num_snippets"]
    lines = [
        "", "## Held-out titles: cross-modal retrieval", "",
        f"{n} snippets of {first['num_titles']} held-out titles (never trained on; a show's episodes are all held "
        f"out or all trained on). Ranks among all {n} held-out snippets; \"own vs same-title\" is the fraction of the "
        "other snippets of the same title whose pair scores below the own pair. 95% intervals and standard errors "
        "from a bootstrap over titles" + ("; z = (encoder - " + baseline + ") / combined standard error." if others else ".")
        + small_sample_note("retrieval figures", first["num_titles"], n, retrieval.MIN_TITLES, retrieval.MIN_SNIPPETS),
        "", "| figure | chance | " + " | ".join(labels) + "".join(f" | z ({label})" for label in others) + " |",
        "| --- | ---: |" + " ---: |" * (len(labels) + len(others)),
    ]
    for key, label, _ in RETRIEVAL_FIGURES:
        digits = 1 if key.endswith("median_rank") else 3
        cells = [format_estimate(columns[c][key], columns[c][f"{key}_ci_low"], columns[c][f"{key}_ci_high"], digits=digits)
                 for c in labels]
        cells += [f"{separation(columns[c], columns[baseline], key)['z']:+.1f}" for c in others]
        lines.append(f"| {label} | {first[f'{key}_chance']:.{digits}f} | " + " | ".join(cells) + " |")
    lines += [
        "", "## Held-out titles: discrepancy measures (paper Eq. 2)", "",
        f"S+ {first['num_S+']}, S- {first['num_S-']}, S!= {first['num_S!=']} scores; estimator: {first['kl_estimator']}. "
        "A KL is 0 when the distributions are equal (its chance level), so an interval that holds 0 means \"not "
        "resolved from 0\"; a negative estimate prints as 0 with its interval as it is."
        + small_sample_note("the measures", first["num_titles"], n, discrepancy.MIN_TITLES, discrepancy.MIN_SNIPPETS), "",
        "| measure | " + " | ".join(labels) + " |", "| --- |" + " ---: |" * len(labels),
    ]
    for key in MEASURE_KEYS:
        cells = [format_estimate(columns[c][key], columns[c][f"{key}_ci_low"], columns[c][f"{key}_ci_high"], digits=3,
                                 nonnegative=key != "gap") for c in labels]
        lines.append(f"| {key.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    return lines
