"""Translation links at index time, translation feedback, grouping by translation, readable
scores and explanations: with the real model on small parallel and non-parallel corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xsearch import Index
from xsearch.config import MODES
from xsearch.errors import UsageError
from xsearch.search.engine import STAGES
from xsearch.search.scores import bm25_relevance, relevance
from xsearch.translations import update_links

# Three statements, each in four languages; and three unrelated statements in English only.
PARALLEL = {
    "bees": {
        "en": "Honey bees dance in the hive to tell the other bees where the flowers are.",
        "de": "Honigbienen tanzen im Stock, um den anderen Bienen zu zeigen, wo die Blumen sind.",
        "fr": "Les abeilles dansent dans la ruche pour indiquer aux autres abeilles où se trouvent les fleurs.",
        "ja": "ミツバチは巣の中で踊り、ほかのハチに花のある場所を知らせる。",
    },
    "glacier": {
        "en": "Glaciers form where more snow falls in winter than melts in summer, year after year.",
        "de": "Gletscher entstehen dort, wo im Winter Jahr für Jahr mehr Schnee fällt als im Sommer schmilzt.",
        "fr": "Les glaciers se forment là où il tombe plus de neige en hiver qu'il n'en fond en été, année après année.",
        "ja": "氷河は、冬に降る雪が夏に解ける雪より多い状態が毎年続く場所で生まれる。",
    },
    "bread": {
        "en": "Bread rises because yeast turns sugar into carbon dioxide bubbles in the dough.",
        "de": "Brot geht auf, weil die Hefe im Teig Zucker in Blasen aus Kohlendioxid verwandelt.",
        "fr": "Le pain lève parce que la levure transforme le sucre en bulles de gaz carbonique dans la pâte.",
        "ja": "パンが膨らむのは、酵母が生地の中で糖を二酸化炭素の泡に変えるからだ。",
    },
}
UNRELATED = {
    "chess": "The rook moves in straight lines along ranks and files on the chessboard.",
    "tax": "The quarterly sales tax return is due on the twentieth day after the quarter ends.",
    "jazz": "Bebop musicians played fast tempos with complex chord changes and improvised solos.",
}


def _ids() -> list[str]:
    return [f"{topic}-{lang}" for topic, versions in PARALLEL.items() for lang in versions] + list(UNRELATED)


def _texts() -> list[str]:
    return [text for versions in PARALLEL.values() for text in versions.values()] + list(UNRELATED.values())


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory, encoder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("parallel") / "index", encoder=encoder)
    index.add_texts(_texts(), ids=_ids())
    yield index
    index.close()


def _linked_ids(index: Index) -> set[frozenset[str]]:
    """The links of the index as pairs of document ids."""
    if not index.store.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'translations'").fetchone():
        return set()
    pairs = index.store.db.execute("SELECT chunk_id, other_id FROM translations").fetchall()
    rows = index.store.chunk_rows(sorted({chunk for pair in pairs for chunk in pair}))
    return {frozenset((rows[a].doc_key, rows[b].doc_key)) for a, b in pairs}


def test_every_mode_has_its_stages() -> None:
    assert set(STAGES) == set(MODES)


def test_links_join_translations_and_nothing_else(parallel: Index) -> None:
    pairs = _linked_ids(parallel)
    assert pairs, "no translation links were made"
    for pair in pairs:
        first, second = sorted(pair)
        assert first.split("-")[0] == second.split("-")[0], pair  # the same statement
        assert first not in UNRELATED and second not in UNRELATED
    assert len(pairs) >= 12  # of the 18 possible pairs
    assert parallel.info().translations == len(pairs)
    assert parallel.info().to_dict()["translations"] == len(pairs)


def test_links_follow_removal_and_re_adding(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "index", encoder=encoder) as index:
        index.add_texts(_texts(), ids=_ids())
        before = _linked_ids(index)
        index.remove(["bees-de"])
        after = _linked_ids(index)
        assert after and not any("bees-de" in pair for pair in after)
        index.add_texts([PARALLEL["bees"]["de"]], ids=["bees-de"])
        assert any("bees-de" in pair for pair in _linked_ids(index))
        assert len(_linked_ids(index)) >= len(before) - 1


def test_an_interrupted_link_update_is_made_up_by_the_next_write(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "index", encoder=encoder) as index:
        index.add_texts(_texts(), ids=_ids())
        made = _linked_ids(index)
        index.store.db.execute("DELETE FROM translations")  # as if killed before the links were stored
        index.store.set_settings({"links_gen": 0})
        assert not _linked_ids(index)
        index.add_texts(["A heron stood still in the shallow water, waiting for a fish."], ids=["heron"])
        assert _linked_ids(index) == made
        assert update_links(index.store, index.vectors.sync(save=False), index.config.scoring) == 0  # up to date


def test_feedback_brings_up_every_language_version(parallel: Index) -> None:
    query = "How do bees show each other where flowers grow?"
    plain = parallel.search(query, k=4, feedback=False)
    pulled = parallel.search(query, k=4)
    assert pulled[0].id == "bees-en"
    assert {h.id for h in pulled} == {"bees-en", "bees-de", "bees-fr", "bees-ja"}
    assert len({h.id for h in pulled} & {"bees-de", "bees-fr", "bees-ja"}) >= len(
        {h.id for h in plain} & {"bees-de", "bees-fr", "bees-ja"})
    assert all(h.score <= pulled[0].score for h in pulled)


def test_feedback_keeps_to_the_filters(parallel: Index) -> None:
    hits = parallel.search("How do bees show each other where flowers grow?", k=6, langs=["en", "de"])
    assert {h.lang for h in hits} <= {"en", "de"}
    assert {"bees-en", "bees-de"} <= {h.id for h in hits}


def test_feedback_leaves_a_corpus_without_translations_alone(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "index", encoder=encoder) as index:
        index.add_texts(list(UNRELATED.values()) + [PARALLEL["bees"]["en"], PARALLEL["bread"]["en"]])
        assert index.info().translations == 0
        for query in ("chess pieces", "when is the tax due?", "why does dough rise?"):
            assert [h.chunk_id for h in index.search(query, k=5)] == [
                h.chunk_id for h in index.search(query, k=5, feedback=False)]


def test_group_by_translation_shows_each_passage_once_with_its_versions(parallel: Index) -> None:
    hits = parallel.search("Why does bread rise?", k=3, group_by="translation")
    assert hits[0].id.startswith("bread-")
    versions = hits[0].translations
    langs = [t.lang for t in versions]
    assert len(langs) == len(set(langs)) >= 2 and hits[0].lang not in langs
    assert {t.id for t in versions} <= {f"bread-{lang}" for lang in PARALLEL["bread"]}
    assert all(t.score is not None and 0 <= t.score <= 1 for t in versions)
    shown = [h.chunk_id for h in hits] + [t.chunk_id for h in hits for t in h.translations]
    assert len(shown) == len(set(shown))  # nothing twice
    as_json = hits[0].to_dict()
    assert {"chunk_id", "lang", "path", "id", "score"} <= set(as_json["translations"][0])


def test_scores_are_readable(parallel: Index) -> None:
    good = parallel.search("Why does bread rise?", k=5)
    nonsense = parallel.search("qwxz vlorp snargle 7734", k=5)
    for hits in (good, nonsense):
        scores = [h.score for h in hits]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
    assert good[0].score > 0.5 > nonsense[0].score
    # the same passage scores the same whether or not a filter narrows the list
    filtered = parallel.search("Why does bread rise?", k=5, langs=[good[0].lang])
    assert filtered[0].chunk_id == good[0].chunk_id and filtered[0].score == pytest.approx(good[0].score)
    for mode in ("lexical", "hybrid"):
        assert all(0.0 <= h.score <= 1.0 for h in parallel.search("bread yeast", k=5, mode=mode))


def test_min_score_and_explain(parallel: Index) -> None:
    hits = parallel.search("Why does bread rise?", k=10, explain=True)
    assert hits[0].explain is not None
    assert {"rank_score", "cosine", "maxsim"} <= set(hits[0].explain)
    matched = hits[0].explain["matched"]
    assert matched and all({"query", "passage", "span", "cosine"} <= set(m) for m in matched)
    assert any(m["passage"] == hits[0].text[m["span"][0]: m["span"][1]] for m in matched)
    pulled = [h for h in hits if "translation_of_best" in h.explain]
    assert pulled and all(h.lang != hits[0].lang for h in pulled)
    threshold = hits[2].score
    kept = parallel.search("Why does bread rise?", k=10, min_score=threshold)
    assert kept and all(h.score >= threshold for h in kept) and len(kept) < len(hits)
    assert parallel.search("Why does bread rise?", k=10)[0].explain is None
    with pytest.raises(UsageError):
        parallel.search("bread", min_score=1.5)
    with pytest.raises(UsageError):
        parallel.search("bread", group_by="language")


def test_score_curves() -> None:
    cosines = np.array([-0.2, 0.1, 0.3, 0.5, 0.9])
    scores = relevance(cosines)
    assert np.all(np.diff(scores) > 0) and scores[2] == pytest.approx(0.5) and 0 < scores[0] < scores[-1] < 1
    bm25 = bm25_relevance(np.array([0.0, 5.0, 50.0]))
    assert bm25[0] == 0.0 and np.all(np.diff(bm25) > 0) and bm25[-1] < 1
