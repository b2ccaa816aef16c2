"""Late-interaction scoring, highlights and the token codec: pure functions, no model."""

from __future__ import annotations

import numpy as np
import pytest

from xsearch.embed.tokens import content_mask
from xsearch.errors import IndexCorruptError, UsageError
from xsearch.search.fusion import fuse, zscore
from xsearch.search.late_interaction import (
    alignment,
    centre,
    highlight_spans,
    matched_spans,
    maxsim,
    maxsim_of,
    maxsim_packed,
    similarities,
)
from xsearch.store.tokens import MIN_TRAIN_TOKENS, NotEnoughTokensError, TokenCodec, codebook, decode_tokens


def brute_maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    total = 0.0
    for qv in query:
        best = -np.inf
        for dv in doc:
            best = max(best, float(qv @ dv / (np.linalg.norm(qv) * np.linalg.norm(dv))))
        total += best
    return total / len(query)


def clustered(n: int, dim: int, *, centres: int = 16, seed: int = 0) -> np.ndarray:
    """Gaussian blobs around random centres: token vectors are far from uniform, like these."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


# maxsim ----------------------------------------------------------------------
def test_maxsim_matches_brute_force_on_ragged_docs():
    rng = np.random.default_rng(7)
    query = rng.standard_normal((6, 24)).astype(np.float32) * 3
    docs = [rng.standard_normal((n, 24)).astype(np.float32) * rng.uniform(0.1, 5) for n in (1, 9, 4, 30, 2)]
    scores = maxsim(query, docs)
    assert scores.shape == (5,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, [brute_maxsim(query, d) for d in docs], atol=1e-5)
    assert np.all((scores >= -1) & (scores <= 1))


def test_maxsim_centres_tokens_without_copying_them():
    rng = np.random.default_rng(3)
    query = rng.standard_normal((5, 16)).astype(np.float32)
    docs = [rng.standard_normal((n, 16)).astype(np.float32) + 2 for n in (3, 0, 7, 1)]
    centres = rng.standard_normal((2, 16)).astype(np.float32) + 2
    groups = [1, 0, 0, 1]
    expected = [brute_maxsim(query, d - centres[g]) if len(d) else -1.0 for d, g in zip(docs, groups)]
    np.testing.assert_allclose(maxsim(query, docs, centres=centres, groups=groups), expected, atol=1e-5)
    packed = maxsim_packed(query, np.concatenate(docs), [len(d) for d in docs], centres=centres, groups=groups)
    np.testing.assert_allclose(packed, expected, atol=1e-5)
    with pytest.raises(ValueError):
        maxsim(query, docs, centres=centres)


def test_maxsim_edge_cases():
    rng = np.random.default_rng(1)
    query = rng.standard_normal((3, 8)).astype(np.float32)
    doc = rng.standard_normal((4, 8)).astype(np.float32)
    empty = np.zeros((0, 8), dtype=np.float32)
    np.testing.assert_allclose(maxsim(query, [empty, doc, empty]), [-1.0, brute_maxsim(query, doc), -1.0], atol=1e-6)
    assert maxsim(query, []).shape == (0,)
    np.testing.assert_array_equal(maxsim(empty, [doc, doc]), [0.0, 0.0])
    assert maxsim(query, [query])[0] == pytest.approx(1.0, abs=1e-6)


def test_centre_subtracts_then_normalises():
    x = np.array([[3.0, 4.0], [1.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(centre(x, None), [[0.6, 0.8], [2**-0.5, 2**-0.5]], atol=1e-6)
    np.testing.assert_allclose(centre(x, np.array([1.0, 1.0])), [[2 / 13**0.5, 3 / 13**0.5], [0.0, 0.0]], atol=1e-6)


# alignment and highlights ------------------------------------------------------
E = np.eye(4, dtype=np.float32)


def test_alignment_picks_the_best_doc_token():
    query = np.stack([unit(0.1, 0, 1, 0), unit(1, 0.2, 0, 0)])
    best, sim = alignment(query, E)
    assert best.tolist() == [2, 0]
    np.testing.assert_allclose(sim, [unit(0.1, 0, 1, 0)[2], unit(1, 0.2, 0, 0)[0]], atol=1e-6)


def test_highlight_spans_merge_touching_and_respect_threshold():
    doc_offsets = np.array([[0, 3], [3, 6], [7, 10], [11, 14]])
    query = np.stack([E[0], E[1], unit(0, 0, 1, 1.2), E[3] * 2])
    assert highlight_spans(query, None, E, doc_offsets, threshold=0.9) == [(0, 6), (11, 14)]
    # the third query token's best match (doc token 3, cos 0.77) passes a lower threshold
    assert highlight_spans(query[2:3], None, E, doc_offsets, threshold=0.7) == [(11, 14)]
    assert highlight_spans(query[2:3], None, E, doc_offsets, threshold=0.8) == []


def test_highlight_spans_merge_overlaps_and_ignore_masked_and_empty_tokens():
    doc_offsets = np.array([[0, 0], [0, 4], [2, 6], [8, 9]])  # token 0 is special: empty span
    query = np.stack([E[0], E[1], E[2], E[3]])
    keep = np.array([True, True, True, False])  # the last query token is punctuation
    spans = highlight_spans(query, keep, E, doc_offsets, threshold=0.0)
    # query token 0 matches the special doc token best, which cannot be highlighted, so it
    # falls back to its best real token (cos 0 with every other token, above threshold 0)
    assert spans == [(0, 6)]
    assert highlight_spans(query, np.zeros(4, dtype=bool), E, doc_offsets, threshold=0.0) == []
    assert highlight_spans(query, None, E, np.zeros((4, 2), dtype=int), threshold=0.0) == []


def test_one_similarity_matrix_gives_the_scores_and_the_highlights():
    rng = np.random.default_rng(5)
    query = rng.standard_normal((5, 16)).astype(np.float32)
    docs = [rng.standard_normal((n, 16)).astype(np.float32) + 1 for n in (4, 0, 6)]
    offsets = [np.array([[3 * i, 3 * i + 2] for i in range(len(d))]).reshape(-1, 2) for d in docs]
    centres = rng.standard_normal((2, 16)).astype(np.float32) + 1
    groups = np.array([0, 1, 1])
    counts = [len(d) for d in docs]
    sims = similarities(query, np.concatenate(docs), counts, centres=centres, groups=groups)
    assert sims.shape == (5, 10) and sims.dtype == np.float32
    np.testing.assert_allclose(maxsim_of(sims, counts),
                               maxsim_packed(query, np.concatenate(docs), counts, centres=centres, groups=groups))
    starts = np.cumsum([0, *counts])
    for j, (doc, offs) in enumerate(zip(docs, offsets)):
        alone = highlight_spans(query, None, centre(doc, centres[groups[j]]), offs, threshold=0.2) if len(doc) else []
        assert matched_spans(sims[:, starts[j] : starts[j + 1]], offs, threshold=0.2) == alone
    assert similarities(query[:0], np.concatenate(docs), counts).shape == (0, 10)
    np.testing.assert_array_equal(maxsim_of(np.zeros((0, 10), np.float32), counts), [0.0, 0.0, 0.0])


def test_content_mask_drops_specials_punctuation_and_empty_tokens():
    text = "Hi, ગુજ — 42!"
    offsets = np.array([[0, 0], [0, 2], [2, 3], [4, 5], [5, 6], [8, 9], [10, 12], [12, 13], [0, 0]])
    special = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)
    # "ુ" (a Gujarati vowel sign) is a combining mark: content
    assert content_mask(text, offsets, special).tolist() == [False, True, False, True, True, False, True,
                                                            False, False]


# fusion ------------------------------------------------------------------------
def test_fuse_interpolates_standard_scores():
    first = np.array([0.9, 0.8, 0.7, 0.1])
    second = np.array([0.1, 0.2, 0.9, 0.3])
    assert np.argsort(-fuse(first, second, 0.0)).tolist() == [0, 1, 2, 3]
    assert np.argsort(-fuse(first, second, 1.0)).tolist() == [2, 3, 1, 0]
    np.testing.assert_allclose(fuse(first, second, 0.5), 0.5 * zscore(first) + 0.5 * zscore(second), atol=1e-6)
    np.testing.assert_array_equal(zscore(np.ones(3)), np.zeros(3))
    with pytest.raises(ValueError):
        fuse(first, second, 1.5)


# token codec -------------------------------------------------------------------
def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fp16_round_trip_is_exact_to_half_precision():
    x = clustered(50, 32)
    codec = TokenCodec.train(x[:3], "fp16")
    blob = codec.encode(x)
    assert codec.bytes_per_token == 64 and len(blob) == 50 * 64
    np.testing.assert_array_equal(codec.decode(blob, 50), x.astype(np.float16).astype(np.float32))


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    return clustered(2048, 64)


@pytest.mark.parametrize(("kind", "m", "size", "floor"), [("pq", 16, 16, 0.97), ("pq", 32, 32, 0.99),
                                                          ("ivfpq", 16, 17, 0.98)])
def test_trained_codecs_reconstruct_well(training, kind, m, size, floor):
    codec = TokenCodec.train(training, kind, m=m, nlist=16)
    assert codec.bytes_per_token == size
    held_out = clustered(300, 64, seed=0)  # the sample's centres, fresh noise
    decoded = codec.decode(codec.encode(held_out), 300)
    assert decoded.shape == (300, 64) and decoded.dtype == np.float32
    # measured means: pq m=16 0.983, m=32 0.997, ivfpq m=16 0.993
    assert cosines(decoded, held_out).mean() >= floor


@pytest.mark.parametrize("kind", ["fp16", "pq", "ivfpq"])
def test_codec_persists_and_decodes_many_at_once(training, kind):
    codec = TokenCodec.train(training, kind, m=16, nlist=16)
    again = TokenCodec.from_bytes(codec.to_bytes())
    assert (again.kind, again.dim, again.bytes_per_token) == (codec.kind, codec.dim, codec.bytes_per_token)
    chunks = [training[:5], training[5:5], training[5:17], training[17:18]]
    blobs = [codec.encode(c) for c in chunks]
    counts = [len(c) for c in chunks]
    many = codec.decode_many(blobs, counts)
    assert [m.shape for m in many] == [(5, 64), (0, 64), (12, 64), (1, 64)]
    for blob, n, got in zip(blobs, counts, many):
        np.testing.assert_array_equal(got, codec.decode(blob, n))
        np.testing.assert_array_equal(got, again.decode(blob, n))
    assert codec.decode_many([], []) == []


def test_codec_rejects_bad_input(training):
    with pytest.raises(NotEnoughTokensError, match="fp16"):
        TokenCodec.train(training[: MIN_TRAIN_TOKENS - 1], "pq", m=16)
    with pytest.raises(UsageError):
        TokenCodec.train(training, "pq", m=10)  # does not divide 64
    with pytest.raises(UsageError):
        TokenCodec.train(training, "opq")
    codec = TokenCodec.train(training, "fp16")
    with pytest.raises(IndexCorruptError):
        codec.decode(codec.encode(training[:3]), 4)
    data = TokenCodec.train(training, "pq", m=16).to_bytes()
    for damaged in (b"nonsense", data[:-10], data[:-1] + bytes([data[-1] ^ 1])):
        with pytest.raises(IndexCorruptError):
            TokenCodec.from_bytes(damaged)


@pytest.mark.parametrize("kind", ["pq", "ivfpq", "fp16"])
def test_tokens_decode_through_the_codebook_as_the_codec_decodes_them(training, kind):
    codec = TokenCodec.train(training, kind, m=16, nlist=16)
    book = codebook(codec)
    assert (book is not None) == (kind == "pq")  # only plain product codes are centroids side by side
    assert codebook(codec) is book  # worked out once per codec
    held_out = clustered(300, 64, seed=2)
    codes = np.frombuffer(codec.encode(held_out), dtype=np.uint8).reshape(300, -1)
    decoded = decode_tokens(codec, codes)
    assert decoded.shape == (300, 64) and decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, codec.decode(codes.tobytes(), 300))
    assert decode_tokens(codec, codes[:0]).shape == (0, 64)
