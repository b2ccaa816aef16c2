"""Keyword search: the FTS5 trigram index kept by triggers, BM25 queries in every script, fusion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from xsearch.search.fusion import fuse, rrf
from xsearch.search.lexical import lexical_search, lexical_spans, parse_query
from xsearch.store.db import FileState, NewDocument, Store
from xsearch.store.lexical import ensure_lexical
from xsearch.types import Chunk, Document

CORPUS = {
    "en.txt": ("en", ["Plants turn sunlight into chemical energy by photosynthesis.",
                      "The moon landing happened in 1969, with Apollo 11."]),
    "codes.txt": ("en", ["Order the pump XK-4711 for the north plant.",
                         "The valve XK-4712 replaces the older model.",
                         "Glucose has the formula C6H12O6 and feeds the cell."]),
    "de.txt": ("de", ["Die GRÖSSE der Äpfel hängt vom Wetter ab.", "Der Öl-Preis stieg im März."]),
    "ja.txt": ("ja", ["植物は光合成によって光エネルギーを化学エネルギーに変える。",
                      "この反応で酸素が放出される。", "月面着陸は1969年に行われた。"]),
    "zh.txt": ("zh", ["植物通过光合作用把光能转化为化学能。", "火山爆发时会喷出岩浆。"]),
    "th.txt": ("th", ["พืชใช้การสังเคราะห์ด้วยแสงเพื่อสร้างอาหาร", "ภูเขาไฟระเบิดเมื่อแมกมาดันขึ้นมา"]),
    "ar.txt": ("ar", ["تقوم النباتات بعملية التمثيل الضوئي لإنتاج الغذاء.", "هبط الإنسان على سطح القمر."]),
    "ru.txt": ("ru", ["Растения превращают свет в энергию путём фотосинтеза.", "Вулкан извергает лаву."]),
}


def _file(path: str, lang: str, texts: list[str]) -> tuple[FileState, list[NewDocument]]:
    text = "\n".join(texts)
    chunks, start = [], 0
    for part in texts:
        chunks.append(Chunk(text=part, start=start, end=start + len(part), lang=lang))
        start += len(part) + 1
    vectors = np.ones((len(chunks), 4), dtype=np.float32)
    doc = Document(path=path, text=text, lang=lang)
    return FileState(path=path, hash=path, mtime=0.0, size=len(text)), [NewDocument(doc, chunks, vectors)]


def _open(tmp_path: Path, corpus: dict = CORPUS) -> Store:
    store = Store(tmp_path, create=True)
    store.set_settings({"dim": 4})
    ensure_lexical(store.db.conn)  # idempotent: Store may already have called it
    store.replace_files([], [_file(path, lang, texts) for path, (lang, texts) in corpus.items()])
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """The corpus, shared read-only by the tests that only search."""
    store = _open(tmp_path_factory.mktemp("lexical"))
    yield store
    store.close()


@pytest.fixture
def fresh(tmp_path: Path):
    """The corpus in a store of the test's own, for tests that write."""
    store = _open(tmp_path)
    yield store
    store.close()


def _ids(store: Store) -> dict[str, int]:
    return {text: cid for cid, text in store.db.execute("SELECT id, text FROM chunks")}


def _search(store: Store, query: str, k: int = 5, **kwargs) -> list[str]:
    found, = lexical_search(store, [query], k, **kwargs)
    ids, scores = found.ids, found.scores
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and len(ids) == len(scores) <= k
    assert list(scores) == sorted(scores, reverse=True)
    texts = {cid: text for text, cid in _ids(store).items()}
    return [texts[int(cid)] for cid in ids]


@pytest.mark.parametrize("query,expected", [
    ("photosynthesis", "Plants turn sunlight"),
    ("Apollo moon", "The moon landing"),
    ("C6H12O6", "Glucose has the formula"),
    ("größe äpfel", "Die GRÖSSE der Äpfel"),
    ("ÄPFEL", "Die GRÖSSE der Äpfel"),
    ("öl", "Der Öl-Preis"),
    ("光合成", "植物は光合成"),
    ("酸素", "この反応で酸素"),
    ("酸素を出す", "この反応で酸素"),
    ("光合作用", "植物通过光合作用"),
    ("火山", "火山爆发"),
    ("การสังเคราะห์ด้วยแสง", "พืชใช้การสังเคราะห์"),
    ("ภูเขาไฟ", "ภูเขาไฟระเบิด"),
    ("التمثيل الضوئي", "تقوم النباتات"),
    ("ФОТОСИНТЕЗ", "Растения превращают"),
    ("вулкан", "Вулкан извергает"),
])
def test_finds_words_in_every_script(store: Store, query: str, expected: str) -> None:
    found = _search(store, query)
    assert found and found[0].startswith(expected), found


def test_product_code_is_exact(store: Store) -> None:
    found = _search(store, "XK-4711")
    assert found[0].startswith("Order the pump XK-4711")
    assert _search(store, "xk-4712")[0].startswith("The valve XK-4712")


def test_short_latin_terms_need_word_boundaries(store: Store) -> None:
    assert _search(store, "XK") == ["Order the pump XK-4711 for the north plant.",
                                    "The valve XK-4712 replaces the older model."]
    assert _search(store, "ch") == []  # inside "chemical" only, never a word
    assert _search(store, "a") == []


def test_no_match_and_empty_queries(store: Store) -> None:
    assert _search(store, "zyzzyva") == []
    results = lexical_search(store, ["", "   ", "?!", "plants"], 3)
    assert [len(found) for found in results] == [0, 0, 0, 1]
    assert lexical_search(store, [], 3) == []
    assert len(lexical_search(store, ["plants"], 0)[0]) == 0


@pytest.mark.parametrize("query", [
    '"foo* AND (bar OR NEAR(', 'text: ^moon', '"', "'", "-", "NOT", "a OR b AND", "\\", "%_%",
    "col:XK*", "(((", "NEAR(a b, 3)", "{text}: x", "x\x00y",
])
def test_fts_syntax_never_raises(store: Store, query: str) -> None:
    lexical_search(store, [query], 5)


def test_allowed_ids_filter_before_the_cut(store: Store) -> None:
    ids = _ids(store)
    english = np.array([cid for text, cid in ids.items() if text[0].isascii()], dtype=np.int64)
    found, = lexical_search(store, ["the"], 3, allowed_ids=english)
    assert len(found) == 3 and set(found.ids.tolist()) <= set(english.tolist())
    only = np.array([ids["The valve XK-4712 replaces the older model."]], dtype=np.int64)
    found, = lexical_search(store, ["XK-4711"], 5, allowed_ids=only)
    assert found.ids.tolist() == only.tolist()  # matched through the short part "XK" only
    found, = lexical_search(store, ["酸素"], 5, allowed_ids=english)
    assert len(found) == 0
    found, = lexical_search(store, ["plants"], 5, allowed_ids=np.zeros(0, dtype=np.int64))
    assert len(found) == 0
    messy = np.concatenate([english[::-1], english, np.arange(10_000, 110_000)])  # unsorted, repeated, unknown
    found, = lexical_search(store, ["the"], 3, allowed_ids=messy)
    assert len(found) == 3 and set(found.ids.tolist()) <= set(english.tolist())


def test_short_and_long_terms_add_up(store: Store) -> None:
    both = _search(store, "化学 光合成")
    assert both[0].startswith("植物は光合成")


def test_deleting_files_empties_the_index(fresh: Store) -> None:
    assert _search(fresh, "XK-4711")
    fresh.replace_files(["codes.txt"], [])
    assert _search(fresh, "XK-4711") == [] and _search(fresh, "C6H12O6") == []
    fresh.replace_files([], [_file("ja.txt", "ja", ["新しい文書には酸素がない。"])])  # replaced, not added
    assert _search(fresh, "光合成") == []
    assert _search(fresh, "酸素") == ["新しい文書には酸素がない。"]
    conn = fresh.db.conn
    conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
    n_fts = conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0]
    assert n_fts == conn.execute("SELECT count(*) FROM chunks").fetchone()[0]


def test_updates_are_reindexed(fresh: Store) -> None:
    fresh.db.execute("UPDATE chunks SET text = 'quasar' WHERE text = 'Вулкан извергает лаву.'")
    assert _search(fresh, "вулкан") == [] and _search(fresh, "quasar") == ["quasar"]


def test_ensure_lexical_backfills_and_is_idempotent(tmp_path: Path) -> None:
    store = _open(tmp_path)
    conn = store.db.conn
    for name in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE chunks_fts_instance")
    conn.execute("DROP TABLE chunks_fts")  # now as an index from before the keyword index
    with pytest.raises(sqlite3.OperationalError):
        lexical_search(store, ["plants"], 3)
    ensure_lexical(conn)
    ensure_lexical(conn)
    assert _search(store, "photosynthesis")[0].startswith("Plants")
    assert _search(store, "酸素")[0].startswith("この反応で酸素")
    assert conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0] == 18
    store.replace_files(["codes.txt"], [])
    assert _search(store, "C6H12O6") == []
    store.close()
    reopened = Store(tmp_path)
    ensure_lexical(reopened.db.conn)
    assert _search(reopened, "photosynthesis")[0].startswith("Plants")
    reopened.close()


def test_query_terms() -> None:
    assert parse_query("XK-4711").phrases == ("XK-4711", "4711")
    assert [s.text for s in parse_query("XK-4711").short] == ["XK"]
    assert parse_query("C6H12O6, glucose!").phrases == ("C6H12O6", "glucose")
    japanese = parse_query("酸素を作る")
    assert "酸素を" in japanese.phrases and "酸素を作る" in japanese.phrases
    assert [(s.text, s.bounded) for s in japanese.short] == [("酸素", False)]
    assert not parse_query(' "*()^: a ')


def test_lexical_spans() -> None:
    text = "Order XK-4711 now; the xk-4711 is in stock."
    spans = lexical_spans(text, "XK-4711")
    assert [text[a:b] for a, b in spans] == ["XK-4711", "xk-4711"]
    assert lexical_spans("a cat and a dog", "a cat") == [(2, 5)]
    assert lexical_spans("no match", "zebra") == [] and lexical_spans("", "x y z") == []
    german = "Die Straße ist groß."
    assert [german[a:b] for a, b in lexical_spans(german, "STRASSE GROSS")] == ["Straße", "groß"]
    japanese = "光合成で酸素ができる。酸素"
    assert [japanese[a:b] for a, b in lexical_spans(japanese, "酸素")] == ["酸素", "酸素"]
    assert lexical_spans(japanese, "光合成 酸素") == [(0, 3), (4, 6), (11, 13)]
    assert lexical_spans("abcdef", "abcd cdef") == [(0, 6)]  # overlapping spans merge


def test_rrf_by_hand() -> None:
    fused = rrf([[1, 2, 3], [3, 1, 4]], k=10)
    expected = {1: 1 / 11 + 1 / 12, 2: 1 / 12, 3: 1 / 13 + 1 / 11, 4: 1 / 13}
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    assert all(score == pytest.approx(expected[i]) for i, score in fused)
    weighted = rrf([[1, 2], [2, 1]], k=0, weights=[1.0, 3.0])
    assert weighted == [(2, pytest.approx(3.5)), (1, pytest.approx(2.5))]
    # equal scores: the id with the better single rank, then the smaller id, wins
    assert [i for i, _ in rrf([[5, 6], [6, 5]])] == [5, 6]
    assert [i for i, _ in rrf([[9], [8]])] == [8, 9]
    assert rrf([]) == [] and rrf([[7, 7]]) == [(7, pytest.approx(1 / 61))]
    with pytest.raises(ValueError):
        rrf([[1]], weights=[1.0, 2.0])


def test_zscore_fuse() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 3, 50), rng.normal(-2, 0.1, 50)
    za, zb = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    fused = fuse(a, b, 0.3)
    assert fused.dtype == np.float32 and fused.shape == (50,)
    np.testing.assert_allclose(fused, 0.7 * za + 0.3 * zb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fuse(a, b, 0.0), za, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fuse(a, np.full(50, 4.0), 0.5), 0.5 * za, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fuse(a * 10 + 3, a, 0.5), za, rtol=1e-5, atol=1e-6)  # scale-free
    assert fuse(np.zeros(0), np.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError):
        fuse(np.zeros(3), np.zeros(4), 0.5)
