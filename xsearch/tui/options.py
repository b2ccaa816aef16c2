"""What the user asked for besides the query: filters, mode, rerank and how many hits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("dense", "hybrid", "lexical")
DEFAULT_K = 20
MAX_K = 200


@dataclass(frozen=True)
class SearchOptions:
    """Search settings kept across queries while the user types."""

    k: int = DEFAULT_K
    mode: str = "dense"
    rerank: bool = True
    langs: tuple[str, ...] = ()
    """Only passages in these languages; empty for all."""
    path: str = ""
    """Only files whose path matches this glob; empty for all."""

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Index.search`."""
        kwargs: dict[str, Any] = {"k": self.k, "mode": self.mode, "rerank": self.rerank,
                                  "langs": list(self.langs) or None}
        if self.path:
            kwargs["filters"] = {"path": self.path}
        return kwargs

    def next_mode(self) -> str:
        """The mode after this one, cycling through :data:`MODES`."""
        return MODES[(MODES.index(self.mode) + 1) % len(MODES)]

    def describe(self) -> str:
        """A compact one-line summary for the filter bar."""
        from rich.markup import escape

        langs = ",".join(self.langs) if self.langs else "all"
        parts = [f"mode [b]{self.mode}[/]", f"rerank [b]{'on' if self.rerank else 'off'}[/]",
                 f"k [b]{self.k}[/]", f"languages [b]{langs}[/]"]
        if self.path:
            parts.append(f"path [b]{escape(self.path)}[/]")
        return "  ·  ".join(parts)
