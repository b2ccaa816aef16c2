"""Frozen records passed between the stages: read -> chunk -> embed -> store -> search."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SourceFile:
    """A file found by discovery, not yet read."""

    path: str
    """Absolute, resolved path."""
    size: int
    mtime: float


@dataclass(frozen=True)
class Skipped:
    """A file that discovery or extraction passed over, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Document:
    """Text extracted from a file; a JSON Lines file yields one per record."""

    path: str
    text: str
    title: str = ""
    record: int = 0
    """Position of the record inside its file (0 for single-document files)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    lang: str = ""


@dataclass(frozen=True)
class Chunk:
    """A run of whole sentences of one document, small enough for the encoder."""

    text: str
    start: int
    """Character offset of the chunk's first character in ``Document.text``."""
    end: int
    """Character offset one past the chunk's last character."""
    lang: str = ""
    n_tokens: int = 0


@dataclass(frozen=True)
class Hit:
    """One search result."""

    chunk_id: int
    score: float
    text: str
    path: str
    lang: str
    start: int
    end: int
    title: str = ""
    record: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    highlights: tuple[tuple[int, int], ...] = ()
    """Character spans inside ``text`` that matched the query best."""
    more: tuple[Hit, ...] = ()
    """With results grouped by document: the document's other matching chunks, best first."""

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of a hit."""
        return {
            "chunk_id": self.chunk_id,
            "score": round(float(self.score), 6),
            "path": self.path,
            "lang": self.lang,
            "title": self.title,
            "record": self.record,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "metadata": self.metadata,
            "highlights": [list(span) for span in self.highlights],
            **({"more": [h.to_dict() for h in self.more]} if self.more else {}),
        }
