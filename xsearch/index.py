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

import contextlib
import fcntl
import functools
import json
import os
import re
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
from .config import ENGINES, IndexConfig
from .errors import (
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexReadOnlyError,
    UnknownLanguageError,
    UsageError,
)
from .store.db import DB_NAME, TEMP_PREFIX, Store, discard_unfinished, probe
from .types import ChunkRow
from .types import Hit, Skipped
from .vectors import VectorIndex

if TYPE_CHECKING:
    from .embed.encoder import Encoder
    from .pipeline import IndexProgress, IndexReport, Target, TextItem
    from .store.roots import Root, RootInfo

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
            self._load_encoder_while(lambda: None)
        assert self._encoder is not None
        return self._encoder

    def _load_encoder_while(self, work: Callable[[], Any]) -> Any:
        """Run ``work`` in this thread while the encoder loads in another (when it is not loaded
        yet), and return what ``work`` returns once both are done.

        A cold search spends about a second compiling the model; reading the vector index and
        the database meanwhile hides that much of its other start-up work. The store is used
        from this thread only (its connection belongs to it).
        """
        with self._encoder_lock:
            if self._encoder is not None:
                return work()
            dim = self.store.dim
            loaded: list[Encoder] = []
            failed: list[BaseException] = []

            def load() -> None:
                try:
                    loaded.append(_load_encoder(self.config, self.backend))
                except BaseException as exc:  # handed to the calling thread below
                    failed.append(exc)

            loader = threading.Thread(target=load, name="xsearch-encoder-load", daemon=True)
            loader.start()
            try:
                result = work()
            finally:
                loader.join()
            if failed:
                raise failed[0]
            encoder = loaded[0]
            if encoder.dim != dim:
                raise IndexMismatchError(f"model {self.config.model!r} makes {encoder.dim}-d vectors; "
                                         f"index {self.path} holds {dim}-d vectors")
            self._encoder = encoder
            return result

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
                  exclude: Sequence[str] = (), max_file_bytes: int | None = None, follow: bool = False,
                  progress: Callable[[IndexProgress], None] | None = None,
                  cancel: threading.Event | None = None, engine: str = "local", master: str | None = None,
                  partitions: int | None = None, staging: str | os.PathLike[str] | None = None) -> IndexReport:
        """Index files and folders incrementally: new and changed files are embedded,
        files deleted under ``paths`` are removed, unchanged ones are left alone.

        Symlinks inside the folders are passed over unless ``follow`` is set (a path given
        that is a link is always followed). A file is kept under the path it was found at, a
        link's path included, so a file a link brought in is removed once the link is gone or
        no longer followed.

        ``progress`` is called as the run goes (from the thread that commits, see
        :func:`~xsearch.pipeline.index_paths`); setting ``cancel`` (from another thread) stops
        it at the next group of files, keeping what was committed (``report.cancelled``).
        ``report.stages`` gives the seconds spent in each stage, the vector index and the
        translation links included.

        ``engine="spark"`` reads, chunks and embeds the new and changed files on Apache Spark
        (``master``: its URL, ``local[*]`` by default; ``partitions``: the number of tasks;
        ``staging``: a folder shared by the driver and the executors for the job's output, the
        index directory by default) and stores the result in one transaction: the documents,
        chunks and vectors a local run stores (a new index's token vectors are compressed with
        the model's codec), and nothing if the job fails (see :mod:`xsearch.spark`).
        """
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if engine != "spark" and (master, partitions, staging) != (None, None, None):
            raise UsageError("master, partitions and staging apply to engine='spark'")
        if engine == "spark":
            from .spark import index_paths, require_spark

            require_spark()
            run: Callable[..., IndexReport] = functools.partial(
                index_paths, folder=self.path, backend=self.backend, master=master, partitions=partitions,
                staging=staging)
        else:
            from .pipeline import index_paths as run

        with self._write_lock():
            report = run(self._target(), paths, include=include, exclude=exclude,
                         max_file_bytes=max_file_bytes, follow=follow, progress=progress, cancel=cancel)
            if not report.cancelled:
                _record_roots(self.store, paths, include=include, exclude=exclude, follow=follow,
                              max_file_bytes=max_file_bytes)
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
            # a path as given (a followed link's files are stored under it) and as resolved
            roots = [*(Path(os.path.abspath(p)) for p in paths or []), *(Path(p).resolve() for p in paths or [])]
            files = [p for p in self.store.file_states() if roots and is_under(p, roots)]
            found += self.store.document_keys_of(files)
            if texts or documents or files:
                self.store.replace_files(texts + files, [], removed_documents=documents)
                self._derive()
        return list(dict.fromkeys(found))

    # roots: what the index was built from -------------------------------
    def roots(self) -> list[RootInfo]:
        """What the index holds, grouped by the folders and files it was indexed from (its
        roots, each with the options it was indexed with and when), then the files under no
        recorded root (an index from before roots were kept) and the texts added through the
        API; with the files gone or changed on disk since (found by a stat, no reading). Reads
        only, so a read-only index lists too."""
        from .store.roots import listing

        return listing(self.store)

    def remove_paths(self, paths: Sequence[str | os.PathLike[str]]) -> Removal:
        """Remove the files indexed at or under each of ``paths`` (on disk or not) and forget
        the roots at or under them; a root of which only a part is removed stays, and its next
        run brings that part back if it is still on disk.

        Every path must match an indexed file or a root, else :class:`UsageError` names the
        first that does not, and nothing is removed."""
        from .pipeline import is_under
        from .store import roots as stored_roots
        from .types import path_to_text

        if isinstance(paths, (str, bytes, os.PathLike)):
            raise UsageError(f"paths must be a list, e.g. paths=[{str(paths)!r}]")
        given = [os.fspath(p) for p in paths]
        if not given:
            raise UsageError("give the paths to remove")
        with self._write_lock():
            states = self.store.file_states()
            files: list[str] = []
            roots: list[str] = []
            unmatched: list[str] = []
            for path in given:
                forms = [Path(os.path.abspath(path)), Path(path).resolve()]
                matched = [f for f in states if is_under(f, forms)]
                under = stored_roots.roots_under(self.store, [path_to_text(str(form)) for form in forms])
                if not matched and not under:
                    unmatched.append(path_to_text(path))
                files += matched
                roots += under
            if unmatched:
                more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
                raise UsageError(f"not in the index: {unmatched[0]}{more}; nothing removed (see `xsearch ls`)")
            files = list(dict.fromkeys(files))
            documents = self.store.document_keys_of(files)
            if files:
                self.store.replace_files(files, [])
            stored_roots.forget(self.store, dict.fromkeys(roots))
            if files:
                self._derive()
        return Removal(files=tuple(files), documents=len(documents), roots=tuple(dict.fromkeys(roots)))

    def sync(self, *, prune: bool = False, progress: Callable[[IndexProgress], None] | None = None,
             cancel: threading.Event | None = None) -> SyncReport:
        """Run :meth:`add_paths` again over every root the index records, each with the options
        it was indexed with: new and changed files are embedded, deleted ones removed.

        A root gone from disk is left alone and named in ``missing``; with ``prune`` it is
        forgotten with its files (:meth:`remove_paths`). :class:`UsageError` if the index
        records no root."""
        from .store.roots import recorded
        from .types import text_to_path

        known = recorded(self.store)
        if not known:
            raise UsageError(f"index {self.path} records no folders to index again; give the files or folders "
                             "to index (an index made before roots were kept records them on its next run)")
        missing = [root.path for root in known if not os.path.exists(text_to_path(root.path))]
        report = self._run_roots([(text_to_path(root.path), root.options) for root in known
                                  if root.path not in missing], progress=progress, cancel=cancel)
        if prune and missing:
            self.remove_paths([text_to_path(path) for path in missing])
        return SyncReport(report, missing=tuple(missing), pruned=bool(prune and missing))

    def _run_roots(self, roots: Sequence[tuple[str, Mapping[str, Any]]], *,
                   progress: Callable[[IndexProgress], None] | None = None,
                   cancel: threading.Event | None = None) -> IndexReport:
        """One :meth:`add_paths` run per set of options over ``roots`` (paths with their options),
        as one report."""
        from .pipeline import IndexReport

        runs: dict[str, list[str]] = {}
        for path, options in roots:
            runs.setdefault(json.dumps(dict(options), sort_keys=True), []).append(path)
        reports = []
        for key, paths in runs.items():
            if cancel is not None and cancel.is_set():
                break
            options = json.loads(key)
            reports.append(self.add_paths(paths, include=options.get("include") or (),
                                          exclude=options.get("exclude") or (), follow=bool(options.get("follow")),
                                          max_file_bytes=options.get("max_file_bytes"), progress=progress,
                                          cancel=cancel))
        return _merged(reports) if reports else IndexReport()

    def watch(self, paths: Sequence[str | os.PathLike[str]] | None = None, *, include: Sequence[str] = (),
              exclude: Sequence[str] = (), max_file_bytes: int | None = None, follow: bool = False,
              on_run: Callable[[IndexReport], None] | None = None, stop: threading.Event | None = None,
              debounce_ms: int = 400) -> None:
        """Keep the index current as files change, until ``stop`` is set.

        First one run over ``paths`` with the options given (:meth:`add_paths`), or with no
        ``paths`` over every recorded root with its own (:meth:`sync`, missing roots left
        alone). Then each batch of changes the file system reports (``watchfiles`` gathers
        them for ``debounce_ms``) starts one run over the roots the changes lie under.
        ``on_run`` gets each run's report, the first one's included. Setting ``stop`` (from a
        signal handler or another thread) cancels a run at its next group of files, keeping
        what it committed, and ends the watch.
        """
        import watchfiles

        from .store.roots import inside
        from .types import text_to_path

        stop = stop or threading.Event()
        notify = on_run or (lambda _report: None)
        if paths is None:
            first = self.sync(cancel=stop)
            roots = [(text_to_path(root.path), root.options) for root in _recorded_roots(self.store)
                     if root.path not in first.missing]
            notify(first.report)
        else:
            options = {"include": list(include), "exclude": list(exclude), "follow": follow,
                       "max_file_bytes": max_file_bytes}
            roots = [(os.fspath(path), options) for path in paths]
            notify(self._run_roots(roots, cancel=stop))
        if not roots or stop.is_set():
            return
        real = [(str(Path(path).resolve()), path, options) for path, options in roots]
        folders = sorted({where if os.path.isdir(where) else os.path.dirname(where) for where, _, _ in real})
        own = str(self.path.resolve())
        for changes in watchfiles.watch(*folders, stop_event=stop, debounce=debounce_ms, step=50,
                                        raise_interrupt=False):
            changed = [path for _, path in changes if not inside(path, own)]
            touched = [(path, options) for where, path, options in real
                       if any(inside(change, where) for change in changed) and os.path.exists(path)]
            if touched:
                notify(self._run_roots(touched, cancel=stop))
            if stop.is_set():
                break

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
        - ``langs``: only passages in these languages (the same as a ``"lang"`` filter). A
          language is a code the index holds, or a tag or name that langcodes maps to one
          (``"deu"``, ``"German"``, ``"Deutsch"``); any other raises
          :class:`~xsearch.errors.UnknownLanguageError` naming the languages the index holds.
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
        Filters.parse(filters, langs=langs)  # the shapes first: a language check needs strings
        filters, langs = self._held_languages(filters, langs)
        checked = Filters.parse(filters, langs=langs)
        scoring = scoring or self.config.scoring
        if scoring not in SCORINGS:
            raise UsageError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if group_by is not None and group_by not in GROUPINGS:
            raise UsageError(f"cannot group by {group_by!r}; choose one of {', '.join(GROUPINGS)}")
        asked = [i for i, q in enumerate(queries) if q.strip()]  # an empty query finds nothing
        if not asked:
            return [[] for _ in queries]
        hits: list[list[Hit]] = [[] for _ in queries]
        with self.store.snapshot():
            if mode == "lexical":
                encoder, ann = None, None
            else:
                ann = self._load_encoder_while(lambda: self.vectors.sync(save=False))
                encoder = self.encoder
            allowed = self.store.chunk_ids_where(*checked.where()) if checked is not None else None
            found = run_search(self.store, ann, encoder, [queries[i] for i in asked], k, mode=mode,
                               scoring=scoring, allowed=allowed, query_lang=query_lang,
                               rerank_candidates=RERANK_CANDIDATES if rerank else 0, feedback=bool(feedback),
                               explain=bool(explain), group_by=group_by, min_score=float(min_score))
        for i, result in zip(asked, found):
            hits[i] = result
        return hits

    def _held_languages(self, filters: Mapping[str, Any] | None,
                        langs: Sequence[str] | None) -> tuple[Mapping[str, Any] | None, list[str] | None]:
        """``filters`` and ``langs`` with every language asked for as one the index holds (a
        name such as ``"German"`` or ``"Deutsch"``, or a three-letter code, becomes its code);
        :class:`UnknownLanguageError` for a language with no passages here."""
        if isinstance(langs, str):
            raise UsageError(f"langs must be a list of language codes, e.g. [{langs!r}]")
        asked = filters.get("lang") if filters is not None else None
        if not langs and asked is None:
            return filters, list(langs) if langs is not None else None
        held = self.languages()
        if asked is not None:
            values = [asked] if isinstance(asked, str) else asked
            filters = {**filters, "lang": [_held_language(value, held) for value in values]}
        return filters, [_held_language(value, held) for value in langs] if langs is not None else None

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
            dim, generation = self.store.dim, self.store.generation  # checked: a damaged value is an error
        return IndexInfo(
            path=str(self.path), files=counts["files"], documents=counts["documents"], chunks=counts["chunks"],
            languages=languages, model=self.config.model, pooling=self.config.pooling,
            layer=self.config.layer, dim=dim, index_type=settings.get("factory", "Flat"),
            generation=generation, bytes_on_disk=_bytes_in(self.path),
            version=settings.get("xsearch_version", ""), settings=settings, texts=counts["texts"],
            translations=links,
        )


@dataclass(frozen=True)
class Removal:
    """What :meth:`Index.remove_paths` removed."""

    files: tuple[str, ...]
    """The files removed (text forms, see :func:`~xsearch.types.path_to_text`)."""
    documents: int
    roots: tuple[str, ...]
    """The roots forgotten."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``xsearch rm --json``."""
        return {"files": len(self.files), "documents": self.documents, "roots": list(self.roots),
                "removed": list(self.files)}


@dataclass(frozen=True)
class SyncReport:
    """What :meth:`Index.sync` did."""

    report: IndexReport
    """The runs over the roots still on disk, as one report."""
    missing: tuple[str, ...] = ()
    """Recorded roots no longer on disk."""
    pruned: bool = False
    """Whether the missing roots were forgotten with their files."""


def _merged(reports: Sequence[IndexReport]) -> IndexReport:
    """Several runs' reports as one: counts and seconds summed."""
    stages: dict[str, float] = {}
    for report in reports:
        for name, seconds in report.stages.items():
            stages[name] = stages.get(name, 0.0) + seconds
    summed = {name: sum(getattr(r, name) for r in reports)
              for name in ("files_seen", "files_added", "files_updated", "files_removed", "files_unchanged",
                           "documents_added", "chunks_added", "seconds")}
    return replace(reports[0], **summed, skipped=tuple(s for r in reports for s in r.skipped),
                   cancelled=any(r.cancelled for r in reports), stages=stages)


def _record_roots(store: Store, paths: Sequence[str | os.PathLike[str]], **options: Any) -> None:
    """Record ``paths`` as the index's roots (real absolute paths, as their files are stored)."""
    from .store.roots import record
    from .types import path_to_text

    record(store, [path_to_text(str(Path(path).resolve())) for path in paths], options)


def _recorded_roots(store: Store) -> list[Root]:
    from .store.roots import recorded

    return recorded(store)


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


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
LANGUAGES_SHOWN = 40
"""Most of the index's languages an unknown-language error lists."""


def _held_language(value: str, held: Mapping[str, int]) -> str:
    """``value`` as the code of a language ``held`` has passages in: the code itself, or the
    code that :mod:`langcodes` gives a tag (``deu``, ``pt-BR``) or a name in any language
    (``German``, ``Deutsch``, ``allemand``)."""
    if value in held:
        return value
    codes = _language_codes(value)
    found = next((code for code in codes if code in held), None)
    if found is not None:
        return found
    shown = sorted(held)
    holds = (", ".join(shown[:LANGUAGES_SHOWN]) + (", …" if len(shown) > LANGUAGES_SHOWN else "")) if shown \
        else "no passages yet"
    if not codes:
        named = " (not a language code or a language name known here; give codes such as de,ja)"
    else:
        named = f" ({codes[0]})" if codes[0] != value.lower() else ""
    raise UnknownLanguageError(f"no documents in {value!r}{named}; this index holds {holds}", tuple(shown))


def _language_codes(value: str) -> list[str]:
    """The languages ``value`` may mean, as langcodes reads it: a language tag's language
    (``deu`` is ``de``), then the language of that name; empty when it is neither."""
    import langcodes

    codes = []
    if _LANGUAGE_TAG.fullmatch(value):
        with contextlib.suppress(ValueError):  # langcodes' LanguageTagError: not a well-formed tag
            codes.append(langcodes.Language.get(value).language)
    with contextlib.suppress(LookupError):  # no language has this name
        codes.append(langcodes.find(value).language)
    return [str(code) for code in dict.fromkeys(codes) if code]


def _load_encoder(config: IndexConfig, backend: str | None) -> Encoder:
    from .embed.encoder import Encoder

    return Encoder.load(config.model, pooling=config.pooling, layer=config.layer, backend=backend)


__all__ = ["Index", "IndexInfo", "Removal", "Skipped", "SyncReport", "default_index_path"]
