"""Creating and opening an index: atomic creation, half-made folders, other programs' files,
read-only indexes, a broken write lock."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from faultkit import chunk_texts, integrity, make_docs, one_line_error, start, xsearch

from xsearch import Index
from xsearch.errors import IndexNotFoundError, IndexReadOnlyError
from xsearch.store import db as store_db


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign(folder: Path) -> Path:
    folder.mkdir()
    conn = sqlite3.connect(folder / "xsearch.db")
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.execute("INSERT INTO songs VALUES ('a')")
    conn.commit()
    conn.close()
    return folder / "xsearch.db"


def test_another_programs_database_is_refused_untouched(tmp_path: Path) -> None:
    db = _foreign(tmp_path / "other")
    before = _sha(db)
    for args in (["info"], ["search", "x"], ["index", str(make_docs(tmp_path / "docs", 1))]):
        error = one_line_error(xsearch(*args, "--index", tmp_path / "other"), 4)
        assert "not an xsearch index" in error
    assert _sha(db) == before and sorted(p.name for p in db.parent.iterdir()) == ["xsearch.db"]
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize("kind", ["empty file", "no tables", "tables without settings", "temp file only"])
def test_a_half_made_index_is_finished_by_the_next_run(tmp_path: Path, kind: str) -> None:
    index = tmp_path / "idx"
    index.mkdir()
    db = index / "xsearch.db"
    if kind == "empty file":
        db.write_bytes(b"")
    elif kind == "no tables":
        sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").fetchone()
    elif kind == "tables without settings":
        conn = sqlite3.connect(db)
        conn.executescript(store_db._SCHEMA)
        conn.close()
    else:
        (index / (store_db.TEMP_PREFIX + "123")).write_bytes(b"SQLite format 3\x00" + bytes(100))
    if db.exists():
        for command in (["info"], ["search", "bread"]):
            error = one_line_error(xsearch(*command, "--index", index), 4)
            assert "unfinished" in error and "xsearch index" in error
    docs = make_docs(tmp_path / "docs", 3)
    result = xsearch("index", docs, "--index", index, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files_added"] == 3
    assert xsearch("search", "bread", "--index", index).returncode == 0
    assert not list(index.glob(store_db.TEMP_PREFIX + "*"))


def test_creation_is_atomic(tmp_path: Path, encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A creation that dies before its rename leaves no ``xsearch.db``; the next one succeeds."""

    def die(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store_db.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        Index.create(tmp_path / "idx", encoder=encoder)
    assert not (tmp_path / "idx" / "xsearch.db").exists()
    monkeypatch.undo()
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        assert index.store.generation == 0 and index.config.model == encoder.info.model
    assert [p.name for p in (tmp_path / "idx").iterdir()] == ["xsearch.db"]


def test_kill_at_creation_never_leaves_a_dead_end(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs", 6)
    rng = random.Random(19)
    for attempt in range(3):
        index = tmp_path / f"idx{attempt}"
        proc = start("index", docs, "--index", index, "-q")
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not index.exists():
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        opened = xsearch("info", "--index", index)
        if opened.returncode != 0:
            one_line_error(opened, 4)
        else:
            assert integrity(index) == "ok"
        rerun = xsearch("index", docs, "--index", index, "--json")
        assert rerun.returncode == 0, rerun.stderr
        assert len({path for path, _ in chunk_texts(index)}) == 6
        assert xsearch("search", "magma", "--index", index).returncode == 0


def test_write_lock_that_is_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    docs = make_docs(tmp_path / "docs", 1)
    assert xsearch("index", docs, "--index", index, "-q").returncode == 0
    (index / "write.lock").unlink()
    (index / "write.lock").mkdir()
    assert "write.lock" in one_line_error(xsearch("index", docs, "--index", index, "-q"), 7)
    assert xsearch("search", "bread", "--index", index).returncode == 0


@pytest.fixture
def small_index(tmp_path: Path, encoder) -> Path:
    path = tmp_path / "idx"
    with Index.create(path, encoder=encoder) as index:
        index.add_texts(["Der Hund läuft im Park.", "Bread needs flour, water and time."], ids=["dog", "bread"])
    return path


def test_read_only_index_is_searchable_and_refuses_writes(small_index: Path, encoder) -> None:
    before = {p.name: _sha(p) for p in small_index.iterdir() if p.suffix in (".db", ".faiss")}
    with Index.open(small_index, encoder=encoder, readonly=True) as index:
        assert index.search("dog", k=1)[0].text.startswith("Der Hund")
        assert index.info().documents == 2
        with pytest.raises(IndexReadOnlyError, match="read-only"):
            index.add_texts(["more"])
        with pytest.raises(IndexReadOnlyError):
            index.remove(["dog"])
    assert {p.name: _sha(p) for p in small_index.iterdir() if p.suffix in (".db", ".faiss")} == before


def test_unwritable_index_opens_immutable(small_index: Path, encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder that may not be written (a CD, a share) is opened ``immutable``: no lock, no -shm."""
    for name in ("xsearch.db-wal", "xsearch.db-shm", "write.lock"):
        (small_index / name).unlink(missing_ok=True)
    monkeypatch.setattr(store_db, "_writable", lambda path: False)
    with Index.open(small_index, encoder=encoder) as index:
        assert index.store.readonly
        assert index.search("bread", k=1)[0].text.startswith("Bread")
    assert sorted(p.name for p in small_index.iterdir() if not p.name.startswith("ann-")) == ["xsearch.db"]


def test_opening_a_half_made_index_through_the_api_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "xsearch.db").write_bytes(b"")
    with pytest.raises(IndexNotFoundError, match="unfinished"):
        Index.open(tmp_path / "idx")
