"""Token codecs made once per model: the encoder trains and caches one on the calibration texts,
and a new index stores its token vectors with the codec it is offered instead of training one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from xsearch import Index
from xsearch.embed.encoder import Encoder
from xsearch.embed.tokens import content_tokens
from xsearch.store.db import FileState, NewDocument, Store
from xsearch.token_codec import TokenCodec
from xsearch.types import Chunk, ChunkTokens, Document


def passages(limit: int = 40) -> list[str]:
    out = []
    for file in sorted(SAMPLE.rglob("*.txt")):
        out += [p.strip() for p in file.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 20]
    return out[:limit]


def no_training(*args, **kwargs):
    raise AssertionError("a codec was trained")


def test_the_model_codec_is_trained_once_and_cached(encoder: Encoder, model_cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    codec = encoder.token_codec()
    assert (codec.kind, codec.dim, codec.bytes_per_token) == ("pq", encoder.dim, encoder.dim // 8)
    assert encoder.token_codec() is codec
    assert list((model_cache / "token-codecs").glob("*/token-codec.bin"))
    assert not list((model_cache / "token-codecs").glob(".*tmp*"))
    monkeypatch.setattr(TokenCodec, "train", no_training)
    again = Encoder.load("multilingual-e5-small")  # another process would load it the same way
    assert again.token_codec().to_bytes() == codec.to_bytes()


def test_the_model_codec_keeps_token_vectors_close(encoder: Encoder) -> None:
    codec = encoder.token_codec()
    vectors = np.concatenate([content_tokens(t).vectors for t in encoder.token_embeddings(passages(), kind="passage")])
    decoded = codec.decode(codec.encode(vectors), len(vectors))
    cosines = np.sum(vectors * decoded, axis=1) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(decoded, axis=1))
    assert cosines.mean() > 0.9, cosines.mean()


def one_file(path: str, dim: int, rng: np.random.Generator, tokens: int = 300) -> tuple[FileState, list[NewDocument]]:
    text = "word " * tokens
    chunk = Chunk(text, 0, len(text), "en", tokens)
    offsets = np.stack([np.arange(tokens) * 5, np.arange(tokens) * 5 + 4], axis=1).astype(np.int32)
    vector = rng.standard_normal((1, dim), dtype=np.float32)
    doc = NewDocument(Document(path=path, text=text, lang="en"), [chunk], vector / np.linalg.norm(vector),
                      [ChunkTokens(offsets, rng.standard_normal((tokens, dim), dtype=np.float32))])
    return FileState(path, path, 0.0, len(text)), [doc]


def test_a_new_index_stores_token_vectors_with_the_codec_offered(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    offered = TokenCodec.train(rng.standard_normal((2000, 64), dtype=np.float32), "pq", m=8)
    store = Store(tmp_path, create=True)
    store.set_token_codec(offered)
    monkeypatch.setattr(TokenCodec, "train", no_training)
    store.replace_files([], [one_file("/a", 64, rng)])
    assert store.token_codec().to_bytes() == offered.to_bytes()
    store.set_token_codec(TokenCodec("fp16", 64))  # too late: the index has its codec
    store.replace_files([], [one_file("/b", 64, rng)])
    store.close()
    assert Store(tmp_path).token_codec().to_bytes() == offered.to_bytes()


@pytest.mark.parametrize("setting,dim,expected", [("fp16", 64, "fp16"), ("pq", 32, "pq")])
def test_an_offered_codec_of_another_kind_or_size_is_not_taken(tmp_path: Path, setting: str, dim: int,
                                                               expected: str) -> None:
    rng = np.random.default_rng(1)
    offered = TokenCodec.train(rng.standard_normal((2000, 64), dtype=np.float32), "pq", m=8)
    store = Store(tmp_path, create=True)
    store.set_settings({"token_codec": setting})
    store.set_token_codec(offered)
    store.replace_files([], [one_file("/a", dim, rng)])
    codec = store.token_codec()
    assert (codec.kind, codec.dim) == (expected, dim) and codec.to_bytes() != offered.to_bytes()
    store.close()


def test_an_index_with_the_model_codec_reranks_and_highlights(tmp_path: Path, encoder: Encoder,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    codec = encoder.token_codec()
    monkeypatch.setattr(TokenCodec, "train", no_training)
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.store.set_token_codec(codec)  # what indexing does before the first write of a new index
        index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes"])
        assert index.store.token_codec().to_bytes() == codec.to_bytes()
        hits = index.search("volcano eruption", k=3)
        assert all("/volcanoes/" in hit.path for hit in hits) and any(hit.highlights for hit in hits)


SMALL_SAMPLE_TRAINING = """
import os
import numpy as np
from xsearch import runtime
from xsearch.token_codec import TRAIN_ITERATIONS, TokenCodec

faiss = runtime.faiss()
x = np.random.default_rng(3).standard_normal((800, 64), dtype=np.float32)
codecs = {kind: TokenCodec.train(x, kind, m=8, nlist=32, seed=7) for kind in ("pq", "ivfpq")}
os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # FAISS's default minimum, trained next, does warn
for kind, codec in codecs.items():
    reference = faiss.index_factory(64, "PQ8x8" if kind == "pq" else "IVF32,PQ8x8")
    clusterings = [reference.pq.cp] + ([reference.cp] if kind == "ivfpq" else [])
    for clustering in clusterings:
        clustering.seed, clustering.niter = 7, TRAIN_ITERATIONS
    reference.do_polysemous_training = False
    reference.train(x)
    same = np.array_equal(faiss.vector_to_array(codec._index.pq.centroids),
                          faiss.vector_to_array(reference.pq.centroids))
    if kind == "ivfpq":
        same = same and np.array_equal(codec._index.quantizer.reconstruct_n(0, 32),
                                       reference.quantizer.reconstruct_n(0, 32))
    print(kind, same)
"""


def test_training_on_a_small_sample_is_silent_and_keeps_the_codebooks() -> None:
    # 800 vectors for 256 centroids per sub-quantizer: FAISS would warn on file descriptor 2
    result = subprocess.run([sys.executable, "-c", SMALL_SAMPLE_TRAINING], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["pq", "True", "ivfpq", "True"]
    assert result.stderr == ""
