"""One indexing run: discover -> extract -> chunk -> embed -> store, incrementally.

Files are compared with what the index holds (size and mtime first, then a content hash);
only new and changed ones are read and embedded. Work is committed in groups of files, each
group in one transaction, so an interrupted run keeps every finished group and the next run
picks up the rest.

Texts given through the API (:func:`index_texts`) take the same path from language detection
on: each is stored as a source of its own (``text:<id>``) holding one document.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ExtractionError
from .ingest import chunk_documents, detect_document_languages, discover, extract
from .embed.tokens import content_tokens
from .store.db import FileState, NewDocument, text_source
from .types import Chunk, Document, Skipped, SourceFile

if TYPE_CHECKING:
    from .index import Index

T = TypeVar("T")

GROUP_CHUNKS = 512
"""Chunks embedded and committed together (also the window for sorting by length)."""
GROUP_FILES = 64
PREFETCH_GROUPS = 2
"""Groups of files read and chunked ahead of the encoder."""


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run stands, reported after every committed group."""

    phase: str
    """``"scan"``, ``"embed"`` or ``"done"``."""
    files_total: int
    files_done: int
    chunks_done: int


@dataclass(frozen=True)
class IndexReport:
    """What an indexing run did."""

    files_seen: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_removed: int = 0
    files_unchanged: int = 0
    documents_added: int = 0
    chunks_added: int = 0
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    cancelled: bool = False
    """The run was cancelled: what it committed before stays, the rest waits for the next run."""

    def to_dict(self) -> dict:
        """The JSON shape of the run summary."""
        out = {k: v for k, v in self.__dict__.items() if k != "skipped"}
        out["skipped"] = [{"path": s.path, "reason": s.reason} for s in self.skipped]
        return out


def file_hash(path: str) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_under(path: str, roots: Sequence[Path]) -> bool:
    """Whether ``path`` is one of ``roots`` or lies inside one of them."""
    return any(path == str(root) or path.startswith(str(root) + os.sep) for root in roots)


def index_paths(index: Index, paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
                exclude: Sequence[str] = (), max_file_bytes: int | None = None,
                progress: Callable[[IndexProgress], None] | None = None,
                cancel: threading.Event | None = None, prefetch: int = PREFETCH_GROUPS) -> IndexReport:
    """Bring ``index`` up to date with the files under ``paths`` (see the module docstring).

    Extraction, language detection and chunking run in a thread of their own, up to
    ``prefetch`` groups of files ahead of embedding, so the encoder never waits on a parser
    (``prefetch=0``: all in this thread, one step after the other; the result is the same).
    Setting ``cancel`` stops the run before the next group; finished groups stay committed.
    """
    started = time.perf_counter()
    notify = progress or (lambda _p: None)
    kwargs = {"include": include, "exclude": exclude}
    if max_file_bytes is not None:
        kwargs["max_bytes"] = max_file_bytes
    sources: list[SourceFile] = []
    skipped: list[Skipped] = []
    for item in discover(list(paths), **kwargs):
        (sources if isinstance(item, SourceFile) else skipped).append(item)
    notify(IndexProgress("scan", len(sources), 0, 0))

    known = index.store.file_states()
    roots = [Path(p).resolve() for p in paths]
    seen = {s.path for s in sources} | {s.path for s in skipped}
    removed = [p for p in known if is_under(p, roots) and p not in seen]
    todo: list[tuple[SourceFile, str]] = []
    touched: list[FileState] = []
    unchanged = 0
    for source in sources:
        state = known.get(source.path)
        if state is not None and state.size == source.size and state.mtime == source.mtime:
            unchanged += 1
            continue
        try:
            digest = file_hash(source.path)
        except OSError as exc:
            skipped.append(Skipped(source.path, f"unreadable: {exc.strerror or exc}"))
            continue
        if state is not None and state.hash == digest:
            touched.append(FileState(source.path, digest, source.mtime, source.size))
            unchanged += 1
            continue
        todo.append((source, digest))
    if touched:
        index.store.touch_files(touched)
    if removed and not todo:
        index.store.replace_files(removed, [])

    counts = {"added": 0, "updated": 0, "documents": 0, "chunks": 0, "files_done": 0}
    notify(IndexProgress("embed", len(todo), 0, 0))
    pending_removed = removed if todo else []
    stop = cancel or threading.Event()
    groups = _file_groups(todo, skipped, stop)
    prepared = (_prepare(index, group, files_done) for group, files_done in groups)
    for batch in prefetched(prepared, prefetch, stop) if prefetch else prepared:
        if stop.is_set():
            break
        if batch.group:
            _embed_and_store(index, batch, pending_removed, known, counts)
            pending_removed = []
        counts["files_done"] = batch.files_done
        notify(IndexProgress("embed", len(todo), batch.files_done, counts["chunks"]))
    cancelled = counts["files_done"] < len(todo)
    if cancelled:  # deleted files are forgotten only by a run that saw everything through
        pending_removed = []
    if pending_removed:
        index.store.replace_files(pending_removed, [])
    notify(IndexProgress("done", len(todo), counts["files_done"], counts["chunks"]))
    return IndexReport(
        files_seen=len(sources) + len(skipped),
        files_added=counts["added"],
        files_updated=counts["updated"],
        files_removed=len(removed),
        files_unchanged=unchanged,
        documents_added=counts["documents"],
        chunks_added=counts["chunks"],
        skipped=tuple(skipped),
        seconds=time.perf_counter() - started,
        cancelled=cancelled,
    )


@dataclass(frozen=True)
class TextItem:
    """A text to store as a document of its own."""

    id: str
    text: str
    metadata: Mapping[str, Any]


def index_texts(index: Index, items: Sequence[TextItem]) -> None:
    """Store ``items`` as documents without a file, replacing those with the same ids.

    Each text is a source ``text:<id>`` with one document; language detection, chunking,
    embedding and storage are those of files, committed in groups like files.
    """
    group: list[tuple[FileState, list[Document]]] = []
    group_chars = 0
    counts = {"added": 0, "updated": 0, "documents": 0, "chunks": 0}
    for n, item in enumerate(items, 1):
        source = text_source(item.id)
        metadata = dict(item.metadata)
        body = json.dumps([item.text, metadata], ensure_ascii=False, sort_keys=True).encode()
        state = FileState(source, hashlib.sha256(body).hexdigest(), time.time(), len(item.text.encode()))
        title = metadata.get("title")
        doc = Document(path=source, text=item.text, title=title if isinstance(title, str) else "", metadata=metadata)
        group.append((state, [doc]))
        group_chars += len(item.text)
        if n == len(items) or len(group) >= GROUP_CHUNKS or group_chars >= GROUP_CHUNKS * 600:
            _embed_and_store(index, _prepare(index, group, n), [], {}, counts)
            group, group_chars = [], 0


def _file_groups(todo: Sequence[tuple[SourceFile, str]], skipped: list[Skipped], stop: threading.Event
                 ) -> Iterator[tuple[list[tuple[FileState, list[Document]]], int]]:
    """Extract the files of ``todo`` and yield them in groups, with the count of files done.

    Files that cannot be extracted go to ``skipped``; the last group may be empty (all of its
    files skipped), so that the count reaches the end.
    """
    group: list[tuple[FileState, list[Document]]] = []
    group_chars = 0
    for n, (source, digest) in enumerate(todo, 1):
        if stop.is_set():
            return
        try:
            docs = extract(source)
        except ExtractionError as exc:
            skipped.append(Skipped(source.path, str(exc)))
            docs = []
        if docs:
            group.append((FileState(source.path, digest, source.mtime, source.size), docs))
            group_chars += sum(len(d.text) for d in docs)
        if n == len(todo) or len(group) >= GROUP_FILES or group_chars >= GROUP_CHUNKS * 600:
            yield group, n
            group, group_chars = [], 0


@dataclass(frozen=True)
class PreparedGroup:
    """A group of files read, language-detected and chunked: ready for the encoder."""

    group: list[tuple[FileState, list[Document]]]
    docs: list[Document]
    chunks: list[list[Chunk]]
    files_done: int


def _prepare(index: Index, group: list[tuple[FileState, list[Document]]], files_done: int) -> PreparedGroup:
    if not group:
        return PreparedGroup(group, [], [], files_done)
    config = index.config
    docs = detect_document_languages([doc for _, file_docs in group for doc in file_docs])
    chunks = chunk_documents(docs, index.encoder.count_tokens, max_tokens=config.max_tokens, overlap=config.overlap)
    return PreparedGroup(group, docs, chunks, files_done)


_END = object()


def prefetched(items: Iterator[T], depth: int, stop: threading.Event) -> Iterator[T]:
    """The items of ``items``, produced by a thread of their own up to ``depth`` ahead.

    An exception in the producer is raised here, at the item where it happened. Setting
    ``stop``, or leaving the loop early, ends the producer at its next item.
    """
    queue: Queue[Any] = Queue(maxsize=depth)
    finished = threading.Event()

    def put(item: object) -> bool:
        while not (stop.is_set() or finished.is_set()):
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failure(exc))
            return
        put(_END)

    worker = threading.Thread(target=produce, name="xsearch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = queue.get(timeout=0.1)
            except Empty:
                if stop.is_set() or not worker.is_alive() and queue.empty():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        finished.set()
        worker.join()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _embed_and_store(index: Index, batch: PreparedGroup, removed: Sequence[str],
                     known: dict[str, FileState], counts: dict[str, int]) -> None:
    encoder = index.encoder
    config = index.config
    docs, chunk_lists = batch.docs, batch.chunks
    texts = [c.text for chunks in chunk_lists for c in chunks]
    vectors, token_vectors = encoder.embed(texts, kind="passage", tokens=config.token_vectors)
    kept = [content_tokens(t) for t in token_vectors] if config.token_vectors else None
    added = []
    pos = doc_pos = 0
    for state, file_docs in batch.group:
        new_docs = []
        for _ in file_docs:
            chunks = chunk_lists[doc_pos]
            tokens = kept[pos : pos + len(chunks)] if kept is not None else None
            new_docs.append(NewDocument(docs[doc_pos], chunks, vectors[pos : pos + len(chunks)], tokens))
            pos += len(chunks)
            doc_pos += 1
        added.append((state, new_docs))
        counts["updated" if state.path in known else "added"] += 1
    index.store.replace_files(removed, added)
    counts["documents"] += len(docs)
    counts["chunks"] += pos

