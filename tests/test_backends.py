"""The int8 ONNX Runtime backend agrees with the torch fp32 encoder, and token-budget batching keeps order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from xsearch import Index
from xsearch.embed.encoder import Encoder, token_budget_batches
from xsearch.errors import ModelError

pytest.importorskip("onnxruntime")

SENTENCES = [
    "Die Photosynthese wandelt Lichtenergie in chemische Energie um.",
    "光合成は光エネルギーを化学エネルギーに変換する。",
    "التمثيل الضوئي يحول الطاقة الضوئية إلى طاقة كيميائية.",
    "A volcano is an opening in the Earth's crust through which molten rock escapes.",
    "Вакцина учит иммунную систему распознавать возбудителя болезни.",
    "La primera taza de café se sirvió en Etiopía, según la leyenda.",
    "चाँद पर पहला कदम 1969 में रखा गया था।",
    "发酵面团需要时间、温度和耐心。",
]


def sample_passages(limit: int = 120) -> list[str]:
    """Real multilingual passages of all lengths: paragraphs of the sample corpus."""
    out = []
    for file in sorted(SAMPLE.rglob("*")):
        if file.suffix in (".txt", ".md"):
            out += [p.strip() for p in file.read_text(encoding="utf-8").split("\n\n") if len(p.strip()) > 20]
    return out[:limit]


@pytest.fixture(scope="module")
def onnx_encoder(model_cache: Path) -> Encoder:
    return Encoder.load("multilingual-e5-small", backend="onnx")


@pytest.fixture(scope="module")
def torch_encoder(model_cache: Path) -> Encoder:
    return Encoder.load("multilingual-e5-small", backend="torch")


def test_onnx_is_the_default(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch.embed.encoder import default_backend

    assert encoder.backend == "onnx" == default_backend()
    monkeypatch.setenv("XSEARCH_BACKEND", "torch")
    assert default_backend() == "torch"


def test_onnx_vectors_agree_with_torch(torch_encoder: Encoder, onnx_encoder: Encoder) -> None:
    texts = SENTENCES + sample_passages()
    reference, tokens_ref = torch_encoder.embed(texts, kind="passage", tokens=True)
    vectors, tokens = onnx_encoder.embed(texts, kind="passage", tokens=True)
    cosines = np.sum(reference * vectors, axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95, (cosines.mean(), cosines.min())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # token vectors line up token for token, with the same offsets
    for a, b in zip(tokens_ref, tokens):
        assert a.tokens == b.tokens and np.array_equal(a.offsets, b.offsets)
        cos = np.sum(a.vectors * b.vectors, axis=1) / (np.linalg.norm(a.vectors, axis=1) * np.linalg.norm(b.vectors, axis=1))
        assert cos.mean() >= 0.95
    # translations still find each other
    queries = onnx_encoder.encode_queries(["How do plants turn light into chemical energy?"])
    assert int(np.argmax(onnx_encoder.encode_passages(SENTENCES) @ queries[0])) in (0, 1, 2)


def test_onnx_model_is_built_once_and_cached(onnx_encoder: Encoder, model_cache: Path) -> None:
    files = list((model_cache / "onnx").glob("*/model.onnx"))
    assert len(files) == 1 and not list((model_cache / "onnx").glob(".*tmp*"))
    again = Encoder.load("multilingual-e5-small", backend="onnx")
    assert list((model_cache / "onnx").glob("*/model.onnx")) == files
    assert np.allclose(again.encode(SENTENCES[:2]), onnx_encoder.encode(SENTENCES[:2]), atol=1e-6)


def test_onnx_on_a_tiny_xlmr_layer_and_pooling(tiny_xlmr: Path) -> None:
    for pooling, layer in (("mean", None), ("cls", 1), ("max", 0)):
        torch_enc = Encoder.load(str(tiny_xlmr), pooling=pooling, layer=layer, backend="torch")
        onnx_enc = Encoder.load(str(tiny_xlmr), pooling=pooling, layer=layer, backend="onnx")
        a, b = torch_enc.encode(SENTENCES), onnx_enc.encode(SENTENCES)
        assert np.sum(a * b, axis=1).mean() >= 0.98, (pooling, layer)


def test_unknown_backend_is_refused(tiny_xlmr: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        Encoder.load(str(tiny_xlmr), backend="tensorrt")


def test_a_broken_onnx_build_falls_back_to_torch_unless_onnx_was_asked_for(
        tiny_xlmr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("XSEARCH_BACKEND", raising=False)
    Encoder.load(str(tiny_xlmr), backend="onnx")
    (built,) = (tmp_path / "onnx").glob("*/model.onnx")
    built.write_bytes(b"not an onnx graph")

    with pytest.raises(ModelError, match="delete it to rebuild"):
        Encoder.load(str(tiny_xlmr), backend="onnx")
    fallback = Encoder.load(str(tiny_xlmr))
    assert fallback.backend == "torch" and "running" in caplog.text
    reference = Encoder.load(str(tiny_xlmr), backend="torch")
    assert np.allclose(fallback.encode(SENTENCES), reference.encode(SENTENCES))


def test_an_index_built_with_onnx_is_searched_with_either_backend(tmp_path: Path, onnx_encoder: Encoder,
                                                                   torch_encoder: Encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=onnx_encoder) as index:
        index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes"])
        first = [h.chunk_id for h in index.search("volcano eruption", k=3)]
    with Index.open(tmp_path / "idx", encoder=torch_encoder) as index:
        hits = index.search("volcano eruption", k=3)
        assert all("/volcanoes/" in h.path for h in hits) and hits[0].chunk_id in first


def test_backend_on_the_command_line(tmp_path: Path) -> None:
    result = run_cli("embed", "Hallo Welt", "--backend", "onnx", "--json")
    assert result.returncode == 0, result.stderr
    vector = np.array(json.loads(result.stdout)[0]["vector"])
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    result = run_cli("embed", "Hallo Welt", "--backend", "nope")
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("lengths,budget", [([5, 300, 7, 7, 120, 1, 64], 400), ([3] * 50, 20), ([512], 100)])
def test_token_budget_batches_cover_every_text_once_within_budget(lengths: list[int], budget: int) -> None:
    batches = list(token_budget_batches(lengths, budget))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * width <= budget


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_batched_vectors_come_back_in_input_order(backend: str, onnx_encoder: Encoder, torch_encoder: Encoder) -> None:
    encoder = onnx_encoder if backend == "onnx" else torch_encoder
    texts = sample_passages(40) + SENTENCES
    together = encoder.embed(texts, batch_tokens=600)[0]
    one_by_one = np.vstack([encoder.embed([t])[0] for t in texts])
    # int8 activations are scaled per batch, so vectors move a little with the batch they are in;
    # each must still be its own text's, in its own place
    cosines = together @ one_by_one.T
    assert (np.argmax(cosines, axis=1) == np.arange(len(texts))).all()
    assert np.diag(cosines).min() >= (0.999 if backend == "torch" else 0.98)
