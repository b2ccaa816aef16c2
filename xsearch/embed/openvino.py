"""The int8 OpenVINO backend: the encoder exported once and statically quantized with NNCF.

:func:`build` exports the encoder (:func:`~xsearch.embed.export.export_onnx`),
reads the graph into OpenVINO and quantizes it with NNCF's transformer scheme: SmoothQuant
moves activation outliers into the weights, then every matrix product runs in int8, weights
with one scale per output channel and activations with scales measured once on a calibration
set (:func:`calibration_inputs`: the texts in 24 languages and scripts shipped with xsearch,
:mod:`~xsearch.embed.calibration`, as queries, as passages and as long passages). Layer norms,
softmax and GELU stay in float. Measured against the dynamic int8 ONNX Runtime graph of the same model on a 2-core
AVX-512 VNNI machine, it is faster (no activation quantization at run time, fused int8
kernels) and closer to fp32 (``benchmarks/bench_encoder.py``). :func:`build` caches the
result (:func:`~xsearch.embed.export.build_cached`) as ``model.xml`` and ``model.bin`` in
:func:`target`.

:class:`Runner` runs it, one inference request per calling thread, from the model compiled for
this CPU once and cached beside it: single texts with all threads on one request, batches of
passages in parallel throughput streams (:meth:`Runner.run_batches`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import runtime
from ..errors import ModelError
from .calibration import calibration_texts
from .export import build_cached, cache_key, export_onnx, installed

if TYPE_CHECKING:
    from .backends import EncoderInfo
    from .tokenizer import Tokenizer

FORMAT_VERSION = 1
"""Bumped whenever the export, the quantization or the calibration set changes."""
MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"
FILES = (MODEL_FILE, WEIGHTS_FILE)
RUNTIME = "openvino"
COMPILED_DIR = "compiled"
"""OpenVINO's cache of the model compiled for this CPU, filled on first load."""
SHORT_TOKENS = 32
"""Calibration texts up to this many tokens are also run as queries."""
LONG_GROUP = 3
"""Consecutive calibration texts joined into one long passage."""
WIDTH_STEP = 16
"""A single text is padded to a multiple of this many tokens. OpenVINO prepares each new input
shape once (about 35 ms for a one-line query, against 6 ms at a width it has seen), so a few
widths keep every query at its warm latency. Activation scales are static, so the masked padding
leaves the vectors as they were (ONNX Runtime's dynamic int8 would move them)."""


def available() -> bool:
    """Whether OpenVINO and NNCF are installed."""
    return installed("openvino", "nncf")


def calibration_inputs(tokenizer: Tokenizer, texts: Sequence[str], *, query_prefix: str, passage_prefix: str,
                       max_length: int) -> list[dict[str, np.ndarray]]:
    """One model input per calibration sample, as the encoder will see them at run time.

    Every text as a passage, the short ones also as queries, and runs of :data:`LONG_GROUP`
    texts joined as long passages, so that activation ranges are measured over the lengths
    and prefixes that indexing and search produce.
    """
    samples = [passage_prefix + t for t in texts]
    counts = tokenizer.count(texts)
    samples += [query_prefix + t for t, n in zip(texts, counts) if n <= SHORT_TOKENS]
    samples += [passage_prefix + " ".join(texts[i:i + LONG_GROUP]) for i in range(0, len(texts), LONG_GROUP)]
    out = []
    for text in samples:
        array = np.asarray([tokenizer.encode([text], max_length=max_length)[0].ids], dtype=np.int64)
        out.append({"input_ids": array, "attention_mask": np.ones_like(array)})
    return out


def _quantize(source: Path, target: Path, inputs: list[dict[str, np.ndarray]]) -> None:
    # NNCF reports usage to a web service unless it believes it runs under CI; xsearch never
    # talks to the network, so it is told so before its first import.
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(source))
    names = {i.get_any_name() for i in model.inputs}  # layer 0 never reads the mask
    dataset = nncf.Dataset([{k: v for k, v in x.items() if k in names} for x in inputs])
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(inputs))
    ov.save_model(quantized, str(target), compress_to_fp16=True)


def target(cache: Path, model_dir: Path, info: EncoderInfo) -> Path:
    """The folder the int8 model of the model in ``model_dir`` is built into, for ``info``'s
    layer, prefixes and length (the calibration inputs depend on them)."""
    version = f"v{FORMAT_VERSION}|{info.query_prefix}|{info.passage_prefix}|{info.max_length}"
    return cache / "openvino" / cache_key(model_dir, info.layer, version)


def build(transformer: Any, tokenizer: Tokenizer, model_dir: Path, info: EncoderInfo, folder: Path) -> None:
    """Build the int8 model of ``transformer`` (loaded from ``model_dir``) into ``folder`` once."""
    if not available():
        raise ModelError("the openvino backend needs openvino and nncf: pip install openvino nncf")

    texts = calibration_texts()

    def run(tmp: Path) -> None:
        inputs = calibration_inputs(tokenizer, texts, query_prefix=info.query_prefix,
                                    passage_prefix=info.passage_prefix, max_length=info.max_length)
        export_onnx(transformer, info.layer, tmp / "fp32.onnx")
        _quantize(tmp / "fp32.onnx", tmp / MODEL_FILE, inputs)

    manifest = {"format_version": FORMAT_VERSION, "source": str(model_dir), "layer": info.layer,
                "weights": "int8 per-channel", "activations": "int8, static (calibrated)",
                "calibration_samples": len(texts)}
    build_cached(folder, FILES, run, manifest, f"the openvino backend for {model_dir}")


class Runner:
    """Runs the model built into ``folder``: ``(input_ids, attention_mask)`` int64 arrays to hidden states.

    One text at a time (a query) runs on all ``threads`` at once, for latency; many batches
    (:meth:`run_batches`, passages to index) run side by side in throughput streams of fewer
    threads each, compiled on first use. On two cores, two one-thread streams encode 5% more
    tokens per second than one two-thread stream, and 23% more while another process keeps a core
    busy, since a stream that waits for its core holds up only its own batch.

    Each compiled model holds its own copy of the weights in float32 (about 440 MB for
    multilingual-e5-small, most of it the token embeddings), and each stream its own buffers. So
    that indexing holds one copy, the latency model is let go when the streams are compiled, and
    a thread that runs batches in the streams runs its single batches there too (split between
    the streams); another thread's first single text (a query while a run indexes) compiles it
    again from the cache (about 0.1 s), and both are kept from then on.
    """

    width_step = WIDTH_STEP

    def __init__(self, folder: Path, *, threads: int) -> None:
        self._path = folder / MODEL_FILE
        self._folder = folder
        self._threads = threads
        self._model: Any = self._compile("LATENCY")
        self._model_lock = threading.Lock()
        self._inputs = {i.get_any_name() for i in self._model.inputs}
        self._streams: Any = None
        self._streams_lock = threading.Lock()
        self._local = threading.local()

    def _compile(self, hint: str) -> Any:
        import openvino as ov

        # CACHE_DIR keeps the compiled blob beside the model: loads take 0.1 s instead of 2 s
        config = {"INFERENCE_NUM_THREADS": self._threads, "PERFORMANCE_HINT": hint,
                  "INFERENCE_PRECISION_HINT": "f32", "CACHE_DIR": str(self._folder / COMPILED_DIR)}
        if self._threads < runtime.cpu_count():
            # OpenVINO pins its threads to the first cores: processes sharing a machine (Spark's
            # Python workers, one thread each) would then all run on core 0. Measured on two
            # cores, two one-thread processes took 8.2 s each pinned and 4.1 s each unpinned.
            config["ENABLE_CPU_PINNING"] = False
        try:
            return ov.Core().compile_model(str(self._path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError for anything it cannot read
            raise ModelError(f"cannot load {self._path}: {exc}; delete it to rebuild") from exc

    def _feed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return {name: feed[name] for name in self._inputs}

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self._indexing():
            halves = [(input_ids[rows], attention_mask[rows]) for rows in _halves(len(input_ids))]
            return np.concatenate(list(self.run_batches(halves)))
        request = getattr(self._local, "request", None)
        if request is None:  # an inference request is not thread-safe: one per thread
            request = self._local.request = self._latency().create_infer_request()
        request.infer(self._feed(input_ids, attention_mask))
        return request.get_output_tensor(0).data.copy()

    def _latency(self) -> Any:
        """The model compiled for latency (compiled again if the streams let it go)."""
        with self._model_lock:
            if self._model is None:
                self._model = self._compile("LATENCY")
            return self._model

    def _indexing(self) -> bool:
        """Whether the calling thread runs batches in the streams: its single batches go there too."""
        return getattr(self._local, "queue", None) is not None

    def run_batches(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        """The hidden states of each ``(input_ids, attention_mask)`` batch, in the order given,
        with as many batches running at once as the throughput streams take. A batch's states
        are yielded as soon as it and those before it are done, while later ones run."""
        queue = self._stream_queue()
        results: dict[int, np.ndarray] = {}

        def done(request: Any, number: int) -> None:
            results[number] = request.get_output_tensor(0).data.copy()

        queue.set_callback(done)
        submitted = returned = 0
        try:
            for input_ids, attention_mask in batches:
                queue.start_async(self._feed(input_ids, attention_mask), submitted)  # waits for an idle stream
                submitted += 1
                while returned in results:
                    yield results.pop(returned)
                    returned += 1
            queue.wait_all()
            while returned < submitted:
                yield results.pop(returned)
                returned += 1
        finally:
            queue.wait_all()  # a request still running must not outlive the call

    def _stream_queue(self) -> Any:
        """This thread's queue of inference requests on the throughput streams."""
        queue = getattr(self._local, "queue", None)
        if queue is None:
            import openvino as ov

            with self._streams_lock:
                if self._streams is None:
                    vars(self._local).clear()  # this thread's requests on the latency model
                    with self._model_lock:  # freed unless another thread holds a request on it
                        self._model = None
                    self._streams = self._compile("THROUGHPUT")
            jobs = int(self._streams.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            queue = self._local.queue = ov.AsyncInferQueue(self._streams, jobs)
        return queue


def _halves(rows: int) -> list[slice]:
    """Rows ``0:rows`` in two halves (one slice for a single row)."""
    half = (rows + 1) // 2
    return [slice(0, half), slice(half, rows)] if rows > 1 else [slice(0, rows)]


KEPT_WIDTHS = 128
"""Single texts up to this many tokens wide run on an inference request of their own width
(:class:`QueryRunner`); wider ones share one request."""


class QueryRunner(Runner):
    """A :class:`Runner` that runs each single text (a query) on an inference request kept for
    its width, one per width and calling thread.

    A request whose input shape changes from one call to the next prepares its memory and
    kernels again: with query widths mixed, a 32-token query took 8.9 ms of CPU time on one
    request shared by every width and 6.9 ms on its own width's (one thread, median of 150 runs
    on two cores shared with other work; 9.6 against 9.2 ms at 48 tokens). The requests hold a
    few megabytes each. Batches of passages run as :class:`Runner` runs them.
    """

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        width = input_ids.shape[1]
        if len(input_ids) != 1 or width > KEPT_WIDTHS or self._indexing():
            return super().__call__(input_ids, attention_mask)
        requests = getattr(self._local, "by_width", None)
        if requests is None:
            requests = self._local.by_width = {}
        request = requests.get(width)
        if request is None:
            request = requests[width] = self._latency().create_infer_request()
        request.infer(self._feed(input_ids, attention_mask))
        return request.get_output_tensor(0).data.copy()
