"""Property-based tests: the filter parser, the JSON / JSON Lines reader and the chunker raise
only their documented errors on any input, and chunks always lie inside their text."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xsearch.errors import ExtractionError, XsearchError
from xsearch.ingest.chunk import chunk_text, split_sentences
from xsearch.ingest.extract import extract
from xsearch.search.filters import Filters
from xsearch.types import SourceFile

FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
filter_keys = st.sampled_from(["lang", "path", "topic", "metadata.lang", "metadata.", "", 'a"b', "year"]) | st.text(
    max_size=10)
filter_values = json_like | st.fixed_dictionaries({"in": json_like}) | st.lists(st.text(max_size=6), max_size=4)


@FAST
@given(filters=st.dictionaries(filter_keys, filter_values, max_size=5) | json_like,
       langs=st.none() | st.lists(st.text(max_size=4), max_size=3))
def test_filter_parser_raises_only_its_own_errors(filters, langs) -> None:
    try:
        parsed = Filters.parse(filters, langs=langs)
    except XsearchError:
        return
    if parsed is None:
        return
    where, params = parsed.where()
    conn = sqlite3.connect(":memory:")  # whatever parses also runs
    conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER, lang TEXT)")
    conn.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, path TEXT, metadata TEXT)")
    conn.execute("INSERT INTO documents VALUES (1, '/a/b.md', '{\"topic\": \"x\", \"year\": 2024}')")
    conn.execute("INSERT INTO documents VALUES (2, '/c.txt', '{\"v\": NaN}')")
    conn.execute("INSERT INTO chunks VALUES (1, 1, 'en'), (2, 2, 'de')")
    conn.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", params).fetchall()
    conn.close()


json_bytes = st.binary(max_size=300) | st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")) \
    | st.lists(json_like.map(repr), max_size=4).map(lambda lines: "\n".join(lines).encode())
json_text = st.recursive(st.just("1") | st.just('"t"') | st.just('{"text": "hi"}') | st.just("NaN"),
                         lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
                         | inner.map(lambda item: '{"text": "a", "m": %s}' % item), max_leaves=10)


@FAST
@given(data=json_bytes | json_text.map(str.encode), suffix=st.sampled_from([".json", ".jsonl"]))
def test_json_reader_gives_documents_or_a_reason(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(data)
        try:
            documents = extract(SourceFile(str(path), len(data), 0.0))
        except ExtractionError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    assert documents and all(doc.text.strip() and isinstance(doc.metadata, dict) for doc in documents)


def _count(texts: list[str]) -> list[int]:
    return [max(1, sum(2 if ord(c) > 0x2E80 else 1 for c in text) // 3) for text in texts]


@FAST
@given(text=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list(" \n.!?。…;\u0301\u200dก")),
                    max_size=400),
       max_tokens=st.integers(1, 40), overlap=st.integers(0, 3))
def test_chunks_lie_inside_the_text_and_cover_it_in_order(text: str, max_tokens: int, overlap: int) -> None:
    chunks = chunk_text(text, _count, max_tokens=max_tokens, overlap=overlap)
    spans = split_sentences(text)
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text) and chunk.text == text[chunk.start : chunk.end]
    assert all(a.start < b.start and a.end < b.end for a, b in zip(chunks, chunks[1:]))
    covered = "".join(text[start:end] for start, end in spans)
    kept = [c for c in text if not c.isspace()]
    assert [c for c in covered if not c.isspace()] == kept  # sentences hold every non-space character
    if chunks:
        assert chunks[0].start == spans[0][0] and chunks[-1].end == spans[-1][1]
        assert all(b.start <= a.end or text[a.end : b.start].isspace() for a, b in zip(chunks, chunks[1:]))
    else:
        assert not kept
