"""xsearch.ann.shards: train once, fill shards, merge on disk, search memory-mapped; the merged
index as an index's vector index (loaded, changed by the change log, saved, cleaned up)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from xsearch.ann import FaissIndex, shards
from xsearch.ann.faiss_index import DATA_SUFFIX, MAGIC
from xsearch.errors import IndexCorruptError, IndexMismatchError, UsageError
from xsearch.store.db import FileState, NewDocument, Store
from xsearch.types import Chunk, Document
from xsearch.vectors import VectorIndex

from test_ann import clustered, sparse_ids

N = 20_000
FACTORY = "IVF64,PQ16x8"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered(N, 64, seed=3), sparse_ids(N, seed=4)


@pytest.fixture(scope="module")
def trained(data) -> bytes:
    vectors, _ = data
    return shards.train_empty(vectors[::2], FACTORY)


def build_shards(folder: Path, trained: bytes, ids: np.ndarray, vectors: np.ndarray, count: int = 3) -> list[Path]:
    bounds = np.linspace(0, len(ids), count + 1).astype(int)
    paths = []
    for number, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        path = folder / f"shard-{number}.faiss"
        assert shards.write_shard(trained, ids[start:stop], vectors[start:stop], path) == stop - start
        paths.append(path)
    return paths


@pytest.fixture()
def merged(tmp_path, data, trained) -> Path:
    vectors, ids = data
    out = tmp_path / "ann-5.faiss"
    shards.merge_shards(trained, build_shards(tmp_path, trained, ids, vectors), out)
    return out


def test_training_is_seeded(data, trained):
    vectors, _ = data
    assert shards.train_empty(vectors[::2], FACTORY) == trained
    index = FaissIndex.from_bytes(trained)
    assert index.is_trained and len(index) == 0 and index.trained_size == N // 2


def test_merged_index_searches_like_one_index_from_the_same_training(merged, data, trained):
    vectors, ids = data
    loaded = FaissIndex.load(merged)
    assert loaded.data_file == merged.with_suffix(DATA_SUFFIX)
    assert len(loaded) == N and loaded.factory == FACTORY and loaded.trained_size == N
    whole = FaissIndex.from_bytes(trained)
    whole.add(ids, vectors)
    queries = vectors[:300]
    for nprobe in (1, 8, 64):
        got_scores, got_ids = loaded.search(queries, 20, nprobe=nprobe)
        want_scores, want_ids = whole.search(queries, 20, nprobe=nprobe)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
    allowed = ids[::7]
    _, got = loaded.search(queries[:20], 10, allowed_ids=allowed)
    assert np.isin(got, allowed).all()


def test_merging_prints_nothing_on_standard_output(tmp_path, data, trained, capfd):
    vectors, ids = data
    paths = build_shards(tmp_path, trained, ids, vectors, count=2)
    capfd.readouterr()
    shards.merge_shards(trained, paths, tmp_path / "ann-2.faiss")
    out, err = capfd.readouterr()
    assert out == ""
    assert "resizing" in err  # FAISS's own progress line, moved off standard output


def test_merged_index_keeps_its_lists_on_disk(merged):
    data_file = merged.with_suffix(DATA_SUFFIX)
    assert data_file.stat().st_size == N * (16 + 8)  # a PQ code and an id per vector
    assert merged.stat().st_size < data_file.stat().st_size / 4
    head_len = struct.unpack_from("<I", merged.read_bytes(), len(MAGIC))[0]
    header = json.loads(merged.read_bytes()[len(MAGIC) + 4 : len(MAGIC) + 4 + head_len])
    assert header["format"] == 2 and header["data_file"] == data_file.name
    assert header["data_bytes"] == data_file.stat().st_size
    assert not list(merged.parent.glob(".*.tmp"))


def test_changes_to_a_merged_index_go_to_memory_and_leave_its_files_alone(merged, data, tmp_path):
    vectors, ids = data
    data_file = merged.with_suffix(DATA_SUFFIX)
    before = data_file.read_bytes()
    loaded = FaissIndex.load(merged)
    copy = loaded.copy()
    assert copy.data_file is None
    assert copy.remove(ids[:100]) == 100
    copy.add(np.array([10**15]), vectors[:1])
    assert len(copy) == N - 99 and len(loaded) == N
    _, found = copy.search(vectors[:1], 1)
    assert found[0, 0] == 10**15
    loaded.add(np.array([10**15 + 1]), vectors[1:2])  # in place: read into memory first
    assert loaded.data_file is None and len(loaded) == N + 1
    assert data_file.read_bytes() == before
    copy.save(tmp_path / "ann-6.faiss")
    assert not (tmp_path / "ann-6.ivfdata").exists()
    assert len(FaissIndex.load(tmp_path / "ann-6.faiss")) == N - 99


def test_saving_a_merged_index_elsewhere_gives_it_its_own_data_file(merged, data, tmp_path):
    vectors, _ = data
    loaded = FaissIndex.load(merged)
    loaded.save(tmp_path / "ann-7.faiss")
    merged.unlink()
    merged.with_suffix(DATA_SUFFIX).unlink()
    again = FaissIndex.load(tmp_path / "ann-7.faiss")
    assert again.data_file == tmp_path / "ann-7.ivfdata"
    np.testing.assert_array_equal(again.search(vectors[:50], 10)[1], loaded.search(vectors[:50], 10)[1])


@pytest.mark.parametrize("damage", ["truncate", "grow", "delete"])
def test_a_damaged_or_missing_data_file_is_corrupt(merged, damage):
    data_file = merged.with_suffix(DATA_SUFFIX)
    if damage == "truncate":
        os.truncate(data_file, data_file.stat().st_size // 2)
    elif damage == "grow":
        with open(data_file, "ab") as f:
            f.write(b"\0" * 100)
    else:
        data_file.unlink()
    with pytest.raises(IndexCorruptError, match="data file"):
        FaissIndex.load(merged)


def test_a_data_file_named_outside_its_folder_is_refused(merged):
    raw = merged.read_bytes()
    head_len = struct.unpack_from("<I", raw, len(MAGIC))[0]
    header = json.loads(raw[len(MAGIC) + 4 : len(MAGIC) + 4 + head_len])
    header["data_file"] = "../elsewhere.ivfdata"
    head = json.dumps(header).encode()
    merged.write_bytes(MAGIC + struct.pack("<I", len(head)) + head + raw[len(MAGIC) + 4 + head_len :])
    with pytest.raises(IndexCorruptError, match="data_file"):
        FaissIndex.load(merged)


def test_shards_of_another_training_or_shape_are_refused(tmp_path, data, trained):
    vectors, ids = data
    other = shards.train_empty(vectors[1::2], FACTORY)
    good = build_shards(tmp_path, trained, ids[:3000], vectors[:3000], count=1)
    (tmp_path / "other").mkdir()
    foreign = build_shards(tmp_path / "other", other, ids[3000:6000], vectors[3000:6000], count=1)
    with pytest.raises(IndexMismatchError, match="another trained index"):
        shards.merge_shards(trained, good + foreign, tmp_path / "ann-1.faiss")
    garbage = tmp_path / "garbage.faiss"
    garbage.write_bytes(b"not a faiss index")
    with pytest.raises(IndexCorruptError, match="not a readable FAISS index"):
        shards.merge_shards(trained, good + [garbage], tmp_path / "ann-1.faiss")
    with pytest.raises(FileNotFoundError):
        shards.merge_shards(trained, good + [tmp_path / "missing.faiss"], tmp_path / "ann-1.faiss")
    assert not (tmp_path / "ann-1.faiss").exists() and not (tmp_path / "ann-1.ivfdata").exists()


def test_flat_cannot_be_merged(tmp_path, data):
    vectors, ids = data
    flat = shards.train_empty(vectors[:100], "Flat")
    paths = build_shards(tmp_path, flat, ids[:100], vectors[:100], count=2)
    with pytest.raises(UsageError, match="only IVF indexes"):
        shards.merge_shards(flat, paths, tmp_path / "ann-1.faiss")


def test_empty_shards_merge_into_an_empty_index(tmp_path, data, trained):
    paths = build_shards(tmp_path, trained, np.zeros(0, dtype=np.int64), np.zeros((0, 64), np.float32), count=2)
    shards.merge_shards(trained, paths, tmp_path / "ann-1.faiss")
    empty = FaissIndex.load(tmp_path / "ann-1.faiss")
    assert len(empty) == 0 and empty.data_file is None


# -- the merged index as an index's vector index -------------------------------------------------

DOCS = 20
PER_DOC = N // DOCS


def new_source(name: str, vectors: np.ndarray) -> tuple[FileState, list[NewDocument]]:
    text = " ".join(f"w{i}" for i in range(len(vectors)))
    chunks = [Chunk(text=f"w{i}", start=0, end=1, lang="en", n_tokens=1) for i in range(len(vectors))]
    document = Document(path=name, text=text, title=name, lang="en")
    return FileState(name, name, 0.0, len(text)), [NewDocument(document, chunks, vectors)]


@pytest.fixture()
def store_with_merged_index(tmp_path, data):
    vectors, _ = data
    store = Store(tmp_path, create=True, settings={"dim": 64})
    store.replace_files([], [new_source(f"/docs/{d}", vectors[d * PER_DOC : (d + 1) * PER_DOC])
                             for d in range(DOCS)])
    vector_index = VectorIndex(tmp_path, store, "plain")
    stored = store.all_vectors()
    prepared = vector_index.prepared(stored)
    trained = shards.train_empty(prepared[::2], FACTORY)
    (tmp_path / "shards").mkdir()
    paths = build_shards(tmp_path / "shards", trained, stored.ids, prepared)
    gen = store.generation
    shards.merge_shards(trained, paths, tmp_path / f"ann-{gen}.faiss")
    yield tmp_path, store, vector_index, stored
    store.close()


def test_vector_index_opens_a_merged_file_mapped_and_replays_changes(store_with_merged_index, data):
    folder, store, vector_index, stored = store_with_merged_index
    vectors, _ = data
    gen = store.generation
    ann = vector_index.sync(save=False)
    assert isinstance(ann, FaissIndex) and ann.data_file == folder / f"ann-{gen}{DATA_SUFFIX}"
    assert len(ann) == N
    _, found = ann.search(stored.vectors[:5].astype(np.float32), 1, nprobe=64)
    np.testing.assert_array_equal(found[:, 0], stored.ids[:5])

    extra = clustered(50, 64, seed=9)
    store.replace_files(["/docs/0"], [new_source("/docs/new", extra)])
    synced = vector_index.sync(save=True)
    assert synced is not ann and ann.data_file is not None and len(ann) == N  # searches went on untouched
    assert synced.data_file is None and len(synced) == N - PER_DOC + 50
    removed = set(stored.ids[:PER_DOC].tolist())
    _, found = synced.search(stored.vectors[:20].astype(np.float32), 10, nprobe=64)
    assert not removed & set(found.ravel().tolist())
    new_ids = store.changes_since(gen)[1].ids
    _, found = synced.search(extra[:5], 1, nprobe=64)
    np.testing.assert_array_equal(found[:, 0], new_ids[:5])

    names = sorted(p.name for p in folder.glob("ann-*"))
    assert names == [f"ann-{store.generation}.faiss"]  # the old index file and its data file are gone
    reopened = VectorIndex(folder, store, "plain").sync(save=False)
    assert len(reopened) == len(synced) and reopened.data_file is None


def test_vector_index_reports_a_truncated_data_file(store_with_merged_index):
    folder, store, _, _ = store_with_merged_index
    data_file = folder / f"ann-{store.generation}{DATA_SUFFIX}"
    os.truncate(data_file, data_file.stat().st_size - 1)
    with pytest.raises(IndexCorruptError, match="data file"):
        VectorIndex(folder, store, "plain").sync(save=False)
