"""The int8 backends (OpenVINO, ONNX Runtime) agree with the torch fp32 encoder; once built they load without
torch and encode exactly as when loaded through transformers; token-budget batching keeps order."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE, run_cli
from xsearch import Index
from xsearch.embed import onnx, openvino
from xsearch.embed.encoder import Encoder, token_budget_batches
from xsearch.embed.export import MANIFEST
from xsearch.embed.prebuilt import load_prebuilt
from xsearch.embed.registry import resolve_model
from xsearch.embed.transformer import load_transformer
from xsearch.errors import ModelError

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

COMPILED = ("openvino", "onnx")
MODEL_FILES = {"openvino": openvino.MODEL_FILE, "onnx": onnx.MODEL_FILE}

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
TRICKY = [
    "  Leading spaces,  double  spaces and a URL: https://example.org/x?y=1 ",
    "tab\tand\nnew line\r\n, NBSP\u00a0here, zero\u200bwidth",
    "emoji 👍🏽 and a family 👨\u200d👩\u200d👧, e\u0301 combining, ﬁ ligature, ① ² Ⅻ",
    "literal <s> and </s> and <mask> and <pad> in text",
    "ภาษาไทยไม่มีช่องว่าง 한국어 문장입니다 עברית",
    "",
    " ",
    "▁ ▁word ▁",
    "Wort " * 600,
    "長い日本語の文章。" * 200,
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
def openvino_encoder(encoder: Encoder) -> Encoder:
    assert encoder.backend == "openvino"
    return encoder


@pytest.fixture
def encoders(request: pytest.FixtureRequest) -> dict[str, Encoder]:
    """The loaded default-model encoders by backend, loaded only when a test asks for one."""
    class Lazy(dict):
        def __missing__(self, backend: str) -> Encoder:
            return request.getfixturevalue(f"{backend}_encoder")
    return Lazy()


@pytest.fixture(scope="module")
def torch_encoder(model_cache: Path) -> Encoder:
    return Encoder.load("multilingual-e5-small", backend="torch")


def test_openvino_is_the_default(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch.embed.encoder import default_backend

    assert encoder.backend == "openvino" == default_backend()
    monkeypatch.setenv("XSEARCH_BACKEND", "torch")
    assert default_backend() == "torch"


@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_vectors_agree_with_torch(backend: str, torch_encoder: Encoder, encoders: dict[str, Encoder]) -> None:
    compiled = encoders[backend]
    texts = SENTENCES + sample_passages()
    reference, tokens_ref = torch_encoder.embed(texts, kind="passage", tokens=True)
    vectors, tokens = compiled.embed(texts, kind="passage", tokens=True)
    cosines = np.sum(reference * vectors, axis=1)
    assert cosines.mean() >= 0.98 and cosines.min() >= 0.95, (cosines.mean(), cosines.min())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # token vectors line up token for token, with the same offsets
    for a, b in zip(tokens_ref, tokens):
        assert a.tokens == b.tokens and np.array_equal(a.offsets, b.offsets)
        cos = np.sum(a.vectors * b.vectors, axis=1) / (np.linalg.norm(a.vectors, axis=1) * np.linalg.norm(b.vectors, axis=1))
        assert cos.mean() >= 0.95
    # translations still find each other
    queries = compiled.encode_queries(["How do plants turn light into chemical energy?"])
    assert int(np.argmax(compiled.encode_passages(SENTENCES) @ queries[0])) in (0, 1, 2)


def default_model_builds(cache: Path, backend: str) -> list[Path]:
    """The built model files of ``backend`` for the default model (the cache may hold others)."""
    source = str(resolve_model("multilingual-e5-small").path)
    return [folder / MODEL_FILES[backend] for folder in sorted((cache / backend).glob("*"))
            if (folder / MANIFEST).is_file() and json.loads((folder / MANIFEST).read_text())["source"] == source]


def assert_same_tokens(a, b) -> None:
    assert (a.text, a.tokens, a.ids, a.truncated) == (b.text, b.tokens, b.ids, b.truncated)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.special, b.special)


def test_a_built_model_loads_without_transformers_and_encodes_the_same(openvino_encoder: Encoder,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    full = Encoder(*load_transformer(resolve_model("multilingual-e5-small"), pooling="mean", layer=None,
                                     max_length=None, threads=os.cpu_count() or 1, backend="openvino"))
    loaded = load_prebuilt("multilingual-e5-small", pooling="mean", layer=None, max_length=None,
                           threads=os.cpu_count() or 1, backend="openvino")
    assert loaded is not None
    light = Encoder(*loaded)
    assert type(light._runner) is type(full._runner)
    assert (light.info, light.backend, light.tokenizer.pad_id) == (full.info, full.backend, full.tokenizer.pad_id)
    texts = SENTENCES + TRICKY + sample_passages(60)
    assert light.count_tokens(texts) == full.count_tokens(texts)
    assert any(t.truncated for t in full.token_embeddings(TRICKY))
    for kind in (None, "query", "passage"):
        reference, tokens_ref = full.embed(texts, kind=kind, tokens=True, batch_tokens=2048)
        vectors, tokens = light.embed(texts, kind=kind, tokens=True, batch_tokens=2048)
        np.testing.assert_allclose(vectors, reference, atol=1e-6)
        for a, b in zip(tokens_ref, tokens):
            assert_same_tokens(a, b)
            np.testing.assert_allclose(b.vectors, a.vectors, atol=1e-5)
    widths = []
    for encoder in (full, light):  # the same widths for warm(), one query at a time, and a batch
        recording = Recording(encoder._runner, openvino.WIDTH_STEP)
        monkeypatch.setattr(encoder, "_runner", recording)
        encoder.warm()
        for text in SENTENCES + TRICKY:
            encoder.embed([text], kind="query", tokens=True)
        encoder.embed(SENTENCES, kind="passage")
        widths.append(recording.widths)
    assert widths[0] == widths[1]


@pytest.mark.parametrize("backend", COMPILED)
def test_a_model_loads_without_transformers_once_built_for_its_layer(backend: str, tiny_xlmr: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path))
    threads = os.cpu_count() or 1
    assert load_prebuilt(str(tiny_xlmr), pooling="cls", layer=1, max_length=None, threads=threads,
                         backend=backend) is None  # nothing built yet
    full = Encoder.load(str(tiny_xlmr), pooling="cls", layer=1, backend=backend)
    loaded = load_prebuilt(str(tiny_xlmr), pooling="cls", layer=1, max_length=None, threads=threads, backend=backend)
    assert loaded is not None
    light = Encoder(*loaded)
    assert (light.info, light.backend) == (full.info, backend)
    np.testing.assert_allclose(light.encode(SENTENCES + TRICKY), full.encode(SENTENCES + TRICKY), atol=1e-6)
    for a, b in zip(full.token_embeddings(TRICKY, kind="query"), light.token_embeddings(TRICKY, kind="query")):
        assert_same_tokens(a, b)
    assert light.info.max_length == 128 and light.token_embeddings(["word " * 400])[0].truncated
    assert load_prebuilt(str(tiny_xlmr), pooling="cls", layer=0, max_length=None, threads=threads,
                         backend=backend) is None  # built for layer 1 only
    with pytest.raises(ModelError, match="out of range"):
        load_prebuilt(str(tiny_xlmr), pooling="cls", layer=5, max_length=None, threads=threads, backend=backend)
    with pytest.raises(ModelError, match="unknown pooling"):
        Encoder.load(str(tiny_xlmr), pooling="median", layer=1, backend=backend)


@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_model_is_built_once_and_cached(backend: str, encoders: dict[str, Encoder], model_cache: Path) -> None:
    compiled = encoders[backend]
    files = default_model_builds(model_cache, backend)
    assert len(files) == 1 and files[0].is_file() and not list((model_cache / backend).glob(".*tmp*"))
    again = Encoder.load("multilingual-e5-small", backend=backend)
    assert default_model_builds(model_cache, backend) == files
    assert np.allclose(again.encode(SENTENCES[:2]), compiled.encode(SENTENCES[:2]), atol=1e-6)


def test_openvino_calibration_covers_queries_passages_and_long_texts(torch_encoder: Encoder) -> None:
    from xsearch.embed.calibration import calibration_texts
    from xsearch.embed.openvino import calibration_inputs

    texts = calibration_texts()
    assert len(texts) >= 100 and not any(t.startswith("#") for t in texts)
    info, tokenizer = torch_encoder.info, torch_encoder.tokenizer
    inputs = calibration_inputs(tokenizer, texts, query_prefix=info.query_prefix,
                                passage_prefix=info.passage_prefix, max_length=info.max_length)
    decoded = ["".join(tokenizer.pieces(x["input_ids"][0, 1:-1].tolist())).replace("\u2581", " ").strip()
               for x in inputs]
    assert sum(d.startswith(info.query_prefix.strip()) for d in decoded) >= 30
    assert sum(d.startswith(info.passage_prefix.strip()) for d in decoded) >= len(texts)
    lengths = [x["input_ids"].shape[1] for x in inputs]
    assert min(lengths) < 16 and max(lengths) > 200 and max(lengths) <= info.max_length
    assert all(x["attention_mask"].shape == x["input_ids"].shape and x["attention_mask"].all() for x in inputs)


@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_on_a_tiny_xlmr_layer_and_pooling(backend: str, tiny_xlmr: Path) -> None:
    for pooling, layer in (("mean", None), ("cls", 1), ("max", 0)):
        torch_enc = Encoder.load(str(tiny_xlmr), pooling=pooling, layer=layer, backend="torch")
        compiled = Encoder.load(str(tiny_xlmr), pooling=pooling, layer=layer, backend=backend)
        assert compiled.backend == backend
        a, b = torch_enc.encode(SENTENCES), compiled.encode(SENTENCES)
        assert np.sum(a * b, axis=1).mean() >= 0.98, (pooling, layer)


def test_unknown_backend_is_refused(tiny_xlmr: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        Encoder.load(str(tiny_xlmr), backend="tensorrt")


def test_a_broken_build_falls_back_to_the_next_backend_unless_one_was_asked_for(
        tiny_xlmr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("XSEARCH_BACKEND", raising=False)
    reference = Encoder.load(str(tiny_xlmr), backend="torch")
    expected = {"openvino": "onnx", "onnx": "torch"}
    for backend in COMPILED:
        Encoder.load(str(tiny_xlmr), backend=backend)
        (built,) = (tmp_path / backend).glob(f"*/{MODEL_FILES[backend]}")
        built.write_bytes(b"not a model")

        with pytest.raises(ModelError, match="delete it to rebuild"):
            Encoder.load(str(tiny_xlmr), backend=backend)
        fallback = Encoder.load(str(tiny_xlmr))
        assert fallback.backend == expected[backend] and "trying the next backend" in caplog.text
        assert np.sum(fallback.encode(SENTENCES) * reference.encode(SENTENCES), axis=1).min() >= 0.98


def test_an_index_built_with_one_backend_is_searched_with_another(tmp_path: Path, openvino_encoder: Encoder,
                                                                   torch_encoder: Encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=openvino_encoder) as index:
        index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes"])
        first = [h.chunk_id for h in index.search("volcano eruption", k=3)]
    with Index.open(tmp_path / "idx", encoder=torch_encoder) as index:
        hits = index.search("volcano eruption", k=3)
        assert all("/volcanoes/" in h.path for h in hits) and hits[0].chunk_id in first


def test_backend_on_the_command_line(tmp_path: Path) -> None:
    vectors = []
    for backend in ("openvino", "onnx"):
        result = run_cli("embed", "Hallo Welt", "--backend", backend, "--json")
        assert result.returncode == 0, result.stderr
        vectors.append(np.array(json.loads(result.stdout)[0]["vector"]))
        assert vectors[-1].shape == (384,) and abs(np.linalg.norm(vectors[-1]) - 1) < 1e-4
    assert float(vectors[0] @ vectors[1]) > 0.98
    result = run_cli("embed", "Hallo Welt", "--backend", "nope")
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("lengths,budget", [([5, 300, 7, 7, 120, 1, 64], 400), ([3] * 50, 20), ([512], 100)])
def test_token_budget_batches_cover_every_text_once_within_budget(lengths: list[int], budget: int) -> None:
    batches = list(token_budget_batches(lengths, budget))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * width <= budget


@pytest.mark.parametrize("backend", ("torch",) + COMPILED)
def test_batched_vectors_come_back_in_input_order(backend: str, encoders: dict[str, Encoder]) -> None:
    encoder = encoders[backend]
    texts = sample_passages(40) + SENTENCES
    together = encoder.embed(texts, batch_tokens=600)[0]
    one_by_one = np.vstack([encoder.embed([t])[0] for t in texts])
    # dynamic int8 activations are scaled per batch, so vectors move a little with the batch they are in;
    # each must still be its own text's, in its own place
    cosines = together @ one_by_one.T
    assert (np.argmax(cosines, axis=1) == np.arange(len(texts))).all()
    assert np.diag(cosines).min() >= (0.999 if backend == "torch" else 0.98)


class Recording:
    """A runner that notes the width of every batch it runs."""

    def __init__(self, runner, width_step: int) -> None:
        self.runner, self.width_step, self.widths = runner, width_step, []

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.widths.append(ids.shape[1])
        return self.runner(ids, mask)


def test_openvino_runs_a_few_padded_widths_with_the_same_vectors(openvino_encoder: Encoder,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch.embed.encoder import WARM_QUERY_TOKENS

    encoder = openvino_encoder
    recording = Recording(encoder._runner, openvino.WIDTH_STEP)
    monkeypatch.setattr(encoder, "_runner", recording)
    encoder.warm()
    warmed = set(recording.widths)
    assert warmed == set(range(openvino.WIDTH_STEP, WARM_QUERY_TOKENS + 1, openvino.WIDTH_STEP))
    recording.widths.clear()
    padded = [encoder.embed([text], kind="query", tokens=True) for text in SENTENCES]
    assert set(recording.widths) <= warmed  # every query width was prepared by warm()
    recording.widths.clear()
    encoder.embed(SENTENCES, kind="passage")
    texts = [encoder.info.passage_prefix + text for text in SENTENCES]
    encodings = encoder.tokenizer.encode(texts, max_length=encoder.info.max_length)
    assert recording.widths == [max(len(e.ids) for e in encodings)]  # a batch: exact
    recording.width_step = 1
    exact = [encoder.embed([text], kind="query", tokens=True) for text in SENTENCES]
    padded_vectors, exact_vectors = (np.vstack([v for v, _ in x]) for x in (padded, exact))
    assert np.diag(padded_vectors @ exact_vectors.T).min() > 0.9999  # padding is masked out
    padded_tokens, exact_tokens = ([t[0] for _, t in x] for x in (padded, exact))
    for a, b in zip(padded_tokens, exact_tokens):
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.vectors, b.vectors, atol=2e-3)


def test_openvino_runs_each_query_width_on_a_request_of_its_own(openvino_encoder: Encoder) -> None:
    """Single texts keep one inference request per width (no shape changes between queries),
    with the vectors the one shared request gives; batches do not add requests."""
    encoder = openvino_encoder
    runner = encoder._runner
    assert isinstance(runner, openvino.QueryRunner)
    texts = [encoder.info.query_prefix + text for text in SENTENCES]
    inputs = []
    for encoding in encoder.tokenizer.encode(texts, max_length=encoder.info.max_length):
        width = encoder._padded(len(encoding.ids))
        ids = np.full((1, width), encoder.tokenizer.pad_id, dtype=np.int64)
        ids[0, : len(encoding.ids)] = encoding.ids
        mask = (np.arange(width) < len(encoding.ids)).astype(np.int64)[None]
        inputs.append((ids, mask))
    widths = {ids.shape[1] for ids, _ in inputs}
    assert len(widths) > 1

    def search_thread() -> None:  # a thread that runs no batches in the streams, as a server's
        for ids, mask in inputs + inputs[::-1]:  # widths in turn, then back
            np.testing.assert_allclose(runner(ids, mask), openvino.Runner.__call__(runner, ids, mask), atol=1e-6)
        assert widths <= set(runner._local.by_width)
        kept = dict(runner._local.by_width)
        runner(np.vstack([inputs[0][0], inputs[0][0]]), np.vstack([inputs[0][1], inputs[0][1]]))
        assert runner._local.by_width == kept

    with ThreadPoolExecutor(1) as pool:
        pool.submit(search_thread).result()


def test_openvino_leaves_threads_unpinned_when_it_does_not_use_every_core(model_cache: Path) -> None:
    """An encoder on fewer threads than cores (a Spark worker's) must not pin them to the first
    cores, where every such process would share core 0."""
    from xsearch import runtime

    if runtime.cpu_count() < 2:
        pytest.skip("one core: every encoder uses them all")
    one = Encoder.load("multilingual-e5-small", backend="openvino", threads=1)
    assert one._runner._latency().get_property("ENABLE_CPU_PINNING") is False
    vectors, _ = one.embed(SENTENCES[:2], kind="passage")
    assert vectors.shape == (2, one.dim)


def test_openvino_runs_many_batches_in_streams_with_the_one_stream_vectors(openvino_encoder: Encoder,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch import runtime

    encoder = openvino_encoder
    runner = encoder._runner
    texts = sample_passages(40) + SENTENCES
    streamed, streamed_tokens = encoder.embed(texts, kind="passage", tokens=True, batch_tokens=600)
    assert int(runner._streams.get_property("NUM_STREAMS")) >= min(2, runtime.cpu_count())
    assert int(runner._latency().get_property("NUM_STREAMS")) == 1  # one text still runs on every thread at once
    monkeypatch.setattr(encoder, "_runner", Recording(runner, openvino.WIDTH_STEP))  # no streams: one batch at a time
    one_stream, one_stream_tokens = encoder.embed(texts, kind="passage", tokens=True, batch_tokens=600)
    assert len(encoder._runner.widths) > 2
    assert np.sum(streamed * one_stream, axis=1).min() > 0.9999  # each in its place, as one stream makes it
    for a, b in zip(streamed_tokens, one_stream_tokens):
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.vectors, b.vectors, atol=2e-3)
