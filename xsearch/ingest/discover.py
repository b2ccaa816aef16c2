"""Find the files to index under a set of roots.

Discovery walks folders in sorted order, honours ``.gitignore`` files and the
caller's include/exclude globs, and says why it passes over a file it cannot
use (a :class:`~xsearch.types.Skipped`). Hidden and git-ignored paths are
passed over silently: they were never candidates.

Symlinks are treated as ripgrep and fd treat them: a root that is a link is
followed, links met inside a folder are passed over silently unless the caller
asks to follow them. A file is yielded under the path it was found at (below
its root, whose own path is resolved), never under the path a link points to,
so that a file brought in by a link is forgotten once the link is gone.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pathspec

from xsearch.config import DEFAULT_MAX_FILE_BYTES
from xsearch.errors import UsageError
from xsearch.ingest.extract import SNIFF_BYTES, SUPPORTED_SUFFIXES, looks_like_text
from xsearch.types import Skipped, SourceFile, path_to_text

__all__ = ["discover"]

_Ignores = tuple[tuple[str, pathspec.GitIgnoreSpec], ...]
"""The ``.gitignore`` specs in force: (folder relative to the root, spec), outermost first."""


def discover(
    roots: Sequence[str | os.PathLike[str]],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    follow: bool = False,
) -> Iterator[SourceFile | Skipped]:
    """Yield the files under ``roots`` worth extracting, and those passed over with a reason.

    Each root may be a file or a folder, or a symlink to one (followed, and resolved:
    what lies under a root is found under the root's real path). Folders are walked
    recursively in sorted order. Hidden entries and entries matched by a ``.gitignore``
    at any level of the walk are left out silently, and so are symlinks inside a folder,
    unless ``follow`` is set.

    With ``follow``, symlinked files and folders are followed once every root has been
    walked without them, so that a file reached both directly and through a link is
    yielded once, under its own path; a file reached only through links is yielded under
    the first link's path. A link to a folder that contains it is reported as
    ``"symlink loop"``, a link to nothing as ``"broken symlink"``.

    A :class:`~xsearch.types.SourceFile` holds the path to open the file by (a name
    that is not valid UTF-8 holds lone surrogates; its ``key`` is the text form), a
    :class:`~xsearch.types.Skipped` holds the text form (:func:`~xsearch.types.path_to_text`).

    ``include`` and ``exclude`` are gitignore-style globs matched against the
    path relative to its root (``*.md``, ``docs/**``, ``drafts/``); an empty
    ``include`` selects everything. Files with a suffix in
    :data:`~xsearch.ingest.extract.SUPPORTED_SUFFIXES` are yielded as they are; others are
    yielded only when their first :data:`~xsearch.ingest.extract.SNIFF_BYTES` look like text.

    Raises:
        UsageError: a root does not exist, a glob is malformed, or ``max_bytes``
            is not positive. All of this is checked before anything is yielded.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    for root in roots:
        if not os.path.exists(root):
            raise UsageError(f"no such file or directory: {path_to_text(os.fspath(root))}")
    paths = [os.path.realpath(os.fspath(root)) for root in roots]
    if max_bytes <= 0:
        raise UsageError(f"max_bytes must be positive, got {max_bytes}")
    walker = _Walker(
        include=_compile_globs(include, "include"),
        exclude=_compile_globs(exclude, "exclude"),
        max_bytes=max_bytes,
        follow=follow,
    )
    return walker.walk_roots(paths)


@dataclass(frozen=True)
class _Link:
    """A symlink met in a walk, followed once the roots have been walked."""

    path: str
    rel: str
    is_dir: bool
    ignores: _Ignores
    ancestors: frozenset[str]
    """Real paths of the folders the link lies in, from its root down."""


@dataclass
class _Walker:
    """The state of one :func:`discover` call: its filters and what it has seen."""

    include: pathspec.GitIgnoreSpec | None
    exclude: pathspec.GitIgnoreSpec | None
    max_bytes: int
    follow: bool
    seen_dirs: set[str] = field(default_factory=set)
    seen_files: set[str] = field(default_factory=set)
    """Real paths of the folders walked and the files judged: each is reached once."""
    links: deque[_Link] = field(default_factory=deque)

    def walk_roots(self, paths: list[str]) -> Iterator[SourceFile | Skipped]:
        for path in paths:
            if os.path.isdir(path):
                if path not in self.seen_dirs:
                    self.seen_dirs.add(path)
                    yield from self._walk_dir(path, "", (), frozenset())
            elif self._selected(os.path.basename(path)):
                result = self._check_file(path)
                if result is not None:
                    yield result
        while self.links:
            yield from self._follow(self.links.popleft())

    def _walk_dir(
        self, path: str, rel: str, ignores: _Ignores, ancestors: frozenset[str]
    ) -> Iterator[SourceFile | Skipped]:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except OSError as exc:
            yield Skipped(path_to_text(path), f"unreadable: {_os_reason(exc)}")
            return
        spec = _read_gitignore(os.path.join(path, ".gitignore"))
        if spec is not None:
            ignores = (*ignores, (rel, spec))
        ancestors = ancestors | {os.path.realpath(path)}

        for entry in entries:
            if entry.name.startswith("."):
                continue
            link = entry.is_symlink()
            if link and not self.follow:
                continue
            child = os.path.join(path, entry.name)
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = _is_dir(entry)
            if is_dir:
                if _ignored(ignores, child_rel + "/") or self._excluded(child_rel + "/"):
                    continue
            elif _ignored(ignores, child_rel) or not self._selected(child_rel):
                continue
            if link:
                self.links.append(_Link(child, child_rel, is_dir, ignores, ancestors))
            elif is_dir:
                real = os.path.realpath(child)
                if real not in self.seen_dirs:
                    self.seen_dirs.add(real)
                    yield from self._walk_dir(child, child_rel, ignores, ancestors)
            else:
                result = self._check_file(child)
                if result is not None:
                    yield result

    def _follow(self, link: _Link) -> Iterator[SourceFile | Skipped]:
        if not link.is_dir:
            result = (
                self._check_file(link.path)
                if os.path.exists(link.path)
                else Skipped(path_to_text(link.path), "broken symlink")
            )
            if result is not None:
                yield result
            return
        real = os.path.realpath(link.path)
        if real in link.ancestors:
            yield Skipped(path_to_text(link.path), "symlink loop")
        elif real not in self.seen_dirs:
            self.seen_dirs.add(real)
            yield from self._walk_dir(link.path, link.rel, link.ignores, link.ancestors)

    def _excluded(self, rel: str) -> bool:
        return self.exclude is not None and self.exclude.match_file(rel)

    def _selected(self, rel: str) -> bool:
        if self._excluded(rel):
            return False
        return self.include is None or self.include.match_file(rel)

    def _check_file(self, path: str) -> SourceFile | Skipped | None:
        """The verdict on one file, found at ``path``, or None when it was already seen."""
        try:
            st = os.stat(path)
        except OSError as exc:
            return Skipped(path_to_text(path), f"unreadable: {_os_reason(exc)}")
        real = os.path.realpath(path)
        if real in self.seen_files:
            return None
        self.seen_files.add(real)
        if not stat.S_ISREG(st.st_mode):
            return Skipped(path_to_text(path), "not a regular file")
        if st.st_size == 0:
            return Skipped(path_to_text(path), "empty file")
        if st.st_size > self.max_bytes:
            return Skipped(path_to_text(path), f"larger than {_format_size(self.max_bytes)}")
        suffix = os.path.splitext(path)[1].lower()
        try:
            with open(path, "rb") as handle:
                head = b"" if suffix in SUPPORTED_SUFFIXES else handle.read(SNIFF_BYTES)
        except OSError as exc:
            return Skipped(path_to_text(path), f"unreadable: {_os_reason(exc)}")
        if suffix not in SUPPORTED_SUFFIXES and not looks_like_text(head):
            return Skipped(path_to_text(path), "binary file")
        return SourceFile(path=path, size=st.st_size, mtime=st.st_mtime)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; False for broken ones
    except OSError:
        return False


def _ignored(ignores: _Ignores, rel: str) -> bool:
    """Git's verdict on ``rel``: the deepest ``.gitignore`` with a matching pattern decides."""
    for base, spec in reversed(ignores):
        sub = rel[len(base) + 1 :] if base else rel
        verdict = spec.check_file(sub).include
        if verdict is not None:
            return verdict
    return False


def _read_gitignore(path: str) -> pathspec.GitIgnoreSpec | None:
    """The spec of a ``.gitignore`` file, or None when there is none; bad lines are dropped, as git does."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError:
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)])


def _valid_pattern(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
    except ValueError:
        return False
    return True


def _compile_globs(patterns: Sequence[str], option: str) -> pathspec.GitIgnoreSpec | None:
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        return None
    for pattern in patterns:
        if not _valid_pattern(pattern):
            raise UsageError(f"invalid {option} pattern: {pattern!r}")
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


def _format_size(n_bytes: int) -> str:
    """``52428800`` -> ``"50 MB"`` (binary units, as the limit is usually given)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n_bytes >= scale:
            return f"{round(n_bytes / scale, 1):g} {unit}"
    return f"{n_bytes} bytes"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()
