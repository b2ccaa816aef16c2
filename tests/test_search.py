"""The query engine: language centring, token store, late-interaction rerank, hybrid, highlights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from xsearch import Index
from xsearch.embed.centering import center
from xsearch.types import LanguageMeans


def _topic(hit) -> str:
    return hit.metadata.get("topic") or Path(hit.path).relative_to(SAMPLE.resolve()).parts[0]


def test_centering_removes_a_language_offset() -> None:
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(3, 16))
    offsets = {"de": rng.normal(size=16) * 3, "ja": rng.normal(size=16) * 3}
    vectors, langs = [], []
    for lang, offset in offsets.items():
        for t in range(3):
            for _ in range(20):
                vectors.append(topics[t] + offset + rng.normal(scale=0.1, size=16))
                langs.append(lang)
    vectors = np.array(vectors)
    sums = {lang: vectors[[i for i, l in enumerate(langs) if l == lang]].sum(0) for lang in offsets}
    means = LanguageMeans(sums, {lang: langs.count(lang) for lang in offsets})
    centred = center(vectors, langs, means, shrink=0.0)
    assert np.allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-5)
    plain = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    # a German vector's nearest Japanese neighbour shares its topic only after centring
    de, ja = slice(0, 60), slice(60, 120)
    topic = np.repeat(np.arange(3), 20)
    assert (np.argmax(centred[de] @ centred[ja].T, axis=1) // 20 == topic).all()
    assert (centred[de] @ centred[ja].T).max() > (centred[de] @ centred[de].T - 2 * np.eye(60)).min()
    assert means.mean("xx", shrink=8.0) is not None and np.allclose(means.mean("xx", shrink=8.0), vectors.mean(0))
    assert plain.shape == centred.shape


def _recomputed_sums(index: Index) -> dict[str, tuple[int, np.ndarray]]:
    stored = index.store.all_vectors()
    out = {}
    for lang in set(stored.langs):
        rows = [i for i, l in enumerate(stored.langs) if l == lang]
        out[lang] = (len(rows), stored.vectors[rows].astype(np.float64).sum(0))
    return out


def test_language_sums_and_token_store_follow_writes(sample_copy: Path, tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([sample_copy])
        shutil.rmtree(sample_copy / "vaccines")
        index.add_paths([sample_copy])
        means = index.store.language_means()
        for lang, (n, total) in _recomputed_sums(index).items():
            assert means.counts[lang] == n
            np.testing.assert_allclose(means.sums[lang], total, atol=1e-2)
        chunks = index.store.counts()["chunks"]
        rows = index.store.token_rows(index.store.all_vectors().ids)
        assert len(rows) == chunks
        codec = index.store.token_codec()
        assert codec.kind == "pq" and codec.bytes_per_token == 48
        token_means = index.store.token_language_means()
        assert sum(token_means.counts.values()) == sum(n for _, n, _ in rows.values())
        texts = index.store.chunk_rows(list(rows))
        for cid, (offsets, n, codes) in list(rows.items())[:20]:
            assert len(codes) == 48 * n and offsets.shape == (n, 2)
            text = texts[cid].text
            assert all(0 <= s < e <= len(text) and not text[s].isspace() for s, e in offsets)


def test_rerank_keeps_topic_and_gives_exact_highlights(sample_index: Index) -> None:
    query = "How do plants turn sunlight into chemical energy?"
    plain = sample_index.search(query, k=8, rerank=False)
    reranked = sample_index.search(query, k=8)
    assert len(plain) == len(reranked) == 8
    assert all(_topic(h) == "photosynthesis" for h in reranked[:6])
    assert len({h.lang for h in reranked[:6]}) >= 4
    assert any(h.highlights for h in reranked)
    for hit in reranked:
        for start, end in hit.highlights:
            piece = hit.text[start:end]
            assert 0 <= start < end <= len(hit.text) and piece.strip() == piece and piece
    words = {hit.text[s:e].lower() for hit in reranked for s, e in hit.highlights}
    assert words & {"light", "energy", "plants", "sunlight", "chemical", "licht", "energie", "pflanzen"}


@pytest.mark.parametrize("scoring", ["centered", "plain"])
def test_rerank_matches_decoding_each_candidate_then_maxsim(sample_index: Index, scoring: str) -> None:
    """The rerank stage (all candidates' codes in one read, one token-major product) against
    the straightforward way: each candidate decoded on its own, centred, cosines, MaxSim."""
    from xsearch.embed.centering import SHRINK
    from xsearch.embed.tokens import content_mask
    from xsearch.search import dense, late_interaction
    from xsearch.search.base import SearchContext
    from xsearch.search.fusion import fuse

    store = sample_index.store
    codec = store.token_codec()
    token_means = store.token_language_means()
    for query, lang in (("How do plants turn sunlight into chemical energy?", "en"),
                        ("Impfstoffe und das Immunsystem", "de")):
        ctx = SearchContext(store, sample_index.vectors.sync(save=False), sample_index.encoder, [query], [lang],
                            k=10, n_fetch=100, scoring=scoring, allowed=None, rerank_candidates=100)
        first = dense.candidates(ctx, [])[0]
        got = late_interaction.rerank(ctx, [first])[0]

        tokens = ctx.encoded()[1][0]
        keep = content_mask(tokens.text, tokens.offsets, tokens.special)
        mean = token_means.mean(lang, shrink=SHRINK) if scoring == "centered" else None
        q = tokens.vectors[keep] - (0 if mean is None else mean)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        rows, langs = store.token_rows(first.ids), store.chunk_langs(first.ids)
        expected, spans = [], {}
        for cid in first.ids.tolist():
            offsets, n, codes = rows[cid]
            x = codec.decode(codes, n)
            if scoring == "centered":
                x = x - token_means.mean(langs[cid], shrink=SHRINK)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            sims = q @ x.T
            expected.append(sims.max(axis=1).mean())
            spans[cid] = late_interaction.matched_spans(sims, offsets, threshold=late_interaction.HIGHLIGHT_THRESHOLD)
        fused = fuse(first.scores, np.array(expected, dtype=np.float32), late_interaction.RERANK_WEIGHT)
        order = np.argsort(-fused, kind="stable")[:10]
        assert len(first) > 10
        np.testing.assert_array_equal(got.ids, first.ids[order])
        np.testing.assert_allclose(got.details["maxsim"], np.array(expected)[order], atol=1e-5)
        np.testing.assert_allclose(got.scores, fused[order], atol=1e-5)
        assert {cid: list(got.spans[cid]) for cid in got.ids.tolist()} == {cid: spans[cid] for cid in got.ids.tolist()}


def test_a_batch_reranks_each_query_as_alone(sample_index: Index) -> None:
    """One read of the token codes serves every query of a batch, each with its own candidates."""
    queries = ["How do plants turn sunlight into chemical energy?", "Impfstoffe und das Immunsystem",
               "How do plants turn sunlight into chemical energy?"]
    batch = sample_index.search_batch(queries, k=6, feedback=False)
    for query, hits in zip(queries, batch):
        alone = sample_index.search(query, k=6, feedback=False)
        assert [(h.chunk_id, h.highlights) for h in hits] == [(h.chunk_id, h.highlights) for h in alone]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in alone], atol=1e-6)


def test_centered_scoring_ranks_translations_higher(sample_index: Index) -> None:
    query = "wie wandeln Pflanzen Licht in Energie um?"
    def other_langs(hits):
        return len({h.lang for h in hits if _topic(h) == "photosynthesis"} - {"de"})
    plain = sample_index.search(query, k=6, scoring="plain", rerank=False)
    centred = sample_index.search(query, k=6, scoring="centered", rerank=False)
    assert other_langs(centred) >= other_langs(plain)
    assert all(_topic(h) == "photosynthesis" for h in centred)


def test_lexical_and_hybrid_find_exact_codes(sample_index: Index) -> None:
    for mode in ("lexical", "hybrid"):
        top = sample_index.search("C6H12O6", k=3, mode=mode)[0]
        assert Path(top.path).name == "en.md" and _topic(top) == "photosynthesis"
        assert any(top.text[s:e] == "C6H12O6" for s, e in top.highlights)
    hits = sample_index.search("光合成", k=3, mode="lexical")
    assert hits and all(h.lang == "ja" for h in hits)
    assert all("光合成" in h.text for h in hits)


def test_group_by_document_returns_each_document_once(sample_index: Index) -> None:
    hits = sample_index.search("photosynthesis chlorophyll", k=5, group_by="document")
    keys = [(h.path, h.record) for h in hits]
    assert len(hits) == 5 and len(set(keys)) == 5
    for hit in hits:
        assert all((m.path, m.record) == (hit.path, hit.record) and m.score <= hit.score for m in hit.more)


def test_filters_hold_in_every_mode(sample_index: Index) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        hits = sample_index.search("Apollo Armstrong", k=2, mode=mode, langs=["de", "fr"])
        assert hits and {h.lang for h in hits} <= {"de", "fr"}


def test_cli_search_options_and_json_highlights(sample_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert run_cli("index", str(sample_copy / "moon_landing"), "--index", str(index), "-q").returncode == 0
    result = run_cli("search", "Armstrong", "--index", str(index), "--mode", "hybrid", "-k", "3", "--json")
    hits = json.loads(result.stdout)
    assert result.returncode == 0 and hits and all("highlights" in h for h in hits)
    assert any(h["text"][s:e] == "Armstrong" for h in hits for s, e in h["highlights"])
    result = run_cli("search", "first steps on the Moon", "--index", str(index), "--no-rerank", "--scoring", "plain",
                     "--group-by", "document", "-k", "3", "--json")
    hits = json.loads(result.stdout)
    assert result.returncode == 0 and len({h["path"] for h in hits}) == len(hits) == 3
    result = run_cli("search", "x", "--index", str(index), "--mode", "fuzzy")
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_search_batch_shape_is_stable(sample_index: Index, mode: str) -> None:
    results = sample_index.search_batch(["coffee", "vaccine", ""], k=2, mode=mode)
    assert len(results) == 3 and all(isinstance(r, list) for r in results)


def test_bitext_scorings_demote_hubs_and_language_offsets() -> None:
    from xsearch.evaluate import bitext_accuracy
    from xsearch.embed.centering import csls

    rng = np.random.default_rng(1)
    meaning = rng.normal(size=(40, 32))
    source = meaning + rng.normal(scale=0.6, size=(40, 32)) + 4 * rng.normal(size=32)
    target = meaning + rng.normal(scale=0.6, size=(40, 32)) + 4 * rng.normal(size=32)
    target[0] = meaning.mean(axis=0) * 3 + target.mean(axis=0)  # a hub: close to every source
    plain = bitext_accuracy(source, target, "plain")
    centred = bitext_accuracy(source, target, "centered")
    margin = bitext_accuracy(source, target, "csls")
    assert centred > plain and margin >= centred
    sims = np.array([[0.9, 0.8], [0.85, 0.1]])
    np.testing.assert_allclose(csls(sims, k=1), 2 * sims - np.array([[0.9], [0.85]]) - np.array([[0.9, 0.8]]))


@pytest.mark.parametrize("preset,expected", [(None, "4"), ("12", "12")])
def test_configuring_the_process_first_stops_idle_blas_threads_spinning(preset: str | None, expected: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = ("import os, xsearch; before = os.environ.get('OPENBLAS_THREAD_TIMEOUT'); "
            "from xsearch.runtime import configure_process; configure_process(); import numpy; "
            "print(before, os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(preset), expected]  # importing xsearch sets nothing
