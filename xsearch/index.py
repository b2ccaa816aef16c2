"""The facade: one object that opens an index, adds files to it and searches it.

The CLI, the terminal UI, the HTTP service and the Python API all go through :class:`Index`.

On disk an index is a directory holding ``xsearch.db`` (SQLite: the source of truth,
vectors included) and ``ann-<generation>.faiss`` (the derived vector index). The vector
index is brought up to date from the database's change log whenever it lags behind, so an
interrupted run never leaves an index that cannot be searched.

One open :class:`Index` may be searched from many threads while one thread writes to it:
searches read the last committed state (see :mod:`xsearch.store.db`), and the vector index
is replaced, never changed, while searches may be using it. A second process that tries to
write gets :class:`IndexLockedError`.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .config import IndexConfig
from .errors import IndexLockedError, IndexMismatchError, IndexNotFoundError, IndexReadOnlyError, UsageError
from .store.db import DB_NAME, TEMP_PREFIX, Store, discard_unfinished, probe
from .types import ChunkRow
from .types import Hit, Skipped
from .vectors import VectorIndex

if TYPE_CHECKING:
    from .embed.encoder import Encoder
    from .pipeline import IndexProgress, IndexReport, Target, TextItem

LOCK_NAME = "write.lock"
_LEFTOVERS = {LOCK_NAME, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"}
"""What an interrupted creation may leave in a folder that :meth:`Index.create` then reuses."""
MAX_ID_CHARS = 1024
"""Longest document id ``add_texts`` accepts."""


def default_index_path() -> Path:
    """``$XSEARCH_INDEX`` if set, else ``./indexes/default``."""
    return Path(os.environ.get("XSEARCH_INDEX") or Path("indexes") / "default")


@dataclass(frozen=True)
class IndexInfo:
    """A summary of an index, as ``xsearch info`` prints it."""

    path: str
    files: int
    documents: int
    chunks: int
    languages: dict[str, int]
    model: str
    pooling: str
    layer: int | None
    dim: int
    index_type: str
    generation: int
    bytes_on_disk: int
    version: str
    settings: dict[str, Any] = field(default_factory=dict)
    texts: int = 0
    """Documents added as texts (``Index.add_texts``) rather than from files."""
    translations: int = 0
    """Pairs of chunks linked as translations of each other (see :mod:`xsearch.translations`)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``xsearch info --json``."""
        return {k: v for k, v in self.__dict__.items() if k != "settings"}


class Index:
    """An xsearch index directory. Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, path: Path, store: Store, *, encoder: Encoder | None = None,
                 backend: str | None = None) -> None:
        self.path = path
        self.backend = backend
        """How the encoder runs when the index loads it (see :data:`~xsearch.config.BACKENDS`)."""
        self.store = store
        self.config = IndexConfig.from_settings(store.settings())
        self.vectors = VectorIndex(path, store, self.config.scoring)
        """The vector index derived from the store (see :mod:`xsearch.vectors`)."""
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._writer_lock = threading.Lock()

    # opening --------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], config: IndexConfig | None = None, *,
               model: str | None = None, pooling: str | None = None, layer: int | None = None,
               max_tokens: int | None = None, overlap: int | None = None, scoring: str | None = None,
               token_vectors: bool | None = None, encoder: Encoder | None = None,
               backend: str | None = None) -> Index:
        """Create a new, empty index at ``path`` (the directory may exist but must be empty).

        Its settings are ``config``'s (the defaults if None) with the keywords given on top,
        e.g. ``Index.create("idx", model="multilingual-e5-small", pooling="mean")``; they are
        saved in the index and used by every later write and query (see :class:`IndexConfig`).
        ``backend`` says how the encoder runs in this process (``"torch"`` or ``"onnx"``).
        """
        from .config import SCORINGS

        path = Path(path)
        chosen = {"model": model, "pooling": pooling, "layer": layer, "max_tokens": max_tokens,
                  "overlap": overlap, "scoring": scoring, "token_vectors": token_vectors}
        if config is None and encoder is not None:  # the encoder given decides the model
            config = IndexConfig(model=encoder.info.model, pooling=encoder.info.pooling, layer=encoder.info.layer)
        config = replace(config or IndexConfig(), **{k: v for k, v in chosen.items() if v is not None})
        if encoder is not None:
            have = (encoder.info.model, encoder.info.pooling, encoder.info.layer)
            if have != (config.model, config.pooling, config.layer):
                raise IndexMismatchError(f"the encoder given is {have[0]!r} (pooling {have[1]}, layer {have[2]}), "
                                         f"not the {config.model!r} (pooling {config.pooling}, layer {config.layer}) "
                                         "asked for")
        if config.scoring not in SCORINGS:
            raise UsageError(f"unknown scoring {config.scoring!r}; choose one of {', '.join(SCORINGS)}")
        kind = probe(path) if path.is_dir() else "missing"
        if kind == "index":
            raise UsageError(f"{path} already holds an xsearch index")
        if kind == "foreign":
            raise UsageError(f"{path / DB_NAME} is another program's database, not an xsearch index")
        if path.exists() and (not path.is_dir() or any(p.name not in _LEFTOVERS and not p.name.startswith(TEMP_PREFIX)
                                                       for p in path.iterdir())):
            raise UsageError(f"{path} exists and is not an xsearch index")
        encoder = encoder or _load_encoder(config, backend)
        path.mkdir(parents=True, exist_ok=True)
        discard_unfinished(path)  # what an interrupted creation left, if anything
        info = encoder.info
        store = Store(path, create=True, settings={
            **config.to_settings(),
            "dim": info.dim,
            "query_prefix": info.query_prefix,
            "passage_prefix": info.passage_prefix,
            "factory": "Flat",
            "xsearch_version": __version__,
            "created_at": time.time(),
        })
        return cls(path, store, encoder=encoder, backend=backend)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, model: str | None = None, pooling: str | None = None,
             layer: int | None = None, encoder: Encoder | None = None, backend: str | None = None,
             readonly: bool | None = None) -> Index:
        """Open an existing index; ``model``/``pooling``/``layer``, if given, must match it.

        The database is read before anything is written to it: another program's file is
        refused untouched. ``readonly`` (by default: when the index may not be written) opens it
        for searching only; writes then raise :class:`IndexReadOnlyError`.
        """
        path = Path(path)
        if not path.exists():
            raise IndexNotFoundError(f"no index at {path} (run `xsearch index FOLDER --index {path}` first)")
        if not (path / DB_NAME).is_file():
            raise IndexNotFoundError(f"{path} is not an xsearch index (no {DB_NAME})")
        index = cls(path, Store(path, readonly=readonly), backend=backend)
        index._check_matches(model=model, pooling=pooling, layer=layer)
        if encoder is not None:
            index._check_encoder(encoder)
            index._encoder = encoder
        return index

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], config: IndexConfig | None = None, *,
                       explicit: Sequence[str] = (), encoder: Encoder | None = None,
                       backend: str | None = None) -> Index:
        """Open the index at ``path`` or create it with ``config``.

        ``explicit`` names the config fields the caller chose on purpose; those must match an
        existing index, the others are taken from it.
        """
        path = Path(path)
        if path.is_dir() and probe(path) not in ("unfinished", "missing"):
            config = config or IndexConfig()
            wanted = {name: getattr(config, name) for name in explicit}
            index = cls.open(path, encoder=encoder, backend=backend)
            index._check_matches(**wanted)
            return index
        return cls.create(path, config, encoder=encoder, backend=backend)

    def _check_matches(self, **wanted: Any) -> None:
        for name, value in wanted.items():
            if value is None and name != "layer":
                continue
            have = getattr(self.config, name)
            if name == "layer" and value is None:
                continue
            if value != have:
                raise IndexMismatchError(
                    f"index {self.path} was built with {name}={have!r}, not {value!r}; "
                    "use the index's setting or another --index"
                )

    def _check_encoder(self, encoder: Encoder) -> None:
        info = encoder.info
        if (info.model, info.pooling, info.layer) != (self.config.model, self.config.pooling, self.config.layer):
            raise IndexMismatchError(
                f"index {self.path} was built with model {self.config.model!r} (pooling {self.config.pooling}, "
                f"layer {self.config.layer}), not {info.model!r} (pooling {info.pooling}, layer {info.layer})"
            )

    def close(self) -> None:
        """Release the database connections (of every thread)."""
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the encoder ----------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The index's encoder, loaded on first use."""
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    encoder = _load_encoder(self.config, self.backend)
                    if encoder.dim != self.store.dim:
                        raise IndexMismatchError(f"model {self.config.model!r} makes {encoder.dim}-d vectors; "
                                                 f"index {self.path} holds {self.store.dim}-d vectors")
                    self._encoder = encoder
        return self._encoder

    # writing --------------------------------------------------------------
    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer: threads of this process wait their turn, another process is refused."""
        if self.store.readonly:
            raise IndexReadOnlyError(f"index {self.path} is read-only: it can be searched but not changed")
        with self._writer_lock:
            try:
                handle = open(self.path / LOCK_NAME, "a+")
            except OSError as exc:
                raise IndexLockedError(f"cannot take the write lock {self.path / LOCK_NAME}: "
                                       f"{exc.strerror or exc}; remove it if no xsearch process is running") from exc
            try:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError as exc:
                    raise IndexLockedError(
                        f"another xsearch process is writing to {self.path}; try again when it ends") from exc
                yield
            finally:
                handle.close()

    def _target(self) -> Target:
        """What an indexing run writes to; the encoder is loaded only if the run has text to embed."""
        from .pipeline import Target

        return Target(self.store, self.config, lambda: self.encoder)

    def add_paths(self, paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
                  exclude: Sequence[str] = (), max_file_bytes: int | None = None,
                  progress: Callable[[IndexProgress], None] | None = None,
                  cancel: threading.Event | None = None) -> IndexReport:
        """Index files and folders incrementally: new and changed files are embedded,
        files deleted under ``paths`` are removed, unchanged ones are left alone.

        ``progress`` is called as the run goes (from the thread that commits, see
        :func:`~xsearch.pipeline.index_paths`); setting ``cancel`` (from another thread) stops
        it at the next group of files, keeping what was committed (``report.cancelled``).
        ``report.stages`` gives the seconds spent in each stage, the vector index and the
        translation links included.
        """
        from .pipeline import index_paths

        with self._write_lock():
            report = index_paths(self._target(), paths, include=include, exclude=exclude,
                                 max_file_bytes=max_file_bytes, progress=progress, cancel=cancel)
            started = time.perf_counter()
            stages = self._derive()
            return replace(report, seconds=report.seconds + time.perf_counter() - started,
                           stages={**report.stages, **stages})

    def add_texts(self, texts: Sequence[str], metadata: Sequence[Mapping[str, Any] | None] | None = None,
                  ids: Sequence[str | None] | None = None) -> list[str]:
        """Store texts as documents of their own (no file) and return their ids, in order.

        Each text is language-detected, chunked, embedded and stored like a file. ``metadata``
        holds one JSON-serialisable dict (or None) per text, kept with it for filters and hits;
        a string ``"title"`` in it also becomes the hits' title. ``ids`` holds your own id
        (or None for a generated one) per text; adding under an id that exists replaces
        that document.
        """
        from .pipeline import index_texts

        items = _text_items(texts, metadata, ids)
        if items:
            with self._write_lock():
                index_texts(self._target(), items)
                self._derive()
        return [item.id for item in items]

    def remove(self, ids: Sequence[str] | None = None, *,
               paths: Sequence[str | os.PathLike[str]] | None = None) -> list[str]:
        """Remove documents by id, and everything indexed at or under ``paths``.

        Returns the ids of the documents removed; unknown ids and paths remove nothing. A
        document of a file removed by id stays out of the index until its file changes and is
        indexed again; removing by path forgets the file.
        """
        from .pipeline import is_under

        if ids is None and paths is None:
            raise UsageError("give the ids or the paths to remove")
        for name, values in (("ids", ids), ("paths", paths)):
            if isinstance(values, (str, bytes, os.PathLike)):
                raise UsageError(f"{name} must be a list, e.g. {name}=[{str(values)!r}]")
        if ids is not None and not all(isinstance(key, str) for key in ids):
            raise UsageError("document ids are strings")
        with self._write_lock():
            texts, documents, found = self.store.find_documents(list(ids or []))
            roots = [Path(p).resolve() for p in paths or []]
            files = [p for p in self.store.file_states() if roots and is_under(p, roots)]
            found += self.store.document_keys_of(files)
            if texts or documents or files:
                self.store.replace_files(texts + files, [], removed_documents=documents)
                self._derive()
        return list(dict.fromkeys(found))

    def _derive(self) -> dict[str, float]:
        """After a write: bring the vector index up to date and save it, then link the new
        chunks to their translations (see :mod:`xsearch.translations`). Returns the seconds
        each took, as the stages ``"vector index"`` and ``"links"``."""
        from .pipeline import StageTimer
        from .translations import update_links

        timer = StageTimer()
        with timer.stage("vector index"):
            ann = self.vectors.sync(save=True)
        with timer.stage("links"):
            update_links(self.store, ann, self.config.scoring)
        return timer.seconds()

    # searching ------------------------------------------------------------
    def search(self, query: str, k: int = 10, *, filters: Mapping[str, Any] | None = None,
               langs: Sequence[str] | None = None, mode: str = "dense", scoring: str | None = None,
               query_lang: str | None = None, rerank: bool = True, feedback: bool = True,
               group_by: str | None = None, min_score: float = 0.0, explain: bool = False) -> list[Hit]:
        """The ``k`` best passages for ``query``, in any language; options as :meth:`search_batch`."""
        if not isinstance(query, str):
            raise UsageError(f"query must be a string, not {type(query).__name__}")
        return self.search_batch([query], k, filters=filters, langs=langs, mode=mode, scoring=scoring,
                                 query_lang=query_lang, rerank=rerank, feedback=feedback, group_by=group_by,
                                 min_score=min_score, explain=explain)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, filters: Mapping[str, Any] | None = None,
                     langs: Sequence[str] | None = None, mode: str = "dense", scoring: str | None = None,
                     query_lang: str | None = None, rerank: bool = True, feedback: bool = True,
                     group_by: str | None = None, min_score: float = 0.0,
                     explain: bool = False) -> list[list[Hit]]:
        """The ``k`` best passages for each query, one list of hits per query.

        - ``filters``: which passages may be returned, e.g. ``{"lang": ["de", "ja"]}``,
          ``{"path": "*.md"}``, ``{"topic": "biology"}`` or ``{"year": {"in": [2023, 2024]}}``
          (every entry must hold; see :mod:`xsearch.search.filters`). Filters apply before the
          top ``k`` is cut, so ``k`` hits come back whenever ``k`` passages match.
        - ``langs``: only passages in these languages (the same as a ``"lang"`` filter).
        - ``mode``: ``"dense"`` (sentence vectors), ``"lexical"`` (BM25 over trigrams, for exact
          names and codes) or ``"hybrid"`` (both, by reciprocal rank fusion).
        - ``scoring``: ``"centered"`` (language-agnostic) or ``"plain"`` cosine for the dense
          side; the index's setting by default.
        - ``query_lang``: the query's language, instead of detecting it.
        - ``rerank``: rerank the first stage's best candidates by late interaction over
          token vectors (when the index keeps them), which also yields highlights.
        - ``feedback``: pull up the language versions of each query's best hit (the chunks
          linked to it as translations when the index was built; see
          :mod:`xsearch.search.feedback`). Dense and hybrid modes.
        - ``group_by="document"``: each document once, its best chunk first;
          ``group_by="translation"``: each passage once, its language versions in
          ``Hit.translations``.
        - ``min_score``: only hits whose score (in [0, 1], see :attr:`Hit.score`) reaches it.
        - ``explain``: each hit's ``explain`` says why it matched (every stage's score, the
          feedback it got, the query words aligned to its words).
        """
        from .config import GROUPINGS, MAX_K, MODES, SCORINGS
        from .search.engine import RERANK_CANDIDATES, run_search
        from .search.filters import Filters

        if isinstance(queries, str):
            raise UsageError("queries must be a list of strings (for one query: search())")
        queries = list(queries)
        if not all(isinstance(q, str) for q in queries):
            raise UsageError("queries must be a list of strings")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise UsageError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1:
            raise UsageError(f"min_score must be a number from 0 to 1, not {min_score!r}")
        k = int(k)
        checked = Filters.parse(filters, langs=langs)
        scoring = scoring or self.config.scoring
        if scoring not in SCORINGS:
            raise UsageError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if group_by is not None and group_by not in GROUPINGS:
            raise UsageError(f"cannot group by {group_by!r}; choose one of {', '.join(GROUPINGS)}")
        if not queries:
            return []
        encoder = self.encoder if mode != "lexical" else None
        with self.store.snapshot():
            ann = self.vectors.sync(save=False) if mode != "lexical" else None
            allowed = self.store.chunk_ids_where(*checked.where()) if checked is not None else None
            return run_search(self.store, ann, encoder, queries, k, mode=mode, scoring=scoring,
                              allowed=allowed, query_lang=query_lang,
                              rerank_candidates=RERANK_CANDIDATES if rerank else 0, feedback=bool(feedback),
                              explain=bool(explain), group_by=group_by, min_score=float(min_score))

    def context(self, chunk_id: int, *, before: int = 1, after: int = 1) -> list[ChunkRow]:
        """The chunk ``chunk_id`` with up to ``before``/``after`` neighbours of its document, in order."""
        return self.store.chunk_context(chunk_id, before=before, after=after)

    def warm(self) -> None:
        """Load the encoder and the vector index now, and run the encoder once at each query
        width, rather than on the first queries."""
        self.vectors.sync(save=False)
        self.encoder.warm()

    # reporting ------------------------------------------------------------
    def languages(self) -> dict[str, int]:
        """Chunk counts per language, most frequent first, e.g. ``{"de": 120, "ja": 48}``."""
        return self.store.languages()

    def info(self) -> IndexInfo:
        """Counts, languages, model and size of the index."""
        with self.store.snapshot():
            settings = self.store.settings()
            counts = self.store.counts()
            languages = self.store.languages()
            links = self.store.link_count()
        return IndexInfo(
            path=str(self.path), files=counts["files"], documents=counts["documents"], chunks=counts["chunks"],
            languages=languages, model=self.config.model, pooling=self.config.pooling,
            layer=self.config.layer, dim=int(settings.get("dim", 0)), index_type=settings.get("factory", "Flat"),
            generation=int(settings.get("generation", 0)), bytes_on_disk=_bytes_in(self.path),
            version=settings.get("xsearch_version", ""), settings=settings, texts=counts["texts"],
            translations=links,
        )


def _bytes_in(folder: Path) -> int:
    """Total size of the files in ``folder`` (one removed meanwhile by a writer counts 0)."""
    total = 0
    for file in folder.iterdir():
        try:
            if file.is_file():
                total += file.stat().st_size
        except FileNotFoundError:
            continue
    return total


def _text_items(texts: Sequence[str], metadata: Sequence[Mapping[str, Any] | None] | None,
                ids: Sequence[str | None] | None) -> list[TextItem]:
    """Check the arguments of :meth:`Index.add_texts` and pair them up, making ids where missing."""
    from .ingest.extract import check_metadata
    from .pipeline import TextItem

    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise UsageError("texts must be a list of strings (for one text: [text])")
    for name, values in (("metadata", metadata), ("ids", ids)):
        if values is None:
            continue
        if isinstance(values, (str, Mapping)) or not isinstance(values, Sequence):
            raise UsageError(f"{name} must be a list with one entry per text")
        if len(values) != len(texts):
            raise UsageError(f"{len(texts)} texts but {len(values)} {name}: give one per text")
    items = []
    for n, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"text {n} is {'empty' if isinstance(text, str) else type(text).__name__}; "
                             "texts must be non-empty strings")
        meta = metadata[n] if metadata is not None else None
        if meta is None:
            meta = {}
        if not isinstance(meta, Mapping) or not all(isinstance(key, str) for key in meta):
            raise UsageError(f"metadata {n} must be a dict with string keys, not {meta!r}")
        try:
            json.dumps(meta, allow_nan=False)
            meta = check_metadata(meta)
        except (TypeError, ValueError, RecursionError) as exc:
            raise UsageError(f"metadata {n} cannot be stored: {exc or 'nested too deeply'}") from exc
        key = ids[n] if ids is not None else None
        if key is None:
            key = uuid.uuid4().hex
        elif not isinstance(key, str) or not key or len(key) > MAX_ID_CHARS or not key.isprintable():
            raise UsageError(f"id {n} ({key!r}) must be a non-empty printable string of at most {MAX_ID_CHARS} "
                             "characters")
        items.append(TextItem(key, text, meta))
    if len({item.id for item in items}) != len(items):
        raise UsageError("ids must be unique within one call")
    return items


def _load_encoder(config: IndexConfig, backend: str | None) -> Encoder:
    from .embed.encoder import Encoder

    return Encoder.load(config.model, pooling=config.pooling, layer=config.layer, backend=backend)


__all__ = ["Index", "IndexInfo", "Skipped", "default_index_path"]
