"""Hostile input: each bad file is skipped with a reason (or read), each bad query or damaged
index gives one ``error:`` line with its documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from faultkit import make_docs, one_line_error, xsearch

from xsearch import Index
from xsearch.errors import ExtractionError, UsageError
from xsearch.ingest.extract import MAX_JSON_DEPTH, extract, markdown_to_text
from xsearch.types import SourceFile

DEEP = "[" * 60_000 + "]" * 60_000
BAD_FILES: dict[str, tuple[bytes, str | None]] = {
    # name: (content, reason expected in the skip, or None when the file is read)
    "deep.json": (DEEP.encode(), "nested deeper than"),
    "deep-object.json": (('{"a":' * 5000 + "1" + "}" * 5000).encode(), "nested deeper than"),
    "deep.jsonl": (DEEP.encode() + b"\n", "nested deeper than"),
    "just-deep-enough.json": (("[" * MAX_JSON_DEPTH + '"text"' + "]" * MAX_JSON_DEPTH).encode(), None),
    "nan.jsonl": (b'{"text": "a record", "v": NaN, "w": Infinity, "x": 1e999}\n', None),
    "brackets-in-strings.json": (json.dumps({"text": "[" * 5000}).encode(), None),
    "truncated.json": (b'{"text": "a', "malformed JSON"),
    "empty.jsonl": (b"\n\n", "no records"),
    "no-text.jsonl": (b'{"title": "x"}\n', "no string"),
    "not-json.json": (b"hello", "malformed JSON"),
    "zero.txt": (b"", "empty file"),
    "spaces.txt": (b"   \n\t ", "no text"),
    "binary.bin": (bytes(range(256)) * 20, "binary file"),
    "broken.docx": (b"PK\x03\x04 not a zip", "unreadable DOCX"),
    "broken.pdf": (b"%PDF-1.4 garbage", "unreadable PDF"),
    "stars.md": (b"*a " * 50_000, None),
    "brackets.md": (b"[a " * 50_000, None),
    "tags.md": (b"<a " * 50_000, None),
    "underscores.md": (b"_a " * 50_000, None),
    "strikes.md": (b"~~a " * 40_000, None),
    "nul.txt": (b"text\x00with\x00nul", None),
    "utf16.txt": ("Hallo Welt".encode("utf-16"), None),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_skipped_with_a_reason_or_read(tmp_path: Path, name: str) -> None:
    content, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    started = time.perf_counter()
    try:
        documents = extract(SourceFile(str(path), len(content), 0.0))
    except ExtractionError as exc:
        assert reason is not None and reason in str(exc), str(exc)
    else:
        assert reason is None, f"read although {reason!r} was expected"
        assert documents and all(doc.text for doc in documents)
        for doc in documents:
            json.dumps(doc.metadata, allow_nan=False)  # stored metadata is plain JSON
    assert time.perf_counter() - started < 10


def test_one_deep_line_among_good_lines_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"text": "first"}\n' + DEEP + '\n{"text": "third", "n": NaN}\n', encoding="utf-8")
    documents = extract(SourceFile(str(path), 1, 0.0))
    assert [d.text for d in documents] == ["first", "third"] and documents[1].metadata == {"n": None}


def test_markdown_with_a_long_line_of_markup_is_linear() -> None:
    started = time.perf_counter()
    text, _ = markdown_to_text("*a " * 50_000)  # 150 KB on one line
    assert time.perf_counter() - started < 5 and text.count("a") == 50_000
    assert markdown_to_text("**bold** *it* _u_ ~~s~~ [link](x) <b>t</b>")[0] == "bold it u s link t"


@pytest.mark.parametrize("metadata", [
    {"deep": json.loads("[" * 200 + "]" * 200)},
    {"big": "x" * 100_000},
])
def test_add_texts_refuses_metadata_too_deep_or_too_large(tmp_path: Path, encoder, metadata: dict) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index, pytest.raises(UsageError, match="metadata 0"):
        index.add_texts(["text"], [metadata])


def test_metadata_filter_over_nan_records_works(tmp_path: Path, encoder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "r.jsonl").write_text('{"text": "Der Hund läuft.", "v": NaN}\n{"text": "Cats sleep.", "v": 2}\n',
                                  encoding="utf-8")
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs])
        hits = index.search("cat", k=5, filters={"v": 2})
        assert [h.text for h in hits] == ["Cats sleep."]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("built")
    docs = make_docs(root / "docs", 3)
    (docs / "sub").mkdir()
    (docs / "sub" / "ok.txt").write_text("Sourdough bread rises slowly.", encoding="utf-8")
    os.makedirs(os.fsencode(docs) + b"/f\xff", exist_ok=True)
    (Path(os.fsdecode(os.fsencode(docs) + b"/f\xff")) / "n.txt").write_text("hidden name", encoding="utf-8")
    Path(os.fsdecode(os.fsencode(docs) + b"/n\xfe.txt")).write_text("odd name", encoding="utf-8")
    result = xsearch("index", docs, "--index", root / "idx", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["skipped"] == []  # names that are not UTF-8 are indexed under their text form
    return root / "idx"


@pytest.mark.parametrize("args,code,words", [
    ([b"search", b"Hund\xff"], 2, "not valid UTF-8"),
    ([b"search", b"\xed\xa0\x80"], 2, "not valid UTF-8"),
    (["search", "bread", "-k", "0"], 2, ""),
    (["search"], 2, "QUERY"),
])
def test_bad_query_is_a_one_line_error(built: Path, args: list, code: int, words: str) -> None:
    result = xsearch(*args, "--index", built)
    if code == 2 and not words:  # click's own usage errors print a usage block
        assert result.returncode == 2 and b"Traceback" not in result.stderr
        return
    assert words in one_line_error(result, code)


def test_queries_file_with_invalid_utf8_is_a_one_line_error(built: Path, tmp_path: Path) -> None:
    queries = tmp_path / "q.txt"
    queries.write_bytes(b"bread\nHund\xff\n")
    assert "not valid UTF-8" in one_line_error(xsearch("search", "--queries", queries, "--index", built), 2)


@pytest.mark.parametrize("damage,code", [
    ("header", 5), ("pages", 5), ("truncated", 5), ("foreign", 4), ("empty", 4),
])
def test_damaged_index_is_a_one_line_error(built: Path, tmp_path: Path, damage: str, code: int) -> None:
    import shutil
    import sqlite3

    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    db = copy / "xsearch.db"
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    data = bytearray(db.read_bytes())
    if damage == "header":
        data[:16] = b"not a database!!"
    elif damage == "pages":
        for offset in range(4096 * 2, len(data), 4096):
            data[offset + 8 : offset + 1500] = os.urandom(1492)
    elif damage == "truncated":
        data = data[: len(data) // 3]
    elif damage == "foreign":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
        data = bytearray(db.read_bytes())
    else:
        data = bytearray()
    db.write_bytes(bytes(data))
    for name in ("xsearch.db-wal", "xsearch.db-shm"):
        (copy / name).unlink(missing_ok=True)
    one_line_error(xsearch("search", "bread", "--index", copy), code)
