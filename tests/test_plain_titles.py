"""The title of a plain-text file: its first line when that looks like a heading."""

from __future__ import annotations

from pathlib import Path

import pytest

from xsearch.ingest.extract import PLAIN_TITLE_CHARS, extract_batch
from xsearch.types import SourceFile

BODY = "Plants turn light into sugar. They need water and air."


@pytest.mark.parametrize("text,title", [
    (f"Le café, du Yémen aux cafés de Paris\n\n{BODY}", "Le café, du Yémen aux cafés de Paris"),
    (f"# Notes on leaves #\n{BODY}", "Notes on leaves"),
    (f"\n\nHow plants eat\n\n{BODY}", "How plants eat"),
    (f"光合成のしくみ\n\n{BODY}", "光合成のしくみ"),
    (f"A first sentence ends here.\n\n{BODY}", ""),
    (f"光合成は光を使う。\n\n{BODY}", ""),
    (f"Not followed by a blank line\n{BODY}", ""),
    ("x" * (PLAIN_TITLE_CHARS + 1) + f"\n\n{BODY}", ""),
    (BODY, ""),
])
def test_txt_title_from_a_heading_like_first_line(tmp_path: Path, text: str, title: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    documents, skipped = extract_batch([SourceFile(str(path), stat.st_size, stat.st_mtime)])
    assert not skipped and [doc.title for doc in documents] == [title]
