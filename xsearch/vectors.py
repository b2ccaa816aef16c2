"""An index's vector index: derived from the database, kept up to its generation, saved beside it.

On disk it is ``ann-<generation>.<backend>`` (``ann-12.faiss``) next to ``xsearch.db``, with
``ann-<generation>.ivfdata`` beside it when the index was merged from shards (its inverted lists,
memory-mapped when loaded; see :mod:`xsearch.ann.shards`); the database is the source of truth,
so the files only ever lag behind it. :meth:`VectorIndex.sync` loads the newest file and replays
the database's change log since its generation, or rebuilds from the stored vectors when the log
no longer reaches back that far or the index has outgrown its training. Saving a generation
removes every file of older ones.

A merged index stays memory-mapped while nothing changes. Replaying a change onto it reads its
lists into memory first (they are never written in place, under the searches of other
processes), and the next save writes it as one file again: right for a corpus whose codes fit
in the writer's memory; past that, the index is rebuilt in shards rather than changed in place.

Searches may use the vector index :meth:`~VectorIndex.sync` returned while a writer brings it up
to date: a vector index that may be in use is never changed; changes go to a copy, which then
replaces it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .ann import DEFAULT_BACKEND, AnnIndex, build, load, needs_retrain
from .embed.centering import prepare
from .errors import IndexCorruptError
from .store.db import Store, StoredVectors

ANN_PREFIX = "ann-"
PRUNED_SETTING = "ann_pruned_gen"
"""Setting holding the generation of the last saved file: tombstones before it are gone."""


class VectorIndex:
    """The vector index of the index directory ``folder``, derived from ``store``.

    ``scoring`` is the index's scoring (see :func:`xsearch.embed.centering.prepare`): vectors
    are centred by language for ``"centered"``. ``backend`` names the ANN backend (see
    :data:`xsearch.ann.BACKENDS`) and the files' suffix.
    """

    def __init__(self, folder: Path, store: Store, scoring: str, *, backend: str = DEFAULT_BACKEND) -> None:
        self.folder = folder
        self.store = store
        self.scoring = scoring
        self.backend = backend
        self._ann: AnnIndex | None = None
        self._gen = -1
        self._lock = threading.Lock()

    def sync(self, *, save: bool) -> AnnIndex:
        """The vector index at the database's generation, brought up to it if needed (and saved
        if ``save``).

        The newest saved file is loaded and the database's change log since its generation
        (tombstones and newly added chunks) is applied; when the log no longer reaches back
        that far, or the index has outgrown its training, it is rebuilt from the stored vectors.
        """
        with self._lock:
            gen = self.store.generation
            ann = self._ann
            if ann is None or self._gen < gen:
                ann = self._updated(gen)
                self._ann, self._gen = ann, gen
            if save:
                self._save(ann, self._gen)
            return ann

    def prepared(self, stored: StoredVectors) -> np.ndarray:
        """``stored``'s vectors as the vector index holds them (centred by language or not)."""
        return prepare(stored.vectors, stored.langs, self.scoring, self.store.language_means())

    def _files(self) -> dict[int, Path]:
        """The saved files by generation."""
        suffix = f".{self.backend}"
        found = {}
        for file in self.folder.glob(f"{ANN_PREFIX}*{suffix}"):
            stem = file.name[len(ANN_PREFIX) : -len(suffix)]
            if stem.isdigit():
                found[int(stem)] = file
        return found

    def _updated(self, gen: int) -> AnnIndex:
        pruned = int(self.store.get_setting(PRUNED_SETTING, 0))
        files = self._files()
        ann, ann_gen = self._ann, self._gen
        if ann is None or ann_gen < pruned:
            usable = [g for g in files if pruned <= g <= gen]
            ann = None
            if usable:
                ann_gen = max(usable)
                try:
                    ann = load(self.backend, files[ann_gen])
                except FileNotFoundError:  # replaced by a writer meanwhile
                    ann = None
        if ann is not None and ann.dim != self.store.dim:
            raise IndexCorruptError(f"{files.get(ann_gen)} holds {ann.dim}-d vectors, the index {self.store.dim}-d")
        if ann is not None and ann.factory != "Flat":
            removed, added = self.store.changes_since(ann_gen)
            if ann is self._ann and (len(removed) or len(added)):
                ann = ann.copy()  # searches may be using the one in hand
            if len(removed):
                ann.remove(removed)
            if len(added):
                ann.add(added.ids, self.prepared(added))
        if ann is None or ann.factory == "Flat" or needs_retrain(ann, len(ann)):
            # An exact index is cheap to rebuild, and a rebuild applies the current language means.
            stored = self.store.all_vectors()
            ann = build(self.prepared(stored), stored.ids, backend=self.backend)
        return ann

    def _save(self, ann: AnnIndex, gen: int) -> None:
        if gen in self._files():
            return
        ann.save(self.folder / f"{ANN_PREFIX}{gen}.{self.backend}")
        self.adopt(gen, ann.factory)

    def adopt(self, gen: int, factory: str) -> None:
        """Take the file of generation ``gen`` (written in place, e.g. merged from shards by
        :func:`xsearch.ann.shards.merge_shards`) as the saved vector index, of ``factory``:
        recorded in the settings, the tombstones before it pruned, older generations' files removed."""
        self.store.set_settings({"factory": factory, PRUNED_SETTING: gen})
        self.store.prune_tombstones(gen)
        for file in self.folder.glob(f"{ANN_PREFIX}*.*"):
            # Every file of an older generation: the index file and any data file beside it.
            stem = file.name[len(ANN_PREFIX) :].split(".", 1)[0]
            if stem.isdigit() and int(stem) != gen and file.is_file():
                file.unlink(missing_ok=True)
