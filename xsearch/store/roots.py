"""The folders and files an index was built from (its *roots*), and what became of them.

Every completed ``Index.add_paths`` records each path it was given as a root, in the text form
of its real absolute path (:func:`~xsearch.types.path_to_text`; files under a root are stored
under that form), with the options of the run, so that ``xsearch index`` with no path can run
again over every root, and ``xsearch ls`` can show what each root holds.

The ``roots`` table is created by the first write that records one; an index made before it
has no such table, opens unchanged, and shows its files as a group under no root until they
are indexed again. Reading never writes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..types import text_to_path
from .db import is_text_source

if TYPE_CHECKING:
    from .db import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS roots (
    path TEXT PRIMARY KEY, options TEXT NOT NULL DEFAULT '{}', indexed_at REAL NOT NULL,
    indexed_gen INTEGER NOT NULL
);
"""
OPTION_NAMES = ("include", "exclude", "follow", "max_file_bytes")
"""The options of ``add_paths`` a root is recorded with, and run again with."""
LISTED_PATHS = 100
"""Most missing or changed files a :class:`RootInfo` names (its counts are complete)."""


@dataclass(frozen=True)
class RootInfo:
    """One group of what an index holds, as ``xsearch ls`` shows it: a root, the texts added
    through the API, or the files under no recorded root (an index from before roots were kept)."""

    kind: str
    """``"root"``, ``"texts"`` or ``"unrooted"``."""
    path: str | None
    """The root's real absolute path in text form; None for the other kinds."""
    files: int
    documents: int
    chunks: int
    languages: dict[str, int]
    """Chunk counts per language, most frequent first."""
    indexed_at: float | None = None
    """When a run over the root last completed (Unix time); None for the other kinds."""
    options: dict[str, Any] = field(default_factory=dict)
    """The options the root was indexed with: ``include``, ``exclude``, ``follow``, ``max_file_bytes``."""
    exists: bool = True
    """Whether the root is still on disk (always True for the other kinds)."""
    missing_files: int = 0
    """Indexed files that are gone from disk."""
    changed_files: int = 0
    """Indexed files whose size or modification time differs from the indexed one."""
    missing: tuple[str, ...] = ()
    """The first :data:`LISTED_PATHS` missing files."""
    changed: tuple[str, ...] = ()
    """The first :data:`LISTED_PATHS` changed files."""

    @property
    def status(self) -> str:
        """``"missing"`` (the root is gone), ``"stale"`` (files gone or changed) or ``"ok"``."""
        if not self.exists:
            return "missing"
        return "stale" if self.missing_files or self.changed_files else "ok"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one row of ``xsearch ls --json`` (and ``GET /roots``)."""
        return {**self.__dict__, "missing": list(self.missing), "changed": list(self.changed), "status": self.status}


@dataclass(frozen=True)
class Root:
    """A recorded root: its path (text form) and the options it is indexed with."""

    path: str
    options: dict[str, Any]
    indexed_at: float


def _has_table(store: Store) -> bool:
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'roots'").fetchone() \
        is not None


def recorded(store: Store) -> list[Root]:
    """Every recorded root, in path order (none for an index from before roots were kept)."""
    if not _has_table(store):
        return []
    rows = store.db.execute("SELECT path, options, indexed_at FROM roots ORDER BY path")
    return [Root(path, json.loads(options), indexed_at) for path, options, indexed_at in rows]


def record(store: Store, paths: Sequence[str], options: Mapping[str, Any]) -> None:
    """Record ``paths`` (text forms of real absolute paths) as roots indexed now with ``options``,
    in one transaction. A root inside another recorded with the same options is not recorded
    again (its files show under the outer root), and recording a root drops the roots inside it
    that had the same options."""
    options = {name: _plain(options.get(name)) for name in OPTION_NAMES}
    with store._writing() as conn:
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            same = [path for path, opts in conn.execute("SELECT path, options FROM roots")
                    if json.loads(opts) == options]
            for path in sorted(set(paths), key=len):  # outer roots first
                if any(inside(path, outer) and path != outer for outer in same):
                    continue
                inner = [other for other in same if inside(other, path) and other != path]
                conn.executemany("DELETE FROM roots WHERE path = ?", [(other,) for other in inner])
                same = [other for other in same if other not in inner] + [path]
                conn.execute("INSERT OR REPLACE INTO roots (path, options, indexed_at, indexed_gen) "
                             "VALUES (?, ?, ?, ?)", (path, json.dumps(options), time.time(), store.generation))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def forget(store: Store, paths: Iterable[str]) -> None:
    """Forget the recorded roots ``paths`` (text forms); the files stay."""
    paths = list(paths)
    if not paths or not _has_table(store):
        return
    with store._writing() as conn, conn:
        conn.executemany("DELETE FROM roots WHERE path = ?", [(path,) for path in paths])


def roots_under(store: Store, paths: Sequence[str]) -> list[str]:
    """The recorded roots at or inside any of ``paths`` (text forms)."""
    return [root.path for root in recorded(store) if any(inside(root.path, path) for path in paths)]


def inside(path: str, folder: str) -> bool:
    """Whether the text form ``path`` is ``folder`` or lies inside it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def listing(store: Store) -> list[RootInfo]:
    """What the index holds, grouped by root (a file counts under the innermost root holding
    it), then the files under no root, then the texts; with a stat of every indexed file (no
    reading) to find those gone or changed since."""
    roots = {root.path: root for root in recorded(store)}
    with store.snapshot():
        files = {path: (mtime, size) for path, mtime, size in store.db.execute("SELECT path, mtime, size FROM files")}
        counts = {path: (docs, chunks) for path, docs, chunks in store.db.execute(
            "SELECT d.path, count(DISTINCT d.id), count(c.id) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.path")}
        langs = list(store.db.execute("SELECT d.path, c.lang, count(*) FROM chunks c "
                                      "JOIN documents d ON d.id = c.doc_id GROUP BY d.path, c.lang"))
    groups: dict[str | None, _Group] = {path: _Group() for path in roots}
    texts = _Group()
    owner: dict[str, str | None] = {}
    for path, (mtime, size) in files.items():
        if is_text_source(path):
            texts.add(path, counts.get(path, (0, 0)))
            continue
        owner[path] = root = _owner(path, roots)
        group = groups.setdefault(root, _Group())
        group.add(path, counts.get(path, (0, 0)))
        group.check(path, mtime, size)
    for path, lang, n in langs:
        group = texts if is_text_source(path) else groups[owner[path]]
        group.langs[lang or "und"] = group.langs.get(lang or "und", 0) + n
    rows = [groups[path].info("root", path, roots[path].indexed_at, roots[path].options,
                              os.path.exists(text_to_path(path))) for path in sorted(roots)]
    if None in groups:
        rows.append(groups[None].info("unrooted", None, None, {}, True))
    if texts.files:
        rows.append(texts.info("texts", None, None, {}, True))
    return rows


def _owner(path: str, roots: Mapping[str, Root]) -> str | None:
    """The innermost root holding the text form ``path``, if any."""
    folder = path
    while True:
        if folder in roots:
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


class _Group:
    """The counts of one row of :func:`listing`, as they are gathered."""

    def __init__(self) -> None:
        self.files = self.documents = self.chunks = 0
        self.langs: dict[str, int] = {}
        self.missing: list[str] = []
        self.changed: list[str] = []

    def add(self, path: str, counts: tuple[int, int]) -> None:
        self.files += 1
        self.documents += counts[0]
        self.chunks += counts[1]

    def check(self, path: str, mtime: float, size: int) -> None:
        try:
            st = os.stat(text_to_path(path))
        except OSError:
            self.missing.append(path)
            return
        if st.st_size != size or st.st_mtime != mtime:
            self.changed.append(path)

    def info(self, kind: str, path: str | None, indexed_at: float | None, options: dict[str, Any],
             exists: bool) -> RootInfo:
        languages = dict(sorted(self.langs.items(), key=lambda item: (-item[1], item[0])))
        return RootInfo(kind=kind, path=path, files=self.files, documents=self.documents, chunks=self.chunks,
                        languages=languages, indexed_at=indexed_at, options=options, exists=exists,
                        missing_files=len(self.missing), changed_files=len(self.changed),
                        missing=tuple(sorted(self.missing)[:LISTED_PATHS]),
                        changed=tuple(sorted(self.changed)[:LISTED_PATHS]))


__all__ = ["OPTION_NAMES", "Root", "RootInfo", "forget", "inside", "listing", "record", "recorded",
           "roots_under"]
