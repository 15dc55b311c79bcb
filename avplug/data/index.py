"""The catalog index that samplers and datasets share: one record per title of the store."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TitleRecord:
    """A long-form title as the sampler sees it.

    ``num_snippets`` is M_n, the number of non-overlapping snippets cut from the title, indexed
    ``0 .. M_n - 1``.  ``scene_starts`` are the snippet indices at which scenes begin (sorted,
    starting with 0); a title without scene detection has the single scene ``(0,)``.
    ``show_id`` is empty for a movie.
    """

    title_id: str
    num_snippets: int
    genre: str = ""
    show_id: str = ""
    scene_starts: tuple[int, ...] = field(default=(0,))

    def scenes(self) -> list[tuple[int, int]]:
        """Scenes as half-open snippet ranges ``[start, end)`` covering ``0 .. M_n``."""
        starts = [s for s in self.scene_starts if 0 <= s < self.num_snippets] or [0]
        if starts[0] != 0:
            starts = [0] + starts
        ends = starts[1:] + [self.num_snippets]
        return list(zip(starts, ends))
