"""Extraction and chunking stay linear in the input, and each file has a budget: a file over it
is skipped with a reason, never read for minutes."""

from __future__ import annotations

import importlib
import io
import random
import time
import zipfile
from pathlib import Path

import pytest

from xsearch.errors import ExtractionError
from xsearch.ingest.chunk import chunk_text
from xsearch.ingest.extract import extract
from xsearch.types import SourceFile

extract_module = importlib.import_module("xsearch.ingest.extract")  # the package re-exports the function

CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天"


def make_docx(path: Path, empty_paragraphs: int, paragraphs: tuple[str, ...] = ("Hello world.",),
              title_style: bool = False) -> Path:
    """A DOCX holding ``paragraphs`` after ``empty_paragraphs`` empty ones (written into the XML,
    as python-docx would take minutes to add them)."""
    import docx

    document = docx.Document()
    if title_style:
        document.add_paragraph("The Title", style="Title")
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + b"<w:p/>" * empty_paragraphs, 1)
            archive.writestr(item, data)
    return path


def _read(path: Path) -> list:
    return extract(SourceFile(str(path), path.stat().st_size, 0.0))


def test_docx_of_empty_paragraphs_reads_in_linear_time(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "empty.docx", 30_000, ("First words.", "Second words."), title_style=True)
    started = time.perf_counter()
    documents = _read(path)
    assert time.perf_counter() - started < 10  # about 5 ms per paragraph before: 2.5 minutes
    assert documents[0].text == "The Title\n\nFirst words.\n\nSecond words." and documents[0].title == "The Title"


def test_docx_with_too_many_paragraphs_is_skipped_unread(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "many.docx", extract_module.MAX_DOCX_PARAGRAPHS)
    started = time.perf_counter()
    with pytest.raises(ExtractionError, match="paragraphs, more than"):
        _read(path)
    assert time.perf_counter() - started < 5 and path.stat().st_size < 100_000


def test_docx_body_over_the_size_limit_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "MAX_DOCX_XML_BYTES", 10_000)
    with pytest.raises(ExtractionError, match="DOCX body over"):
        _read(make_docx(tmp_path / "big.docx", 5_000))


def test_text_over_the_character_budget_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "MAX_EXTRACT_CHARS", 1_000)
    (tmp_path / "ok.txt").write_text("word " * 200, encoding="utf-8")
    (tmp_path / "long.txt").write_text("word " * 201, encoding="utf-8")
    (tmp_path / "long.jsonl").write_text('{"text": "%s"}\n' % ("x" * 600) * 2, encoding="utf-8")
    assert _read(tmp_path / "ok.txt")
    for name in ("long.txt", "long.jsonl"):
        with pytest.raises(ExtractionError, match="more than 1,000 characters"):
            _read(tmp_path / name)


def test_docx_over_the_time_budget_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "MAX_EXTRACT_SECONDS", -1.0)
    with pytest.raises(ExtractionError, match="reading took more than"):
        _read(make_docx(tmp_path / "slow.docx", 0))


def _counting(tokens_per_char: dict[str, float]):
    """A token counter (a fixed number of tokens per character class) that records its work."""
    counted: list[int] = []

    def count(texts: list[str]) -> list[int]:
        counted.append(sum(len(text) for text in texts))
        return [max(1, int(sum(tokens_per_char.get("cjk" if "\u4e00" <= c <= "\u9fff" else "latin", 1.0)
                               for c in text))) for text in texts]

    return count, counted


@pytest.mark.parametrize("kind", ["cjk", "latin", "latin-spaced"])
def test_a_200k_character_line_chunks_in_linear_time(kind: str) -> None:
    rng = random.Random(0)
    alphabet = {"cjk": CJK, "latin": "abcdefghijklmnopqrstuvwxyz", "latin-spaced": "abcdefghij klmnopqrstuvwxyz"}[kind]
    text = "".join(rng.choice(alphabet) for _ in range(200_000))
    count, counted = _counting({"cjk": 1.0, "latin": 0.4})
    started = time.perf_counter()
    chunks = chunk_text(text, count, max_tokens=256)
    assert time.perf_counter() - started < 10
    assert sum(counted) <= 3 * len(text) and len(counted) <= 4  # each character counted a few times, not n
    assert all(c.n_tokens <= 256 for c in chunks) and chunks[0].start == 0 and chunks[-1].end == len(text)
