"""One table of hostile input through the real command: bad files, bad queries and options, bad
``--index`` targets and damaged indexes. Each case ends in a file skipped with its reason (or
read), a normal answer, or one ``error:`` line with its documented exit code; never a traceback,
never a hang (each run has a deadline) and never more than 2 GB of resident memory."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SAMPLE
from faultkit import MEMORY_CAP, Measured, make_docs, measured, one_line_error

from xsearch import Index
from xsearch.errors import UsageError

DEEP = b"[" * 60_000 + b"]" * 60_000
TEXT = "Volcanic eruptions push magma up through the crust. " * 4


def _docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _pdf(text: str, password: str | None = None) -> bytes:
    """A one-page PDF whose content stream shows ``text``."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 10 100 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# Files: name -> (content, the reason it is skipped with, or None when it is read) ----------
FILES: dict[str, tuple[bytes | Callable[[], bytes], str | None]] = {
    "zero.txt": (b"", "empty file"),
    "spaces.txt": (b"   \n\t \r\n", "no text"),
    "bom-only.txt": (b"\xef\xbb\xbf", "no text"),
    "zero-width.txt": ("\u200b\u200c\u200d\ufeff".encode() * 300, "no text"),
    "nul-inside.txt": (b"text\x00with\x00nul bytes between words", None),
    "all-nul.txt": (b"\x00" * 5000, "no text"),
    "random.dat": (bytes(range(256)) * 40, "binary file"),
    "png-named.txt": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "unknown text encoding"),
    "huge-line.txt": (b"a" * 100_000, None),
    "huge-line-of-words.txt": (b"lava " * 5_000, None),
    "many-empty-lines.txt": (b"\n" * 900_000 + b"one line at the end", None),
    "over-max-size.txt": (b"word " * 300_000, "larger than"),
    "latin1.txt": ("Le café crème est très apprécié à Paris, déjà en été. ".encode("latin-1") * 20, None),
    "utf8-then-latin1.txt": ("Straße ".encode() * 400 + "Stra\xdfe".encode("latin-1"), "malformed UTF-8"),
    "utf16-bom.txt": ("Hallo Welt, die Lava fließt.".encode("utf-16"), None),
    "utf16-odd-length.txt": ("Hallo Welt".encode("utf-16") + b"\x00", "malformed UTF-16"),
    "utf8-bom.txt": (b"\xef\xbb\xbf" + TEXT.encode(), None),
    "lone-surrogate.txt": (TEXT.encode() * 5 + b"\xed\xa0\x80", None),  # read as a legacy encoding
    "overlong-utf8.txt": (TEXT.encode() * 5 + b"\xc0\xaf", None),  # read as a legacy encoding
    "cr-only-lines.txt": (TEXT.replace(". ", ".\r").encode(), None),
    "ansi-escapes.txt": (b"\x1b[31mred lava\x1b[0m \x1b[2J cleared " * 50, None),
    "rtl-bidi.txt": ("\u202eالحمم البركانية تتدفق \u202c שלום עולם ".encode() * 20, None),
    "emoji-only.txt": (("🌋🔥🌊" * 200).encode(), None),
    "truncated.json": (b'{"text": "a', "malformed JSON"),
    "deep.json": (DEEP, "nested deeper than"),
    "scalar.json": (b"42", "no text"),
    "null.json": (b"null", "no text"),
    "bom.json": (b"\xef\xbb\xbf" + json.dumps({"text": TEXT}).encode(), None),
    "duplicate-keys.json": (b'{"text": "first lava", "text": "second lava"}', None),
    "huge-number.json": (b'{"text": "magma", "n": 1e999, "m": -1e999}', None),
    "mixed.jsonl": (b'{"text": "good lava"}\nnot json\n' + DEEP + b'\n{"text": 5}\n{"text": "fine magma"}', None),
    "all-bad.jsonl": (b"not json\n{broken\n", "no usable records"),
    "blank.jsonl": (b"\n\n\n", "no records"),
    "crlf.jsonl": (b'{"text": "one lava"}\r\n{"text": "two magma"}\r\n', None),
    "ragged.csv": (b"name,text\nvolcano,lava flows\nsolo\na,b,c,d,e\n", None),
    "unclosed-quote.csv": (b'name,text\nvolcano,"lava flows\nand never ends\n', None),
    "header-only.csv": (b"name,text\n", None),
    "huge-field.csv": (b"name,text\nvolcano," + b"x" * 140_000 + b"\n", "field larger than field limit"),
    "nul.csv": (b"name,text\nvolcano,lava\x00flows\n", None),
    "commas.tsv": (b"name\ttext\nvolcano\tlava, ash, and gas\n", None),
    "not-a-pdf.pdf": (b"%PDF-1.4 garbage", "unreadable PDF"),
    "empty.pdf": (b"%PDF-1.4\n%%EOF\n", "unreadable PDF"),
    "truncated.pdf": (lambda: _pdf("Magma rises")[:300], "unreadable PDF"),
    "encrypted.pdf": (lambda: _pdf("Secret magma", password="pw"), "encrypted"),
    "not-a-zip.docx": (b"PK\x03\x04 not a zip", "unreadable DOCX"),
    "zip-without-document.docx": (lambda: _zip({"hello.txt": b"hi"}), "unreadable DOCX"),
    "truncated.docx": (lambda: _docx(["Lava flows downhill."] * 50)[:2000], "unreadable DOCX"),
    "junk-document-xml.docx": (lambda: _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<<<junk"}),
                               "unreadable DOCX"),
    "script-only.html": (b"<html><script>var lava = 1;</script><style>p{}</style></html>", "no text"),
    "deep-nesting.html": (b"<div>" * 20_000 + b"lava" + b"</div>" * 20_000, "HTML nested deeper than"),
    "deep-nesting-unclosed.html": (b"<span>" * 100_000 + b"lava", "HTML nested deeper than"),
    "many-paragraphs.html": (b"<p>lava flows" * 2_000, None),
    "unclosed-tags.html": (b"<html><body><p>lava <b>flows <i>down <table><tr><td>hill", None),
    "huge-attribute.html": (b'<p title="' + b"x" * 800_000 + b'">magma</p>', None),
    "deep-blockquote.md": (b">" * 100_000 + b" lava", None),
    "unclosed-fence.md": (b"# Lava\n```\ncode that never closes\n" * 100, None),
    "stars.md": (b"*a " * 10_000, None),
    "malformed.rst": (b"Title\n===\n\n.. bogus-directive::\n   :opt:\n\n``unclosed literal\n", None),
    "name with\nnewline.txt": (TEXT.encode(), None),
}


@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Measured, dict]:
    """All the bad files in one folder (and a named pipe, which must not block), indexed by one
    run of the command."""
    root = tmp_path_factory.mktemp("files")
    folder = root / "docs"
    folder.mkdir()
    for name, (content, _) in FILES.items():
        (folder / name).write_bytes(content() if callable(content) else content)
    os.mkfifo(folder / "pipe.txt")
    socket.socket(socket.AF_UNIX).bind(str(folder / "socket.txt"))
    result = measured("index", folder, "--index", root / "idx", "--json", "--max-file-size", "1MB", timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    return folder, result, json.loads(result.stdout)


def test_bad_files_run_within_time_and_memory(file_run: tuple[Path, Measured, dict]) -> None:
    """An indexing run holds the float32 token vectors of a slice of chunks or two at a time and
    keeps the rest of a group compressed, so it stays under the cap of every command however large
    the group (about 1.45 GB on the README's ingest run, 1.9 GB for a 3 MB text file)."""
    _, result, report = file_run
    assert b"Traceback" not in result.stderr
    assert result.peak_rss < MEMORY_CAP, result.peak_rss


LARGE_TEXT_BYTES = 3 * 1024**2


def test_a_3mb_text_file_is_indexed_within_the_memory_cap(tmp_path: Path) -> None:
    """One plain-text file of 3 MB of prose in many languages: a single document of thousands of
    chunks, committed in one transaction, under the same cap as any other command."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(SAMPLE.rglob("*"))
             if path.suffix in (".txt", ".md")]
    parts, size, copy = [], 0, 0
    while size < LARGE_TEXT_BYTES:
        for text in texts:
            part = f"{text}\n\n({copy})\n\n"
            parts.append(part)
            size += len(part.encode())
        copy += 1
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "large.txt").write_text("".join(parts), encoding="utf-8")
    result = measured("index", folder, "--index", tmp_path / "idx", "--json", timeout=1800)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["files_added"] == 1 and report["documents_added"] == 1 and report["chunks_added"] > 2_000
    assert result.peak_rss < MEMORY_CAP, result.peak_rss
    conn = sqlite3.connect(f"file:{tmp_path / 'idx' / 'xsearch.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT COUNT(DISTINCT gen) FROM chunks").fetchone()[0] == 1  # one transaction
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_file(file_run: tuple[Path, Measured, dict], name: str) -> None:
    _, _, report = file_run
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    expected = FILES[name][1]
    if expected is None:
        assert name not in reasons, reasons.get(name)
    else:
        assert expected in reasons.get(name, "(read)"), reasons.get(name, "(read)")


@pytest.mark.parametrize("name,reason", [("pipe.txt", "not a regular file"), ("socket.txt", "not a regular file")])
def test_special_file(file_run: tuple[Path, Measured, dict], name: str, reason: str) -> None:
    reasons = {Path(s["path"]).name: s["reason"] for s in file_run[2]["skipped"]}
    assert reason in reasons.get(name, "(read)")


# Queries and options: id -> (arguments after `search`, allowed exit codes, words of the error) --
QUERIES: dict[str, tuple[list[str | bytes], set[int], str]] = {
    "empty query": ([""], {2}, "query is empty"),
    "whitespace query": (["  \t "], {2}, "query is empty"),
    "control characters": (["\x01\x02\x1b[2J lava\x7f"], {0}, ""),
    "100k characters": (["lava " * 20_000], {0}, ""),
    "right-to-left": (["\u202eالحمم البركانية"], {0}, ""),
    "emoji only": (["🌋🔥"], {0}, ""),
    "only stopwords": (["the of and a to"], {0}, ""),
    "invalid UTF-8": ([b"Hund\xff"], {2}, "UTF-8"),
    "lone surrogate": ([b"\xed\xa0\x80"], {2}, "UTF-8"),
    "lexical syntax": (['"unbalanced AND OR NEAR( *', "--mode", "lexical"], {0}, ""),
    "lexical punctuation": (["!!! ??? ...", "--mode", "lexical"], {0}, ""),
    "hybrid 100k": (["magma " * 20_000, "--mode", "hybrid"], {0}, ""),
    "k zero": (["lava", "-k", "0"], {2}, "-k"),
    "k negative": (["lava", "-k", "-5"], {2}, "-k"),
    "k not a number": (["lava", "-k", "many"], {2}, "-k"),
    "k too large": (["lava", "-k", "1000001"], {2}, "-k"),
    "min-score above 1": (["lava", "--min-score", "2"], {2}, "min-score"),
    "min-score nan": (["lava", "--min-score", "nan"], {2}, "min"),
    "unknown mode": (["lava", "--mode", "psychic"], {2}, "mode"),
    "unknown grouping": (["lava", "--group-by", "colour"], {2}, "group-by"),
    "unknown scoring": (["lava", "--scoring", "vibes"], {2}, "scoring"),
    "unknown language filter": (["lava", "--lang", "xx,zz"], {0, 2}, "xx"),
    "empty language filter": (["lava", "--lang", ",,,"], {0, 2}, "lang"),
    "unknown query language": (["lava", "--query-lang", "not-a-language"], {0, 2}, "language"),
    "no query": ([], {2}, "QUERY"),
    "missing queries file": (["--queries", "/nonexistent/q.txt"], {2}, "q.txt"),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    return _index_of_notes(tmp_path_factory.mktemp("built"), 6, encoder)


def _index_of_notes(root: Path, n: int, encoder) -> Path:
    """A real index of ``n`` generated notes, in ``root / "idx"``."""
    docs = make_docs(root / "docs", n)
    with Index.create(root / "idx", encoder=encoder) as index:
        index.add_paths([docs])
    return root / "idx"


def _judge(result: Measured, codes: set[int], words: str) -> None:
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode != -9, "hung: killed at its deadline"
    assert "Traceback" not in stderr, stderr
    assert result.peak_rss < MEMORY_CAP, result.peak_rss
    assert result.returncode in codes, (result.returncode, stderr)
    if result.returncode:
        assert words.lower() in one_line_error(result, result.returncode).lower()


@pytest.mark.parametrize("case", sorted(QUERIES))
def test_bad_query(built: Path, case: str) -> None:
    args, codes, words = QUERIES[case]
    _judge(measured("search", *args, "--index", built), codes, words)


QUERY_FILES: dict[str, tuple[bytes, set[int], str]] = {
    "queries file invalid UTF-8": (b"bread\nHund\xff\n", {2}, "UTF-8"),
    "queries file empty": (b"", {0, 2}, "quer"),
    "queries file blank lines": (b"\n \n\t\n" * 10_000, {0, 2}, "quer"),
    "queries file NUL": (b"lava\x00magma\n", {0, 2}, "quer"),
}


@pytest.mark.parametrize("case", sorted(QUERY_FILES))
def test_bad_queries_file(built: Path, tmp_path: Path, case: str) -> None:
    content, codes, words = QUERY_FILES[case]
    (tmp_path / "q.txt").write_bytes(content)
    _judge(measured("search", "--queries", tmp_path / "q.txt", "--index", built), codes, words)


# --index targets and damaged indexes: id -> (damage done to a copy, allowed exit codes) -------------
def _sql(*statements: str) -> Callable[[Path], None]:
    def damage(index: Path) -> None:
        conn = sqlite3.connect(index / "xsearch.db")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return damage


def _bytes(edit: Callable[[bytes], bytes], name: str = "xsearch.db") -> Callable[[Path], None]:
    def damage(index: Path) -> None:
        _sql()(index)
        files = sorted(index.glob(name))
        assert files, name
        for file in files:
            file.write_bytes(edit(file.read_bytes()))
        for side in ("xsearch.db-wal", "xsearch.db-shm"):
            (index / side).unlink(missing_ok=True)
    return damage


def _pages(data: bytes) -> bytes:
    out = bytearray(data)
    for offset in range(4096 * 2, len(out), 4096):
        out[offset + 8 : offset + 1500] = os.urandom(1492)
    return bytes(out)


def _replace_with_folder(name: str) -> Callable[[Path], None]:
    def damage(index: Path) -> None:
        (index / name).unlink()
        (index / name).mkdir()
    return damage


DAMAGE: dict[str, tuple[Callable[[Path], None], set[int]]] = {
    "db truncated": (_bytes(lambda d: d[: len(d) // 3]), {5}),
    "db cut to its header": (_bytes(lambda d: d[:100]), {5}),
    "db header junk": (_bytes(lambda d: b"not a database!!" + d[16:]), {5}),
    "db pages damaged": (_bytes(_pages), {5}),
    "db empty": (_bytes(lambda d: b""), {4}),
    "db is a folder": (_replace_with_folder("xsearch.db"), {4, 5}),
    "wal is junk": (lambda i: (_sql()(i), (i / "xsearch.db-wal").write_bytes(os.urandom(5000))), {0}),
    "faiss cut short": (_bytes(lambda d: d[: len(d) // 2], "ann-*.faiss"), {0, 5}),
    "faiss replaced by junk": (_bytes(lambda d: os.urandom(len(d)), "ann-*.faiss"), {0, 5}),
    "faiss zero bytes": (_bytes(lambda d: b"", "ann-*.faiss"), {0, 5}),
    "faiss from the future": (lambda i: shutil.copy(next(i.glob("ann-*.faiss")), i / "ann-999.faiss"), {0}),
    "faiss is a folder": (lambda i: (i / "ann-999.faiss").mkdir(), {0}),
    "setting not JSON": (_sql("UPDATE settings SET value = 'oops{' WHERE key = 'generation'"), {5}),
    "setting dim a word": (_sql("UPDATE settings SET value = '\"wide\"' WHERE key = 'dim'"), {5}),
    "setting dim wrong": (_sql("UPDATE settings SET value = '17' WHERE key = 'dim'"), {5, 6}),
    "setting model unknown": (_sql("UPDATE settings SET value = '\"no-such-model\"' WHERE key = 'model'"), {3}),
    "setting pooling unknown": (_sql("UPDATE settings SET value = '\"median\"' WHERE key = 'pooling'"), {3, 5}),
    "schema version from the future": (_sql("UPDATE settings SET value = '99' WHERE key = 'schema_version'"), {5}),
    "settings emptied": (_sql("DELETE FROM settings"), {4}),
    "token store table missing": (_sql("DROP TABLE token_vectors"), {0}),
    "chunks table missing": (_sql("DROP TABLE vectors", "DROP TABLE chunks"), {4, 5}),
    "token codec junk": (_sql("UPDATE blobs SET value = x'00ff00ff' WHERE key = 'token_codec'"), {5}),
    "vector blob wrong length": (_sql("UPDATE vectors SET vec = x'0000'"), {5}),
    "language sums junk": (_sql("UPDATE lang_stats SET sum = x'01'"), {5}),
    "translations table missing": (_sql("DROP TABLE IF EXISTS translations"), {0}),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    index = _index_of_notes(tmp_path_factory.mktemp("pristine"), 4, encoder)
    assert list(index.glob("ann-*.faiss"))
    return index


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_index(pristine: Path, tmp_path: Path, case: str) -> None:
    damage, codes = DAMAGE[case]
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    damage(copy)
    _judge(measured("search", "bread", "--index", copy), codes, "")
    _judge(measured("info", "--index", copy), codes | {0}, "")


def _target_file(tmp: Path) -> list[str | Path]:
    (tmp / "plain").write_text("not a folder")
    return ["--index", tmp / "plain"]


TARGETS: dict[str, tuple[Callable[[Path], list[str | Path]], list[str], set[int], str]] = {
    # id -> (makes the --index arguments, command, allowed exit codes, words of the error)
    "index folder is a file (search)": (_target_file, ["search", "lava"], {4}, "plain"),
    "index folder is a file (index)": (_target_file, ["index", "{docs}"], {2}, "plain"),
    "index folder missing (search)": (lambda t: ["--index", t / "nowhere"], ["search", "lava"], {4}, "nowhere"),
    "index folder without a database": (lambda t: ["--index", t], ["info"], {4}, "xsearch.db"),
    "index folder not empty (index)": (lambda t: ["--index", t / "docs"], ["index", "{docs}"], {2}, "docs"),
    "index path under a file": (lambda t: ["--index", _target_file(t)[1] / "sub"], ["index", "{docs}"], {1, 2}, "plain"),
    "path to index missing": (lambda t: ["--index", t / "idx"], ["index", "{docs}/nothing-here"], {2}, "nothing-here"),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_bad_index_target(tmp_path: Path, case: str) -> None:
    make_target, command, codes, words = TARGETS[case]
    docs = make_docs(tmp_path / "docs", 2)
    args = [str(a).replace("{docs}", str(docs)) for a in command] + [str(a) for a in make_target(tmp_path)]
    _judge(measured(*args), codes, words)


def test_write_lock_is_a_folder(pristine: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    (copy / "write.lock").unlink(missing_ok=True)
    (copy / "write.lock").mkdir()
    _judge(measured("index", make_docs(tmp_path / "docs", 1), "--index", copy), {7}, "write.lock")
    _judge(measured("search", "lava", "--index", copy), {0}, "")


API: dict[str, Callable[[Index], object]] = {
    "filter on an unknown operator": lambda i: i.search("lava", filters={"year": {"between": [1, 2]}}),
    "filter value a dict of dicts": lambda i: i.search("lava", filters={"topic": {"in": [{"a": 1}]}}),
    "filter with too many fields": lambda i: i.search("lava", filters={f"f{n}": n for n in range(100)}),
    "filter with too many values": lambda i: i.search("lava", filters={"f": {"in": list(range(5000))}}),
    "filter not a dict": lambda i: i.search("lava", filters=["lang", "de"]),
    "filter path not a string": lambda i: i.search("lava", filters={"path": 5}),
    "k a float": lambda i: i.search("lava", k=2.5),
    "query not a string": lambda i: i.search(b"lava"),
    "texts a string": lambda i: i.add_texts("lava"),
    "text empty": lambda i: i.add_texts(["  "]),
    "id unprintable": lambda i: i.add_texts(["lava"], ids=["a\x00b"]),
    "remove with a string": lambda i: i.remove("doc"),
}


@pytest.mark.parametrize("case", sorted(API))
def test_bad_api_call(built: Path, encoder, case: str) -> None:
    with Index.open(built, encoder=encoder) as index, pytest.raises(UsageError) as raised:
        API[case](index)
    assert "\n" not in str(raised.value) and str(raised.value)


def test_the_table_has_at_least_sixty_kinds() -> None:
    kinds = [*FILES, "pipe.txt", "socket.txt", *QUERIES, *QUERY_FILES, *DAMAGE, *TARGETS, *API,
             "write.lock folder", "write.lock unreadable", "read-only folder"]
    assert len(set(kinds)) == len(kinds) >= 60, len(kinds)


AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root may write and read any file")


@AS_ROOT
def test_write_lock_unreadable(pristine: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    (copy / "write.lock").touch()
    (copy / "write.lock").chmod(0)
    _judge(measured("index", make_docs(tmp_path / "docs", 1), "--index", copy), {7}, "write.lock")
    _judge(measured("search", "lava", "--index", copy), {0}, "")


@AS_ROOT
def test_read_only_folder(pristine: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    for name in ("xsearch.db-wal", "xsearch.db-shm", "write.lock"):
        (copy / name).unlink(missing_ok=True)
    copy.chmod(0o555)
    try:
        _judge(measured("search", "lava", "--index", copy), {0}, "")
        _judge(measured("index", make_docs(tmp_path / "docs", 1), "--index", copy), {2}, "read-only")
    finally:
        copy.chmod(0o755)
