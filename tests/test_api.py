"""The Python API end to end, with the real model: texts with metadata, filters, removal,
reopening, batch search, the README example, and many readers beside one writer."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from api_corpus import TEXTS, add_corpus, meta
from conftest import ROOT, SAMPLE
from xsearch import Hit, Index
from xsearch.errors import IndexLockedError, IndexMismatchError, UsageError


@pytest.fixture(scope="module")
def api_index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Index:
    """The corpus texts plus two sample folders and the JSON Lines notes; shared read-only."""
    index = Index.create(tmp_path_factory.mktemp("api") / "index", model="multilingual-e5-small", encoder=encoder)
    add_corpus(index)
    index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes", SAMPLE / "notes.jsonl"])
    yield index
    index.close()


def test_texts_come_back_with_ids_metadata_and_other_languages(api_index: Index) -> None:
    texts_only = {"topic": "photosynthesis", "year": {"in": [2021, 2022, 2023, 2024]}}  # notes.jsonl has the topic too
    hits = api_index.search("Wie stellen Pflanzen aus Licht Zucker her?", k=8, filters=texts_only)
    assert len(hits) == 5
    assert {h.id for h in hits} == {"photo-en", "photo-de", "photo-es", "photo-ja", "photo-zh"}
    assert {h.lang for h in hits} == {"en", "de", "es", "ja", "zh"}
    for hit in hits:
        assert isinstance(hit, Hit) and hit.path == "" and hit.metadata == meta(hit.id)
        assert hit.to_dict()["id"] == hit.id and hit.end > hit.start
        with pytest.raises(AttributeError):
            hit.score = 0.0  # type: ignore[misc]
    files = api_index.search("volcano eruption lava", k=3, filters={"path": "volcanoes/*"})
    assert all(h.id == h.path and Path(h.path).is_file() for h in files)


FILTERS = [
    ({"lang": "ja"}, lambda h: h.lang == "ja"),
    ({"lang": ["ru", "fr"]}, lambda h: h.lang in ("ru", "fr")),
    ({"path": "volcanoes/*"}, lambda h: "/volcanoes/" in h.path),
    ({"path": ["*.md", "*.html"]}, lambda h: h.path.endswith((".md", ".html"))),
    ({"path": f"{SAMPLE.resolve()}/volcanoes/*"}, lambda h: h.path.startswith(f"{SAMPLE.resolve()}/volcanoes/")),
    ({"topic": "moon"}, lambda h: h.metadata.get("topic") == "moon"),
    ({"year": {"in": [2019, 2020]}}, lambda h: h.metadata.get("year") in (2019, 2020)),
    ({"source": "encyclopedia", "lang": "en"}, lambda h: h.metadata.get("source") == "encyclopedia" and h.lang == "en"),
    ({"metadata.topic": "volcanoes", "lang": ["ru", "ja"]},
     lambda h: h.metadata.get("topic") == "volcanoes" and h.lang in ("ru", "ja")),
]


@pytest.mark.parametrize("filters,keep", FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_a_filtered_search_returns_k_hits_that_all_match(api_index: Index, filters, keep) -> None:
    # An English question about plants: unfiltered, its best hits match none of the filters above.
    hits = api_index.search("How do plants turn sunlight into sugar?", k=3, filters=filters)
    assert len(hits) == 3, [(h.id, h.lang) for h in hits]
    assert all(keep(h) for h in hits), [(h.id, h.lang, h.metadata) for h in hits]
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_filters_with_fewer_matches_than_k_and_other_modes(api_index: Index) -> None:
    assert [h.id for h in api_index.search("plants", k=5, filters={"year": 2024})] == ["photo-zh"]
    assert api_index.search("plants", k=5, filters={"topic": "no such topic"}) == []
    assert api_index.search("plants", k=5, filters={"lang": "de"}, langs=["ja"]) == []
    for mode in ("lexical", "hybrid"):
        hits = api_index.search("Armstrong", k=2, filters={"lang": "de"}, mode=mode)
        assert [h.id for h in hits][:1] == ["moon-de"] and all(h.lang == "de" for h in hits)
    grouped = api_index.search("volcano", k=3, filters={"path": "notes.jsonl"}, group_by="document")
    assert len({h.id for h in grouped}) == len(grouped) and all(h.id.startswith(h.path) for h in grouped)


@pytest.mark.parametrize("filters,message", [
    ("lang=de", "must be a dict"),
    ({"lang": []}, "at least one value"),
    ({"lang": 3}, "string or a list of strings"),
    ({"path": [None]}, "string or a list of strings"),
    ({"topic": ["a", "b"]}, "{'in': ['a', 'b']}"),
    ({"topic": {"eq": "a"}}, "only operator is 'in'"),
    ({"topic": {"in": []}}, "non-empty list"),
    ({"topic": None}, "strings, numbers or booleans"),
    ({"topic": {"in": [{"x": 1}]}}, "strings, numbers or booleans"),
    ({"": 1}, "non-empty strings"),
])
def test_bad_filters_are_refused_with_the_reason(api_index: Index, filters, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        api_index.search("plants", filters=filters)


def test_bad_arguments_are_refused_before_any_write(api_index: Index) -> None:
    before = api_index.info()
    bad_calls = [
        lambda: api_index.add_texts("one text"),
        lambda: api_index.add_texts(["a"], metadata=[{}, {}]),
        lambda: api_index.add_texts(["a"], metadata={"topic": "x"}),
        lambda: api_index.add_texts(["a", "  "]),
        lambda: api_index.add_texts(["a", "b"], ids=["same", "same"]),
        lambda: api_index.add_texts(["a"], ids=[""]),
        lambda: api_index.add_texts(["a"], metadata=[{"when": object()}]),
        lambda: api_index.remove(),
        lambda: api_index.remove(ids="photo-en"),
        lambda: api_index.search("plants", k=0),
        lambda: api_index.search_batch("plants"),
    ]
    for call in bad_calls:
        with pytest.raises(UsageError):
            call()
    assert api_index.info().generation == before.generation


def test_create_takes_settings_as_keywords(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "a", pooling="mean", max_tokens=128, encoder=encoder) as index:
        assert (index.config.model, index.config.max_tokens) == ("multilingual-e5-small", 128)
    with pytest.raises(IndexMismatchError):
        Index.create(tmp_path / "b", pooling="cls", encoder=encoder)
    with pytest.raises(UsageError):
        Index.create(tmp_path / "c", scoring="fancy", encoder=encoder)


def test_remove_replace_reopen_and_batch(tmp_path: Path, sample_copy: Path, encoder) -> None:
    path = tmp_path / "idx"
    notes = str((sample_copy / "notes.jsonl").resolve())
    with Index.create(path, encoder=encoder) as index:
        assert add_corpus(index) == [doc_id for doc_id, *_ in TEXTS]
        index.add_paths([sample_copy / "volcanoes", sample_copy / "notes.jsonl"])
        info = index.info()
        assert (info.texts, info.files) == (len(TEXTS), 7)

        volcano_files = {str(p.resolve()) for p in (sample_copy / "volcanoes").iterdir()}
        assert {h.id for h in index.search("lava", k=50, filters={"path": "volcanoes/*"})} == volcano_files
        records = {h.id for h in index.search("notes", k=50, filters={"path": "notes.jsonl"})}
        assert notes in records and f"{notes}#2" in records and all(r.split("#")[0] == notes for r in records)

        assert index.remove(ids=["moon-de", f"{notes}#2", "no such id"]) == ["moon-de", f"{notes}#2"]
        assert index.remove(ids=["moon-de"]) == []
        replaced = index.add_texts(["Der Mond ist etwa 384.000 Kilometer von der Erde entfernt."],
                                   metadata=[{"topic": "moon", "year": 2025}], ids=["moon-en"])
        assert replaced == ["moon-en"]
        assert sorted(index.remove(paths=[sample_copy / "volcanoes"])) == sorted(volcano_files)
        index.add_paths([sample_copy / "notes.jsonl"])  # unchanged: the removed record stays out
        state = index.info()
        assert (state.texts, state.files) == (len(TEXTS) - 1, 1)

    with Index.open(path, encoder=encoder) as index:
        assert index.info().documents == state.documents
        everything = index.search("Mond", k=state.chunks)
        ids = [h.id for h in everything]
        assert len(everything) == state.chunks and "moon-de" not in ids and f"{notes}#2" not in ids
        assert not any(i in volcano_files for i in ids) and ids.count("moon-en") == 1
        moon = index.search("Wie weit ist der Mond entfernt?", k=1, filters={"year": 2025})
        assert [h.id for h in moon] == ["moon-en"] and "384.000" in moon[0].text

        queries = ["Wie weit ist der Mond?", "volcano eruption"]
        batch = index.search_batch(queries, k=2, filters={"topic": "moon"})
        assert [[h.id for h in hits] for hits in batch] == \
               [[h.id for h in index.search(q, k=2, filters={"topic": "moon"})] for q in queries]
        assert all(h.metadata["topic"] == "moon" for hits in batch for h in hits)


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    example = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md (Python API)", "exec"), namespace)
    hits = namespace["hits"]
    assert hits and all(isinstance(h, Hit) and h.metadata["topic"] == "biology" for h in hits)
    assert all(h.text in namespace["prompt"] for h in hits)


def test_a_second_writing_process_is_refused_and_changes_nothing(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_texts(["Erste Notiz."], ids=["first"])
        hold_lock = ("import fcntl, sys, time; h = open(sys.argv[1], 'a+'); "
                     "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
        holder = subprocess.Popen([sys.executable, "-c", hold_lock, str(index.path / "write.lock")],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(IndexLockedError):
                index.add_texts(["Zweite Notiz."], ids=["second"])
            with pytest.raises(IndexLockedError):
                index.remove(ids=["first"])
        finally:
            holder.kill()
            holder.wait()
        index.store.check()
        assert [h.id for h in index.search("Notiz", k=5)] == ["first"]
        index.add_texts(["Zweite Notiz."], ids=["second"])
        assert {h.id for h in index.search("Notiz", k=5)} == {"first", "second"}


def test_readers_search_while_one_writer_adds(tmp_path: Path, encoder) -> None:
    """8 threads search one open index while a thread adds 1,000 texts in 20 commits of 50."""
    colours = ["red", "blue", "green", "amber", "violet"]
    texts = [f"Crate {n} holds {n % 7 + 2} {colours[n % 5]} lamps." for n in range(1000)]
    ids = [f"crate-{n}" for n in range(1000)]
    queries = ["Which crate holds blue lamps?", "Welche Kiste enthält grüne Lampen?", "赤いランプ"]
    errors: list[BaseException] = []
    seen: list[list[int]] = [[] for _ in range(8)]
    done = threading.Event()

    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_texts(["Lamps light the warehouse."], metadata=[{"kind": "intro"}])

        def write() -> None:
            try:
                for start in range(0, len(texts), 50):
                    index.add_texts(texts[start : start + 50], ids=ids[start : start + 50],
                                    metadata=[{"kind": "crate"}] * 50)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                done.set()

        def read(n: int) -> None:
            try:
                for turn in itertools.count():
                    if done.is_set():
                        break
                    time.sleep(0.2)  # two cores: leave the writer some
                    if turn % 2 == 0:
                        hits = index.search(queries[n % len(queries)], k=5)
                        assert hits and all(h.text and h.id for h in hits)
                        continue
                    # Only whole commits are ever visible: a multiple of 50 crates, never fewer than before.
                    crates = index.search("crate", k=1000, filters={"kind": "crate"}, rerank=False)
                    assert len(crates) % 50 == 0 and len({h.id for h in crates}) == len(crates)
                    assert not seen[n] or len(crates) >= seen[n][-1]
                    seen[n].append(len(crates))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=write)] + [threading.Thread(target=read, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors, errors
        assert all(counts for counts in seen) and max(max(c) for c in seen) > 0
        crates = index.search("crate", k=1000, filters={"kind": "crate"}, rerank=False)
        assert {h.id for h in crates} == set(ids)
        assert index.info().documents == 1001


def test_vector_index_copy_is_independent() -> None:
    from xsearch.ann import build

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = build(vectors, np.arange(2000), factory="IVF8,Flat")
    twin = ann.copy()
    twin.remove(np.arange(1000))
    assert (len(ann), len(twin)) == (2000, 1000)
    _, found = ann.search(vectors[:3], 1)
    assert found[:, 0].tolist() == [0, 1, 2]
