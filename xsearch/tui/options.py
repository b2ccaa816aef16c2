"""What the user asked for besides the query: filters, mode, rerank, feedback, grouping and how many hits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import MODES

MODE_ORDER = tuple(sorted(MODES))
"""The search modes alphabetically: the order the mode key steps through and the filters list."""
DEFAULT_K = 20


@dataclass(frozen=True)
class SearchOptions:
    """Search settings kept across queries while the user types."""

    k: int = DEFAULT_K
    mode: str = "dense"
    rerank: bool = True
    feedback: bool = True
    """Pull up the language versions of the best hit."""
    group_translations: bool = False
    """Each passage once, with its language versions (grouped by translation)."""
    langs: tuple[str, ...] = ()
    """Only passages in these languages; empty for all."""
    path: str = ""
    """Only files whose path matches this glob; empty for all."""

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Index.search`."""
        kwargs: dict[str, Any] = {"k": self.k, "mode": self.mode, "rerank": self.rerank, "feedback": self.feedback,
                                  "group_by": "translation" if self.group_translations else None,
                                  "langs": list(self.langs) or None}
        if self.path:
            kwargs["filters"] = {"path": self.path}
        return kwargs

    def next_mode(self) -> str:
        """The mode after this one, cycling through :data:`MODE_ORDER`."""
        return MODE_ORDER[(MODE_ORDER.index(self.mode) + 1) % len(MODE_ORDER)]

    def describe(self) -> str:
        """A compact one-line summary for the filter bar."""
        from rich.markup import escape

        langs = ",".join(self.langs) if self.langs else "all"
        parts = [f"mode [b]{self.mode}[/]", f"rerank [b]{'on' if self.rerank else 'off'}[/]",
                 f"feedback [b]{'on' if self.feedback else 'off'}[/]"]
        if self.group_translations:
            parts.append("grouped by [b]translation[/]")
        parts += [f"k [b]{self.k}[/]", f"languages [b]{langs}[/]"]
        if self.path:
            parts.append(f"path [b]{escape(self.path)}[/]")
        return "  ·  ".join(parts)
