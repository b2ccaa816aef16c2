"""One indexing run: discover -> extract -> chunk -> embed -> store, incrementally.

Files are compared with what the index holds (size and mtime first, then a content hash);
only new and changed ones are read and embedded. Work is committed in groups of files, each
group in one transaction, so an interrupted run keeps every finished group and the next run
picks up the rest.

A run keeps the encoder busy. One thread reads, detects languages and chunks up to
:data:`PREFETCH_GROUPS` groups ahead of it; the calling thread embeds each group in slices of
about :data:`SLICE_CHUNKS` chunks; another thread picks each slice's content tokens and compresses
them while the next slice is embedded, and commits the group once its last slice is in
(:data:`WRITE_BEHIND_GROUPS`). Memory therefore holds the float32 token vectors of a slice or
two, however large a file: a group waiting for its commit keeps only codes and float16 vectors.
Groups and slices are embedded and committed in the same order, and the same way, as when
every step runs in the calling thread, so the index is the same.

Texts given through the API (:func:`index_texts`) take the same path from language detection
on: each is stored as a source of its own (``text:<id>``) holding one document.

A run writes to a :class:`Target`: the store, the index's settings and its encoder, which is
asked for only when there are files to read, since loading it is slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .embed.encoder import DEFAULT_BATCH_TOKENS, token_budget_batches
from .embed.tokens import content_tokens
from .errors import ExtractionError
from .ingest import chunk_documents, detect_document_languages, discover, extract
from . import runtime
from .runtime import sha256_file
from .store.db import FileState, NewDocument, Store, text_source
from .store.tokens import EncodedTokens, TokenCodec, encode_tokens
from .types import Chunk, ChunkTokens, Document, Skipped, SourceFile, path_to_text

if TYPE_CHECKING:
    from .config import IndexConfig
    from .embed.encoder import Encoder, TokenEmbeddings

T = TypeVar("T")

GROUP_CHUNKS = 512
"""Chunks committed together, about: a group closes with the file that brings it past
``GROUP_CHUNKS * 600`` characters (or :data:`GROUP_FILES` files). A file is never split, so
that its documents appear in one transaction: a very large one makes its group as large, which
costs little, since a group is embedded in slices (:data:`SLICE_CHUNKS`) and kept compressed."""
GROUP_FILES = 64
SLICE_CHUNKS = 64
"""Chunks embedded at once, about. Their float32 token vectors (about 0.4 MB a chunk of 256
tokens at 384 dimensions, with the tokenizer's lists beside them) are compressed before the next
slice's are made. A slice is a run of whole batches of the encoder's batching of the group (at
least two when the group has two), so that every text runs in the batch it would run in were the
group embedded at once: the vectors are those of one call."""
CODEC_SAMPLE_BYTES = 160 * 2**20
"""A new index trains its token codec (see :data:`MODEL_CODEC_BELOW`) on a seeded sample of the
first write's content tokens, or of its first this many bytes of float32 token vectors when it
is larger (about 109,000 tokens at 384 dimensions: more than an ordinary first group holds,
and the first stretch of a very large file); until then they wait uncompressed."""
PREFETCH_GROUPS = 2
"""Groups of files read and chunked ahead of the encoder."""
WRITE_BEHIND_GROUPS = 1
"""Groups embedded and waiting for the thread that commits them."""
MODEL_CODEC_BELOW = 4096
"""A new index whose first write has fewer content tokens than this stores its token vectors with
the model's codec (:meth:`~xsearch.embed.encoder.Encoder.token_codec`, trained on texts in 24
languages); from this many on, it trains its own on them. Measured on bible-nt-7 and data/eval
token vectors: a codec trained on 4,096 tokens of one corpus reconstructs that corpus's other
tokens as well as the model's (mean cosine 0.931 against 0.931) and other texts worse (0.918 to
0.929 against 0.931 to 0.936); trained on fewer it is worse on both, and on its own first tokens
it is better, which is what a small index ranks."""
STAGES = ("scan", "model", "read", "language", "chunk", "embed", "write")
"""The stages a run times (:attr:`IndexReport.stages`), in the order work passes them: ``scan``
lists, compares and hashes files; ``model`` loads the encoder; ``read`` extracts text;
``language`` detects each document's language; ``chunk`` cuts chunks (counting model tokens
and detecting each chunk's language); ``embed`` runs the encoder (sentence and token vectors);
``write`` picks the content tokens, compresses them and commits (SQLite)."""


@dataclass(frozen=True)
class IndexProgress:
    """Where an indexing run stands: reported at each phase and after every committed group."""

    phase: str
    """``"scan"``, ``"load"`` (loading the encoder; only when there are files to read; it
    may already be loaded), ``"embed"`` or ``"done"``."""
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
    """Files the index held under the run's paths that the run no longer found (deleted, or
    reached through a link that is gone or not followed) and forgot; a cancelled run that had
    committed nothing leaves them for the next run and counts 0."""
    files_unchanged: int = 0
    documents_added: int = 0
    chunks_added: int = 0
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    cancelled: bool = False
    """The run was cancelled: what it committed before stays, the rest waits for the next run."""
    stages: Mapping[str, float] = field(default_factory=dict)
    """Seconds spent in each stage (see :data:`STAGES`; ``Index.add_paths`` adds ``"vector index"``
    and ``"links"``). Stages run in threads of their own overlap, so the sum may exceed
    :attr:`seconds`."""

    def to_dict(self) -> dict:
        """The JSON shape of the run summary."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("skipped", "stages")}
        out["skipped"] = [{"path": s.path, "reason": s.reason} for s in self.skipped]
        out["stages"] = dict(self.stages)
        return out


@dataclass(frozen=True)
class Target:
    """Where an indexing run writes."""

    store: Store
    config: IndexConfig
    """The index's settings: chunk size, overlap, whether token vectors are kept."""
    encoder: Callable[[], Encoder]
    """Gives the index's encoder, loading it on first use; called only when there are files to read."""


class StageTimer:
    """Seconds spent in each stage of a run, summed over its groups; usable from several threads."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Count the time spent in the block towards stage ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._seconds[name] = self._seconds.get(name, 0.0) + elapsed

    def seconds(self) -> dict[str, float]:
        """Seconds per stage so far."""
        with self._lock:
            return dict(self._seconds)


def is_under(path: str, roots: Sequence[Path]) -> bool:
    """Whether the stored ``path`` (a text form, see :func:`~xsearch.types.path_to_text`) is one
    of ``roots`` (paths as the operating system names them) or lies inside one of them."""
    texts = [path_to_text(str(root)) for root in roots]
    return any(path == text or path.startswith(text + os.sep) for text in texts)


@dataclass(frozen=True)
class FileScan:
    """What a run found under its paths, compared with the index (:func:`scan_files`)."""

    todo: list[tuple[SourceFile, str]]
    """New and changed files, with their content hashes."""
    touched: list[FileState]
    """Files whose mtime or size changed but whose content did not."""
    removed: list[str]
    """Keys of the files the index holds under the paths that are gone."""
    known: dict[str, FileState]
    """Every file the index held before the run, by key."""
    unchanged: int
    seen: int
    skipped: list[Skipped]


def scan_files(store: Store, paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
               exclude: Sequence[str] = (), max_file_bytes: int | None = None, follow: bool = False,
               listed: Callable[[int], None] | None = None) -> FileScan:
    """Discover the files under ``paths`` (:func:`~xsearch.ingest.discover`) and compare them with
    ``store``: size and mtime first, then the content hash. A file whose content is unchanged is
    only touched (its new mtime recorded); a file the index holds under ``paths`` that discovery
    no longer finds is removed. ``listed`` is called with the number of files found before they
    are hashed. The first step of a run on any engine: only ``todo`` is read."""
    kwargs = {"include": include, "exclude": exclude, "follow": follow}
    if max_file_bytes is not None:
        kwargs["max_bytes"] = max_file_bytes
    sources: list[SourceFile] = []
    skipped: list[Skipped] = []
    for item in discover(list(paths), **kwargs):
        (sources if isinstance(item, SourceFile) else skipped).append(item)
    if listed is not None:
        listed(len(sources))
    known = store.file_states()
    roots = [Path(p).resolve() for p in paths]
    seen = {s.key for s in sources} | {s.path for s in skipped}
    removed = [p for p in known if is_under(p, roots) and p not in seen]
    todo: list[tuple[SourceFile, str]] = []
    touched: list[FileState] = []
    unchanged = 0
    for source in sources:
        state = known.get(source.key)
        if state is not None and (state.size, state.mtime) == (source.size, source.mtime):
            unchanged += 1
            continue
        try:
            digest = sha256_file(source.path)
        except OSError as exc:
            skipped.append(Skipped(source.key, f"unreadable: {exc.strerror or exc}"))
            continue
        if state is not None and state.hash == digest:
            touched.append(FileState(source.key, digest, source.mtime, source.size))
            unchanged += 1
        else:
            todo.append((source, digest))
    return FileScan(todo, touched, removed, known, unchanged, len(sources) + len(skipped), skipped)


def index_paths(target: Target, paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
                exclude: Sequence[str] = (), max_file_bytes: int | None = None, follow: bool = False,
                progress: Callable[[IndexProgress], None] | None = None,
                cancel: threading.Event | None = None, prefetch: int = PREFETCH_GROUPS,
                behind: int = WRITE_BEHIND_GROUPS) -> IndexReport:
    """Bring ``target`` up to date with the files under ``paths`` (see the module docstring).

    Files are found by :func:`~xsearch.ingest.discover` (``follow``: follow symlinks inside
    the folders) and kept under the text form of the path they were found at. A file the index
    holds under ``paths`` that the run no longer finds is removed: deleted, or reached through a
    link that is gone or that the run does not follow.

    Reading (extraction, language detection, chunking) runs in a thread of its own up to
    ``prefetch`` groups of files ahead of embedding, and committing (content tokens, their
    compression, the transaction) in another up to ``behind`` groups after it, so the encoder
    waits on neither; ``0`` runs that step in the calling thread. The index is the same either
    way. ``progress`` is called at each phase and after every committed group, by the thread
    that commits. Setting ``cancel`` stops the run before the next slice is embedded; groups
    embedded whole already are committed, and committed groups stay (a group cut short is
    left for the next run).
    """
    started = time.perf_counter()
    runtime.steady_heap()
    timer = StageTimer()
    notify = progress or (lambda _p: None)
    store = target.store
    with timer.stage("scan"):
        found = scan_files(store, paths, include=include, exclude=exclude, max_file_bytes=max_file_bytes,
                           follow=follow, listed=lambda n: notify(IndexProgress("scan", n, 0, 0)))
    todo, touched, removed, known, skipped = found.todo, found.touched, found.removed, found.known, found.skipped
    with timer.stage("write"):
        if touched:
            store.touch_files(touched)
        if removed and not todo:
            store.replace_files(removed, [])

    if todo:
        notify(IndexProgress("load", len(todo), 0, 0))
        with timer.stage("model"):
            target.encoder()
    notify(IndexProgress("embed", len(todo), 0, 0))
    commits = _Commits(target, timer, known, removed if todo else [], len(todo), notify)
    stop = cancel or threading.Event()
    groups = file_groups(todo, skipped, stop, timer)
    prepared = (prepare_group(target, group, files_done, timer) for group, files_done in groups)
    with closing(prefetched(prepared, prefetch, stop) if prefetch else prepared) as batches, \
            consumed_behind(commits, behind) as commit:
        for batch in batches:
            if stop.is_set():
                break
            for piece in embed_group(target, batch, timer, stop):
                commit(piece)
    cancelled = commits.files_done < len(todo)
    if commits.removed and not cancelled:  # deleted files are forgotten only by a run that saw everything through
        with timer.stage("write"):
            store.replace_files(commits.removed, [])
    notify(IndexProgress("done", len(todo), commits.files_done, commits.chunks))
    return IndexReport(
        files_seen=found.seen,
        files_added=commits.added,
        files_updated=commits.updated,
        files_removed=0 if commits.removed and cancelled else len(removed),
        files_unchanged=found.unchanged,
        documents_added=commits.documents,
        chunks_added=commits.chunks,
        skipped=tuple(found.skipped),
        seconds=time.perf_counter() - started,
        cancelled=cancelled,
        stages=timer.seconds(),
    )


@dataclass(frozen=True)
class TextItem:
    """A text to store as a document of its own."""

    id: str
    text: str
    metadata: Mapping[str, Any]


def index_texts(target: Target, items: Sequence[TextItem], *, behind: int = WRITE_BEHIND_GROUPS) -> None:
    """Store ``items`` as documents without a file, replacing those with the same ids.

    Each text is a source ``text:<id>`` with one document; language detection, chunking,
    embedding and storage are those of files, committed in groups like files (``behind``: as
    :func:`index_paths`).
    """
    runtime.steady_heap()
    timer = StageTimer()
    commits = _Commits(target, timer, {}, [], len(items), lambda _p: None)
    with consumed_behind(commits, behind) as commit:
        for group, done in _text_groups(items):
            for piece in embed_group(target, prepare_group(target, group, done, timer), timer):
                commit(piece)


def _text_groups(items: Sequence[TextItem]) -> Iterator[tuple[list[tuple[FileState, list[Document]]], int]]:
    """The documents of ``items`` in groups, with the count of items done."""
    group: list[tuple[FileState, list[Document]]] = []
    group_chars = 0
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
            yield group, n
            group, group_chars = [], 0


def file_groups(todo: Sequence[tuple[SourceFile, str]], skipped: list[Skipped], stop: threading.Event,
                 timer: StageTimer) -> Iterator[tuple[list[tuple[FileState, list[Document]]], int]]:
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
            with timer.stage("read"):
                docs = extract(source)
        except ExtractionError as exc:
            skipped.append(Skipped(source.key, str(exc)))
            docs = []
        if docs:
            if source.key != source.path:  # documents are kept under the file's key
                docs = [replace(doc, path=source.key) for doc in docs]
            group.append((FileState(source.key, digest, source.mtime, source.size), docs))
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


def prepare_group(target: Target, group: list[tuple[FileState, list[Document]]], files_done: int,
             timer: StageTimer) -> PreparedGroup:
    if not group:
        return PreparedGroup(group, [], [], files_done)
    config = target.config
    count_tokens = target.encoder().count_tokens
    with timer.stage("language"):
        docs = detect_document_languages([doc for _, file_docs in group for doc in file_docs])
    with timer.stage("chunk"):
        chunks = chunk_documents(docs, count_tokens, max_tokens=config.max_tokens, overlap=config.overlap)
    return PreparedGroup(group, docs, chunks, files_done)


@dataclass(frozen=True)
class EmbeddedSlice:
    """Some chunks of a prepared group (see :data:`SLICE_CHUNKS`) with their sentence vectors
    and, if the index keeps them, token vectors."""

    batch: PreparedGroup
    positions: np.ndarray
    """Positions of the slice's chunks among the group's chunks (documents after one another), ascending."""
    vectors: np.ndarray
    """``(chunks, dim)`` float32, in the order of ``positions``."""
    tokens: list[TokenEmbeddings]
    last: bool
    """The group's last slice: the group is embedded whole."""


def embed_group(target: Target, batch: PreparedGroup, timer: StageTimer,
           stop: threading.Event | None = None) -> Iterator[EmbeddedSlice]:
    """The slices of ``batch`` (see :data:`SLICE_CHUNKS`), embedded one after another, with
    the positions of their chunks in order (a group without chunks is one empty slice); setting
    ``stop`` ends them before the next."""
    texts = [c.text for chunks in batch.chunks for c in chunks]
    if not texts:
        yield EmbeddedSlice(batch, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32), [], True)
        return
    encoder = target.encoder()
    with timer.stage("embed"):
        slices = _slices(encoder, texts)
    for n, positions in enumerate(slices):
        if stop is not None and stop.is_set():
            return
        with timer.stage("embed"):
            vectors, tokens = encoder.embed([texts[i] for i in positions], kind="passage",
                                            tokens=target.config.token_vectors)
        yield EmbeddedSlice(batch, np.asarray(positions, dtype=np.int64), vectors, tokens, n == len(slices) - 1)


def _slices(encoder: Encoder, texts: Sequence[str]) -> list[list[int]]:
    """Positions of ``texts`` (ascending) in slices of about :data:`SLICE_CHUNKS`: runs of whole
    batches of :meth:`Encoder.embed`'s batching of all of them, so that a slice embedded on its
    own is batched as it would be among all of them."""
    info = encoder.info
    encodings = encoder.tokenizer.encode([info.passage_prefix + t for t in texts], max_length=info.max_length)
    slices: list[list[int]] = []
    current: list[int] = []
    batches = 0
    for found in token_budget_batches([len(e.ids) for e in encodings], DEFAULT_BATCH_TOKENS):
        current += found
        batches += 1
        if len(current) >= SLICE_CHUNKS and batches >= 2:
            slices.append(sorted(current))
            current, batches = [], 0
    if current:  # the rest: alone only if it is more than one batch
        if batches < 2 and slices:
            slices[-1] = sorted(slices[-1] + current)
        else:
            slices.append(sorted(current))
    return slices


class _Commits:
    """Commits a run's embedded groups, in the order given, and counts what they added.

    Takes each group slice by slice (:class:`EmbeddedSlice`), keeping of a slice only its
    float16 sentence vectors and its compressed content tokens, and commits the group with its
    last slice; a group whose last slice never comes is not committed. Called by one thread at
    a time (the calling thread's, or the one of :func:`consumed_behind`); the counts are read
    once that thread is done.
    """

    def __init__(self, target: Target, timer: StageTimer, known: Mapping[str, FileState], removed: list[str],
                 files_total: int, notify: Callable[[IndexProgress], None]) -> None:
        self.target = target
        self.timer = timer
        self.known = known
        self.removed = removed
        """Sources to remove, in the transaction of the first group committed."""
        self.files_total = files_total
        self.notify = notify
        self.added = self.updated = self.documents = self.chunks = self.files_done = 0
        self._group: PreparedGroup | None = None
        self._vectors = np.zeros((0, 0), dtype=np.float16)
        """The group's sentence vectors, float16, a row a chunk (filled as its slices come)."""
        self._tokens: list[EncodedTokens | None] = []
        """The group's compressed content tokens, an item a chunk (filled as its slices come)."""
        self._waiting: list[tuple[int, ChunkTokens]] = []
        """Content tokens of the index's first write, by position, waiting for the codec they
        will be compressed with."""
        self._chosen: TokenCodec | None = None
        """The codec the run compresses with, once known."""

    def __call__(self, item: EmbeddedSlice) -> None:
        batch = item.batch
        if batch is not self._group:  # a new group (one cut short before it is dropped)
            self._start(batch)
        if batch.group:
            with self.timer.stage("write"):
                self._keep(item)
                if not item.last:
                    return
                self.target.store.replace_files(self.removed, self._new_documents(batch))
            self.removed = []
            updated = sum(state.path in self.known for state, _ in batch.group)
            self.updated += updated
            self.added += len(batch.group) - updated
            self.documents += len(batch.docs)
            self.chunks += sum(len(chunks) for chunks in batch.chunks)
        self._start(None)
        self.files_done = batch.files_done
        self.notify(IndexProgress("embed", self.files_total, self.files_done, self.chunks))

    def _start(self, batch: PreparedGroup | None) -> None:
        """Forget what was kept of the group before and start keeping ``batch``'s."""
        chunks = sum(len(c) for c in batch.chunks) if batch is not None else 0
        self._group, self._vectors, self._waiting = batch, np.zeros((0, 0), dtype=np.float16), []
        self._tokens = [None] * chunks

    def _keep(self, item: EmbeddedSlice) -> None:
        """Keep what the group's commit needs of ``item``: float16 vectors and token codes."""
        if not len(self._vectors):
            self._vectors = np.zeros((len(self._tokens), item.vectors.shape[1]), dtype=np.float16)
        self._vectors[item.positions] = item.vectors
        if not self.target.config.token_vectors:
            return
        kept = list(zip(item.positions.tolist(), (content_tokens(t) for t in item.tokens)))
        codec = self._codec(kept, item.last)
        if codec is None:
            self._waiting += kept
            return
        while self._waiting:  # a slice at a time, each freed once compressed
            part, self._waiting = self._waiting[:SLICE_CHUNKS], self._waiting[SLICE_CHUNKS:]
            self._encode(codec, part)
        self._encode(codec, kept)

    def _encode(self, codec: TokenCodec, kept: list[tuple[int, ChunkTokens]]) -> None:
        for (position, _), encoded in zip(kept, encode_tokens(codec, [t for _, t in kept])):
            self._tokens[position] = encoded

    def _codec(self, kept: list[tuple[int, ChunkTokens]], last: bool) -> TokenCodec | None:
        """The codec to compress with, or None while the first token vectors of a new index wait
        for it: until the first write is embedded whole, or has :data:`CODEC_SAMPLE_BYTES` of them."""
        store = self.target.store
        if self._chosen is None:
            self._chosen = store.token_codec()
        if self._chosen is not None:
            return self._chosen
        first = sorted(self._waiting + kept, key=lambda item: item[0])  # in the order of the chunks
        if not first or not last and sum(t.vectors.nbytes for _, t in first) < CODEC_SAMPLE_BYTES:
            return None
        if last and sum(len(t.vectors) for _, t in first) < MODEL_CODEC_BELOW:
            store.set_token_codec(self.target.encoder().token_codec())
        self._chosen = store.choose_token_codec([t.vectors for _, t in first])
        return self._chosen

    def _new_documents(self, batch: PreparedGroup) -> list[tuple[FileState, list[NewDocument]]]:
        vectors, tokens = self._vectors, self._tokens if self.target.config.token_vectors else None
        added = []
        pos = doc_pos = 0
        for state, file_docs in batch.group:
            new_docs = []
            for _ in file_docs:
                chunks = batch.chunks[doc_pos]
                new_docs.append(NewDocument(batch.docs[doc_pos], chunks, vectors[pos : pos + len(chunks)],
                                            tokens[pos : pos + len(chunks)] if tokens is not None else None))
                pos += len(chunks)
                doc_pos += 1
            added.append((state, new_docs))
        return added


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


@contextmanager
def consumed_behind(consume: Callable[[T], None], depth: int) -> Iterator[Callable[[T], None]]:
    """A function that hands items to ``consume``, which takes them in order in a thread of its
    own, up to ``depth`` items behind (``depth=0``: ``consume`` itself, in this thread).

    An exception in ``consume`` is raised here, at the next hand-over or on leaving, and the
    items still waiting are dropped. Leaving normally waits until every item handed over is
    consumed; leaving with an exception waits only for the item in progress.
    """
    if not depth:
        yield consume
        return
    queue: Queue[Any] = Queue(maxsize=depth)
    failures: list[BaseException] = []
    dropping = threading.Event()

    def run() -> None:
        while (item := queue.get()) is not _END:
            if dropping.is_set():
                continue
            try:
                consume(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
                failures.append(exc)
                dropping.set()

    def hand(item: T) -> None:
        if failures:
            raise failures[0]
        queue.put(item)

    worker = threading.Thread(target=run, name="xsearch-commit", daemon=True)
    worker.start()
    try:
        yield hand
    except BaseException:
        dropping.set()
        raise
    finally:
        queue.put(_END)
        worker.join()
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class _Failure:
    error: BaseException
