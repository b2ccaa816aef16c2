"""The facade end to end with the real model, real FAISS and real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from xsearch import Index, IndexConfig
from xsearch.errors import (IndexCorruptError, IndexMismatchError, IndexNotFoundError, UnknownLanguageError,
                            UsageError)


def _topic(hit) -> str:
    """The sample corpus keeps one topic per folder; JSON Lines records name theirs."""
    return hit.metadata.get("topic") or Path(hit.path).relative_to(SAMPLE.resolve()).parts[0]


def test_english_query_finds_other_languages(sample_index: Index) -> None:
    hits = sample_index.search("How do plants turn sunlight into chemical energy?", k=10)
    assert all(_topic(h) == "photosynthesis" for h in hits[:8]), [(h.path, h.score) for h in hits]
    other = {h.lang for h in hits if _topic(h) == "photosynthesis"} - {"en"}
    assert {"de", "ar"} <= other and len(other) >= 3, other


def test_german_query_ranks_every_language(sample_index: Index) -> None:
    hits = sample_index.search("wie wandeln Pflanzen Licht in Energie um?", k=15)
    photo = [h for h in hits if _topic(h) == "photosynthesis"]
    assert {"en", "ja", "ar", "es"} <= {h.lang for h in photo}
    assert hits == sorted(hits, key=lambda h: -h.score)
    for hit in hits:
        assert hit.text and hit.end > hit.start and Path(hit.path).is_file()


@pytest.mark.parametrize("query,topic", [
    ("Когда человек впервые ступил на Луну?", "moon_landing"),
    ("火山はどのように噴火しますか", "volcanoes"),
    ("¿Cómo entrena una vacuna al sistema inmunitario?", "vaccines"),
    ("من أين جاءت القهوة؟", "coffee_history"),
])
def test_queries_in_other_scripts_find_their_topic(sample_index: Index, query: str, topic: str) -> None:
    hits = sample_index.search(query, k=5)
    assert sum(_topic(h) == topic for h in hits) >= 4, [(h.path, round(h.score, 3)) for h in hits]
    assert len({h.lang for h in hits}) >= 3


def test_language_filter_returns_k_hits_in_that_language(sample_index: Index) -> None:
    hits = sample_index.search("photosynthesis", k=3, langs=["ja"])
    assert len(hits) == 3 and {h.lang for h in hits} == {"ja"}
    with pytest.raises(UnknownLanguageError, match="this index holds"):
        sample_index.search("photosynthesis", k=3, langs=["xx"])


def test_search_batch_matches_single_search(sample_index: Index) -> None:
    queries = ["sourdough starter", "Apollo 11"]
    batch = sample_index.search_batch(queries, k=4)
    singles = [sample_index.search(q, k=4) for q in queries]
    assert [[h.chunk_id for h in hits] for hits in batch] == [[h.chunk_id for h in hits] for hits in singles]


def test_info_reports_counts_and_settings(sample_index: Index) -> None:
    info = sample_index.info()
    assert info.documents >= 36 and info.chunks >= info.documents
    assert len(info.languages) >= 8
    assert (info.model, info.pooling, info.dim, info.index_type) == ("multilingual-e5-small", "mean", 384, "Flat")
    assert info.bytes_on_disk > 0


def test_chunks_respect_token_limit_and_spans(sample_index: Index, encoder) -> None:
    rows = sample_index.store.db.execute(
        'SELECT c.text, c.start, c."end", c.n_tokens, d.path, d.record FROM chunks c JOIN documents d ON d.id = c.doc_id'
    ).fetchall()
    counts = encoder.count_tokens([r[0] for r in rows])
    assert max(counts) <= sample_index.config.max_tokens
    assert all(r[2] - r[1] == len(r[0]) for r in rows)


def test_incremental_add_change_delete(sample_copy: Path, tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        first = index.add_paths([sample_copy])
        assert first.files_added >= 36 and first.chunks_added > 0
        before = index.info()

        second = index.add_paths([sample_copy])
        assert (second.files_added, second.files_updated, second.files_removed, second.chunks_added) == (0, 0, 0, 0)
        assert second.files_unchanged == first.files_added

        new = sample_copy / "new_topic.md"
        new.write_text("# Glaciers\n\nGlaciers are rivers of ice that carve valleys over thousands of years.\n",
                       encoding="utf-8")
        changed = sorted((sample_copy / "volcanoes").iterdir())[0]
        changed.write_text("Tea ceremonies in Kyoto follow strict rules of hospitality and silence.\n",
                           encoding="utf-8")
        deleted = sorted((sample_copy / "coffee_history").iterdir())[0]
        deleted.unlink()

        third = index.add_paths([sample_copy])
        assert (third.files_added, third.files_updated, third.files_removed) == (1, 1, 1)
        assert third.chunks_added == 2
        info = index.info()
        assert info.documents == before.documents

        glacier = index.search("ice rivers carving valleys", k=1)[0]
        assert Path(glacier.path) == new.resolve()
        tea = index.search("tea ceremony in Kyoto", k=1)[0]
        assert Path(tea.path) == changed.resolve() and "Tea ceremonies" in tea.text
        every_path = {h.path for h in index.search("coffee", k=info.chunks)}
        assert str(deleted.resolve()) not in every_path

    with Index.open(tmp_path / "idx") as reopened:
        assert reopened.info().chunks == info.chunks
        assert reopened.search("ice rivers carving valleys", k=1)[0].path == glacier.path


def test_unchanged_run_does_not_load_the_model(sample_copy: Path, tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([sample_copy])
    with Index.open(tmp_path / "idx") as index:
        report = index.add_paths([sample_copy])
        assert report.chunks_added == 0
        assert index._encoder is None


def test_interrupted_run_keeps_index_searchable(sample_copy: Path, tmp_path: Path, encoder,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch import pipeline

    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([sample_copy / "photosynthesis"])
        good = index.info()

    monkeypatch.setattr(pipeline, "GROUP_FILES", 3)
    calls = {"n": 0}

    def interrupt(progress) -> None:
        if progress.phase == "embed" and progress.files_done >= 3:
            calls["n"] += 1
            raise KeyboardInterrupt

    with Index.open(tmp_path / "idx", encoder=encoder) as index:
        with pytest.raises(KeyboardInterrupt):
            index.add_paths([sample_copy], progress=interrupt)
    assert calls["n"] == 1

    with Index.open(tmp_path / "idx", encoder=encoder) as index:
        partial = index.info()
        assert good.chunks <= partial.chunks
        hits = index.search("photosynthesis chlorophyll", k=partial.chunks)
        assert len(hits) == partial.chunks  # every stored chunk is reachable, none dangling
        report = index.add_paths([sample_copy])
        assert report.files_added > 0
        full = index.info()
    with Index.create(tmp_path / "fresh", encoder=encoder) as fresh:
        fresh.add_paths([sample_copy])
        assert fresh.info().chunks == full.chunks


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "plain")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    with pytest.raises(UsageError):
        Index.create(tmp_path / "busy")


def test_mismatched_settings_are_refused(sample_index: Index, encoder) -> None:
    with pytest.raises(IndexMismatchError):
        Index.open(sample_index.path, model="xlm-roberta-large")
    with pytest.raises(IndexMismatchError):
        Index.open_or_create(sample_index.path, IndexConfig(pooling="cls"), explicit=["pooling"])


def test_corrupted_database_is_reported(tmp_path: Path, encoder) -> None:
    path = tmp_path / "idx"
    Index.create(path, encoder=encoder).close()
    db = path / "xsearch.db"
    db.write_bytes(b"this is not sqlite at all" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    with pytest.raises(IndexCorruptError):
        Index.open(path)


def test_corrupted_vector_file_is_reported(sample_copy: Path, tmp_path: Path, encoder) -> None:
    path = tmp_path / "idx"
    with Index.create(path, encoder=encoder) as index:
        index.add_paths([sample_copy / "coffee_history"])
    ann_file = next(path.glob("ann-*.faiss"))
    ann_file.write_bytes(ann_file.read_bytes()[:100])
    with Index.open(path, encoder=encoder) as index, pytest.raises(IndexCorruptError):
        index.search("coffee", k=1)


def test_vectors_are_stored_exactly_enough(sample_index: Index, encoder) -> None:
    stored = sample_index.store.all_vectors()
    ids, vectors = stored.ids, stored.vectors
    row = sample_index.store.chunk_rows([int(ids[0])])[int(ids[0])]
    fresh = encoder.encode_passages([row.text])[0]
    # float16 storage costs ~1e-5 of cosine; int8 activations, scaled per batch, move a vector
    # encoded alone by ~3e-3 from the one encoded with its neighbours
    assert float(fresh @ vectors[0]) > (0.995 if encoder.backend == "onnx" else 0.999)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)


def test_database_is_sqlite_with_documented_tables(sample_index: Index) -> None:
    conn = sqlite3.connect(sample_index.path / "xsearch.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"settings", "files", "documents", "chunks", "vectors", "tombstones"} <= tables
    conn.close()

