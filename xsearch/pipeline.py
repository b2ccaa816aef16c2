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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExtractionError
from .ingest import chunk_documents, detect_document_languages, discover, extract
from .search.rerank import content_mask
from .store.db import ChunkTokens, FileState, NewDocument, text_source
from .types import Document, Skipped, SourceFile

if TYPE_CHECKING:
    from .embed.encoder import TokenEmbeddings
    from .index import Index

GROUP_CHUNKS = 512
"""Chunks embedded and committed together (also the window for sorting by length)."""
GROUP_FILES = 64


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
                cancel: threading.Event | None = None) -> IndexReport:
    """Bring ``index`` up to date with the files under ``paths`` (see the module docstring).

    Setting ``cancel`` stops the run before the next file; finished groups stay committed.
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
    group: list[tuple[FileState, list[Document]]] = []
    group_chars = 0
    cancelled = False
    for n, (source, digest) in enumerate(todo, 1):
        if cancel is not None and cancel.is_set():
            cancelled, pending_removed = True, []
            break
        try:
            docs = extract(source)
        except ExtractionError as exc:
            skipped.append(Skipped(source.path, str(exc)))
            docs = []
        if docs:
            group.append((FileState(source.path, digest, source.mtime, source.size), docs))
            group_chars += sum(len(d.text) for d in docs)
        if group and (n == len(todo) or len(group) >= GROUP_FILES or group_chars >= GROUP_CHUNKS * 600):
            _embed_and_store(index, group, pending_removed, known, counts)
            pending_removed, group, group_chars = [], [], 0
        counts["files_done"] = n
        if not group:
            notify(IndexProgress("embed", len(todo), n, counts["chunks"]))
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
            _embed_and_store(index, group, [], {}, counts)
            group, group_chars = [], 0


def _embed_and_store(index: Index, group: list[tuple[FileState, list[Document]]], removed: Sequence[str],
                     known: dict[str, FileState], counts: dict[str, int]) -> None:
    encoder = index.encoder
    config = index.config
    docs = detect_document_languages([doc for _, file_docs in group for doc in file_docs])
    chunk_lists = chunk_documents(docs, encoder.count_tokens, max_tokens=config.max_tokens, overlap=config.overlap)
    texts = [c.text for chunks in chunk_lists for c in chunks]
    vectors, token_vectors = encoder.embed(texts, kind="passage", tokens=config.token_vectors)
    kept = [_content_tokens(t) for t in token_vectors] if config.token_vectors else None
    added = []
    pos = doc_pos = 0
    for state, file_docs in group:
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


def _content_tokens(tokens: TokenEmbeddings) -> ChunkTokens:
    """The tokens worth keeping for late interaction: letters, digits and marks only."""
    keep = content_mask(tokens.text, tokens.offsets, tokens.special)
    return ChunkTokens(tokens.offsets[keep], tokens.vectors[keep])
