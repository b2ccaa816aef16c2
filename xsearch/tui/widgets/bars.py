"""One-line bars: the active filters above the results, the index status at the bottom."""

from __future__ import annotations

from rich.markup import escape
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
    """Index name, size, languages, model, last search latency and background work."""

    info: reactive[IndexInfo | None] = reactive(None)
    latency_ms: reactive[float | None] = reactive(None)
    activity: reactive[str] = reactive("")
    index_name: reactive[str] = reactive("")

    def render(self) -> str:
        parts = [f"[b]{escape(self.index_name)}[/]"]
        if self.info is None:
            parts.append("no index yet: ctrl+n adds a folder")
        else:
            info = self.info
            parts += [f"{info.documents:,} documents", f"{info.chunks:,} chunks",
                      f"{len(info.languages)} languages", escape(info.model)]
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:,.0f} ms")
        if self.activity:
            parts.append(f"[i]{escape(self.activity)}[/]")
        return " · ".join(parts)
