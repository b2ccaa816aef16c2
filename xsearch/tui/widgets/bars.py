"""One-line bars: the active filters above the results, the index status at the bottom."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ...index import IndexInfo
from ..options import SearchOptions


class FilterBar(Static):
    """Mode, rerank, k, languages and path glob, as they apply to the next search."""

    def show(self, options: SearchOptions) -> None:
        """Render ``options``."""
        self.update(options.describe())


class StatusBar(Static):
    """Index name, size, languages, model, last search latency and background work.

    While an index opens, before its full :attr:`info` is read, the bar shows what it is doing
    first (loading the model), then the index's size from :attr:`languages`.
    """

    info: reactive[IndexInfo | None] = reactive(None)
    languages: reactive[dict[str, int] | None] = reactive(None)
    """Chunks per language of the index being opened (known before its model is loaded)."""
    opening: reactive[bool] = reactive(False)
    """An index exists and is being opened (so "no index yet" would be wrong)."""
    latency_ms: reactive[float | None] = reactive(None)
    activity: reactive[str] = reactive("")
    index_name: reactive[str] = reactive("")
    watching: reactive[int | None] = reactive(None)
    """How many folders are watched for changes; ``None`` when none is."""
    error: reactive[str] = reactive("")
    """Why the last search could not run (cleared by the next one)."""

    def render(self) -> str:
        # each part with its priority: on a narrow terminal the lowest go first, the rest keep their order
        parts: list[tuple[int, str]] = [(0, f"[b]{escape(self.index_name)}[/]")]
        activity = [(0, f"[i]{escape(self.activity)}[/]")] if self.activity else []
        if self.info is not None:
            info = self.info
            parts += [(2, f"{info.documents:,} documents"), (1, f"{info.chunks:,} chunks"),
                      (2, f"{len(info.languages)} languages"), (3, escape(info.model))]
        elif self.languages is not None or self.opening:
            parts += activity
            activity = []
            if self.languages is not None:
                parts.append((1, held(self.languages)))
        else:
            parts.append((1, "no index yet: ctrl+n adds a folder"))
        if self.watching is not None:
            parts.append((0, f"watching {self.watching:,} folder{'' if self.watching == 1 else 's'}"))
        if self.error:
            parts.append((0, f"[red]{escape(self.error)}[/]"))
        elif self.latency_ms is not None:
            parts.append((0, f"{self.latency_ms:,.0f} ms"))
        return fitted(parts + activity, self.content_region.width or 10_000)


def fitted(parts: list[tuple[int, str]], width: int) -> str:
    """``parts`` (priority, markup) joined by `` · ``, dropping the least important ones
    (the highest number) until the line fits ``width`` cells."""
    while True:
        line = " · ".join(markup for _, markup in parts)
        worst = max((priority for priority, _ in parts), default=0)
        if Text.from_markup(line).cell_len <= width or worst == 0:
            return line
        drop = max(n for n, (priority, _) in enumerate(parts) if priority == worst)
        parts = parts[:drop] + parts[drop + 1:]


def held(languages: dict[str, int]) -> str:
    """How much an index holds, from its chunks per language: "3,188 chunks in 7 languages"."""
    chunks, n = sum(languages.values()), len(languages)
    return f"{chunks:,} chunk{'' if chunks == 1 else 's'} in {n} language{'' if n == 1 else 's'}"
