"""The facade: one object that opens an index, adds files to it and searches it.

The CLI, the terminal UI and the Python API all go through :class:`Index`.

On disk an index is a directory holding ``xsearch.db`` (SQLite: the source of truth,
vectors included) and ``ann-<generation>.faiss`` (the derived vector index). The vector
index is brought up to date from the database's change log whenever it lags behind, so an
interrupted run never leaves an index that cannot be searched.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._version import __version__
from .config import IndexConfig
from .errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError, UsageError
from .store.db import DB_NAME, Store, StoredVectors
from .types import Hit, Skipped

if TYPE_CHECKING:
    from .ann import AnnIndex
    from .embed.encoder import Encoder
    from .pipeline import IndexProgress, IndexReport

ANN_PREFIX = "ann-"
ANN_SUFFIX = ".faiss"
LOCK_NAME = "write.lock"


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

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``xsearch info --json``."""
        return {k: v for k, v in self.__dict__.items() if k != "settings"}


class Index:
    """An xsearch index directory. Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""

    def __init__(self, path: Path, store: Store, *, encoder: Encoder | None = None) -> None:
        self.path = path
        self.store = store
        self.config = IndexConfig.from_settings(store.settings())
        self._encoder = encoder
        self._ann: AnnIndex | None = None
        self._ann_gen = -1

    # opening --------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str], config: IndexConfig | None = None, *,
               encoder: Encoder | None = None) -> Index:
        """Create a new, empty index at ``path`` (the directory may exist but must be empty)."""
        path = Path(path)
        config = config or IndexConfig()
        if (path / DB_NAME).exists():
            raise UsageError(f"{path} already holds an xsearch index")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{path} exists and is not an xsearch index")
        encoder = encoder or _load_encoder(config)
        path.mkdir(parents=True, exist_ok=True)
        store = Store(path, create=True)
        info = encoder.info
        store.set_settings({
            **config.to_settings(),
            "dim": info.dim,
            "query_prefix": info.query_prefix,
            "passage_prefix": info.passage_prefix,
            "factory": "Flat",
            "xsearch_version": __version__,
            "created_at": time.time(),
        })
        return cls(path, store, encoder=encoder)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, model: str | None = None, pooling: str | None = None,
             layer: int | None = None, encoder: Encoder | None = None) -> Index:
        """Open an existing index; ``model``/``pooling``/``layer``, if given, must match it."""
        path = Path(path)
        if not path.exists():
            raise IndexNotFoundError(f"no index at {path} (run `xsearch index FOLDER --index {path}` first)")
        if not (path / DB_NAME).is_file():
            raise IndexNotFoundError(f"{path} is not an xsearch index (no {DB_NAME})")
        index = cls(path, Store(path))
        index._check_matches(model=model, pooling=pooling, layer=layer)
        if encoder is not None:
            index._check_encoder(encoder)
            index._encoder = encoder
        return index

    @classmethod
    def open_or_create(cls, path: str | os.PathLike[str], config: IndexConfig | None = None, *,
                       explicit: Sequence[str] = (), encoder: Encoder | None = None) -> Index:
        """Open the index at ``path`` or create it with ``config``.

        ``explicit`` names the config fields the caller chose on purpose; those must match an
        existing index, the others are taken from it.
        """
        path = Path(path)
        if (path / DB_NAME).is_file():
            config = config or IndexConfig()
            wanted = {name: getattr(config, name) for name in explicit}
            index = cls.open(path, encoder=encoder)
            index._check_matches(**wanted)
            return index
        return cls.create(path, config, encoder=encoder)

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
        """Release the database connection."""
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
            self._encoder = _load_encoder(self.config)
            if self._encoder.dim != self.store.dim:
                raise IndexMismatchError(f"model {self.config.model!r} makes {self._encoder.dim}-d vectors; "
                                         f"index {self.path} holds {self.store.dim}-d vectors")
        return self._encoder

    # writing --------------------------------------------------------------
    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        handle = open(self.path / LOCK_NAME, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise IndexLockedError(f"another xsearch process is writing to {self.path}; try again when it ends") from exc
            yield
        finally:
            handle.close()

    def add_paths(self, paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
                  exclude: Sequence[str] = (), max_file_bytes: int | None = None,
                  progress: Callable[[IndexProgress], None] | None = None) -> IndexReport:
        """Index files and folders incrementally: new and changed files are embedded,
        files deleted under ``paths`` are removed, unchanged ones are left alone."""
        from .pipeline import index_paths

        with self._write_lock():
            report = index_paths(self, paths, include=include, exclude=exclude,
                                 max_file_bytes=max_file_bytes, progress=progress)
            started = time.perf_counter()
            self._sync_ann(save=True)
            return replace(report, seconds=report.seconds + time.perf_counter() - started)

    # the vector index -----------------------------------------------------
    def _ann_files(self) -> dict[int, Path]:
        found = {}
        for file in self.path.glob(f"{ANN_PREFIX}*{ANN_SUFFIX}"):
            stem = file.name[len(ANN_PREFIX) : -len(ANN_SUFFIX)]
            if stem.isdigit():
                found[int(stem)] = file
        return found

    def _sync_ann(self, *, save: bool) -> AnnIndex | None:
        """Bring the vector index up to the database's generation (and save it if asked).

        The newest saved file is loaded and the database's change log since its generation
        (tombstones and newly added chunks) is applied; when the log no longer reaches back
        that far, or the index has outgrown its training, it is rebuilt from the stored vectors.
        """
        from .ann import FaissIndex, build, needs_retrain

        gen = self.store.generation
        if self._ann is not None and self._ann_gen == gen:
            return self._ann
        pruned = int(self.store.get_setting("ann_pruned_gen", 0))
        files = self._ann_files()
        ann, ann_gen = self._ann, self._ann_gen
        if ann is None or ann_gen < pruned:
            usable = [g for g in files if pruned <= g <= gen]
            ann = None
            if usable:
                ann_gen = max(usable)
                try:
                    ann = FaissIndex.load(files[ann_gen])
                except FileNotFoundError:  # replaced by a writer meanwhile
                    ann = None
        if ann is not None and ann.dim != self.store.dim:
            raise IndexCorruptError(f"{files.get(ann_gen)} holds {ann.dim}-d vectors, the index {self.store.dim}-d")
        if ann is not None and ann.factory != "Flat":
            removed, added = self.store.changes_since(ann_gen)
            if len(removed):
                ann.remove(removed)
            if len(added):
                ann.add(added.ids, self._ann_vectors(added))
        if ann is None or ann.factory == "Flat" or needs_retrain(ann, len(ann)):
            # An exact index is cheap to rebuild, and a rebuild applies the current language means.
            stored = self.store.all_vectors()
            ann = build(self._ann_vectors(stored), stored.ids)
        self._ann, self._ann_gen = ann, gen
        if save and gen not in files:
            ann.save(self.path / f"{ANN_PREFIX}{gen}{ANN_SUFFIX}")
            self.store.set_settings({"factory": ann.factory, "ann_pruned_gen": gen})
            self.store.prune_tombstones(gen)
            for old_gen, file in files.items():
                if old_gen != gen:
                    file.unlink(missing_ok=True)
        return ann

    def _ann_vectors(self, stored: StoredVectors) -> np.ndarray:
        from .search.engine import prepare

        return prepare(stored.vectors, stored.langs, self.config.scoring, self.store.language_means())

    # searching ------------------------------------------------------------
    def search(self, query: str, k: int = 10, **options: Any) -> list[Hit]:
        """The ``k`` best passages for ``query``, in any language; options as :meth:`search_batch`."""
        return self.search_batch([query], k, **options)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, langs: Sequence[str] | None = None,
                     mode: str = "dense", scoring: str | None = None, query_lang: str | None = None,
                     rerank: bool = True, group_by: str | None = None) -> list[list[Hit]]:
        """The ``k`` best passages for each query, one list of hits per query.

        - ``langs``: only passages in these languages (still ``k`` when there are ``k``).
        - ``mode``: ``"dense"`` (sentence vectors), ``"lexical"`` (BM25 over trigrams, for exact
          names and codes) or ``"hybrid"`` (both, by reciprocal rank fusion).
        - ``scoring``: ``"centered"`` (language-agnostic) or ``"plain"`` cosine for the dense
          side; the index's setting by default.
        - ``query_lang``: the query's language, instead of detecting it.
        - ``rerank``: rerank the first stage's best candidates by late interaction over
          token vectors (when the index keeps them), which also yields highlights.
        - ``group_by="document"``: each document once, its best chunk first.
        """
        from .search.engine import MODES, RERANK_CANDIDATES, SCORINGS, group_by_document, run_search

        if k < 1:
            raise UsageError("k must be at least 1")
        scoring = scoring or self.config.scoring
        if scoring not in SCORINGS:
            raise UsageError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if group_by not in (None, "document"):
            raise UsageError(f"cannot group by {group_by!r}; only by document")
        if not queries:
            return []
        ann = self._sync_ann(save=False) if mode != "lexical" else None
        encoder = self.encoder if mode != "lexical" else None
        n = k if group_by is None else max(10 * k, 100)
        results = run_search(self.store, ann, encoder, list(queries), n, mode=mode, scoring=scoring, langs=langs,
                             query_lang=query_lang, rerank_candidates=RERANK_CANDIDATES if rerank else 0)
        if group_by == "document":
            return [group_by_document(hits, k) for hits in results]
        return results

    def warm(self) -> None:
        """Load the encoder and the vector index now rather than on the first query."""
        self._sync_ann(save=False)
        _ = self.encoder

    # reporting ------------------------------------------------------------
    def info(self) -> IndexInfo:
        """Counts, languages, model and size of the index."""
        settings = self.store.settings()
        counts = self.store.counts()
        size = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return IndexInfo(
            path=str(self.path), files=counts["files"], documents=counts["documents"], chunks=counts["chunks"],
            languages=self.store.languages(), model=self.config.model, pooling=self.config.pooling,
            layer=self.config.layer, dim=int(settings.get("dim", 0)), index_type=settings.get("factory", "Flat"),
            generation=int(settings.get("generation", 0)), bytes_on_disk=size,
            version=settings.get("xsearch_version", ""), settings=settings,
        )


def _load_encoder(config: IndexConfig) -> Encoder:
    from .embed.encoder import Encoder

    return Encoder.load(config.model, pooling=config.pooling, layer=config.layer)


__all__ = ["Index", "IndexInfo", "Skipped", "default_index_path"]
