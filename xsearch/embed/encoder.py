"""The encoder: texts in, L2-normalised sentence vectors out.

The model is loaded through sentence-transformers (which reads the tokenizer, the
transformer and its prompts); batching, pooling and normalisation are done here so that
batches are sorted by *token* length and capped by a token budget, and so that any layer
and pooling mode can be used.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import BACKENDS, POOLINGS
from ..errors import ModelError
from .registry import CARDS, ResolvedModel, resolve_model
from .pooling import pool

LOGGER = logging.getLogger(__name__)

Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A compiled encoder: ``(input_ids, attention_mask)`` int64 arrays to hidden states."""

DEFAULT_BATCH_TOKENS = 8192
"""Upper bound on padded tokens per forward pass."""
MAX_BATCH_SIZE = 128
WARM_QUERY_TOKENS = 128
""":meth:`Encoder.warm` prepares the single-query widths up to this many tokens."""


@dataclass(frozen=True)
class EncoderInfo:
    """What identifies the vectors an encoder makes; saved with every index."""

    model: str
    pooling: str
    layer: int | None
    dim: int
    max_length: int
    query_prefix: str
    passage_prefix: str


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="sentence_transformers")


def default_backend() -> str:
    """``$XSEARCH_BACKEND`` if set, else the first of :data:`~xsearch.config.BACKENDS` installed.

    The statically quantized int8 OpenVINO encoder is the fastest measured here and the closest
    to fp32 of the two int8 backends; ONNX Runtime's dynamically quantized int8 graph comes next
    (``benchmarks/bench_encoder.py`` gives the figures; the README's Speed section has a run).
    """
    from . import onnx, openvino

    if os.environ.get("XSEARCH_BACKEND"):
        return os.environ["XSEARCH_BACKEND"]
    available = {"openvino": openvino.available, "onnx": onnx.available}  # torch always is
    return next(backend for backend in BACKENDS if available.get(backend, lambda: True)())


def _fallbacks(backend: str) -> tuple[str, ...]:
    """``backend``, then the backends after it in :data:`~xsearch.config.BACKENDS` (fastest first)."""
    return BACKENDS[BACKENDS.index(backend):]


def token_budget_batches(lengths: Sequence[int], budget: int, max_size: int = MAX_BATCH_SIZE) -> Iterator[list[int]]:
    """Group indices into batches, longest first, each padded size within ``budget`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and ((len(batch) + 1) * width > budget or len(batch) >= max_size):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@dataclass(frozen=True)
class TokenEmbeddings:
    """The token vectors of one text.

    ``offsets[i]`` is the character span of token ``i`` in ``text``: ``text[start:end]`` is
    exactly what the token stands for, without the word-initial space that SentencePiece
    folds into it. Special tokens (``<s>``, ``</s>``) and a bare word-start marker ``▁``
    have empty spans and ``special[i]`` set (the marker is not special, just empty).
    """

    text: str
    tokens: list[str]
    ids: list[int]
    offsets: np.ndarray
    """``(n_tokens, 2)`` int32 character spans."""
    special: np.ndarray
    """``(n_tokens,)`` bool, True for the tokenizer's special tokens."""
    vectors: np.ndarray
    """``(n_tokens, dim)`` float32 hidden states of the encoder's layer (not normalised)."""
    truncated: bool = False
    """True when the text was longer than the model's maximum length."""

    def to_dict(self) -> dict:
        """The JSON shape used by ``xsearch embed --tokens``."""
        return {
            "text": self.text,
            "truncated": self.truncated,
            "tokens": [
                {"token": tok, "id": tid, "start": int(s), "end": int(e), "special": bool(sp),
                 "vector": [round(float(x), 6) for x in vec]}
                for tok, tid, (s, e), sp, vec in zip(self.tokens, self.ids, self.offsets, self.special, self.vectors)
            ],
        }


class Encoder:
    """A loaded sentence encoder. Create with :meth:`load`; one per process is enough.

    Safe to use from several threads at once: calls into the (stateful) fast tokenizer
    are serialised, forward passes run in parallel.
    """

    def __init__(self, resolved: ResolvedModel, *, pooling: str = "mean", layer: int | None = None,
                 max_length: int | None = None, threads: int | None = None, backend: str | None = None) -> None:
        if pooling not in POOLINGS:
            raise ModelError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        chosen = backend is not None or bool(os.environ.get("XSEARCH_BACKEND"))
        backend = backend or default_backend()
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        import torch

        _quiet_transformers()
        from sentence_transformers import SentenceTransformer

        threads = threads or os.cpu_count() or 1
        torch.set_num_threads(threads)
        try:
            self._st = SentenceTransformer(str(resolved.path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {resolved.name!r} from {resolved.path}: {exc}") from exc
        self._st.eval()
        self._tokenizer_lock = threading.Lock()
        self._transformer = self._st[0].auto_model
        self.tokenizer = self._st.tokenizer
        prompts = getattr(self._st, "prompts", {}) or {}
        n_layers = getattr(self._transformer.config, "num_hidden_layers", None)
        if layer is not None and n_layers is not None and not -n_layers <= layer <= n_layers:
            raise ModelError(f"layer {layer} out of range: {resolved.name} has {n_layers} layers (0 = embeddings)")
        model_max = getattr(self._transformer.config, "max_position_embeddings", 512)
        if getattr(self._transformer.config, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            model_max -= 2  # RoBERTa positions start after the padding index
        card = CARDS.get(resolved.name)
        if card is not None:
            model_max = min(model_max, card.max_length)
        self.info = EncoderInfo(
            model=resolved.name,
            pooling=pooling,
            layer=layer,
            dim=int(self._transformer.config.hidden_size),
            max_length=min(max_length or model_max, model_max),
            query_prefix=prompts.get("query", resolved.query_prefix),
            passage_prefix=prompts.get("passage", prompts.get("document", resolved.passage_prefix)),
        )
        self.backend = backend
        self._runner: Runner | None = None
        # the default backend, not asked for: a model a compiled backend cannot take runs on the next
        for candidate in (backend,) if chosen else _fallbacks(backend):
            try:
                self._runner = self._compile(candidate, resolved, threads)
            except ModelError as exc:
                if chosen:
                    raise
                LOGGER.warning("%s; trying the next backend for %s", exc, resolved.name)
                continue
            self.backend = candidate
            break

    def _compile(self, backend: str, resolved: ResolvedModel, threads: int) -> Runner | None:
        """The compiled runner for ``backend`` (built and cached on first use); None for torch."""
        from .registry import cache_dir

        layer = self.info.layer
        if backend == "onnx":
            from .onnx import OnnxRunner, build_onnx_model

            return OnnxRunner(build_onnx_model(self._transformer, resolved.path, layer, cache_dir()), threads=threads)
        if backend == "openvino":
            from .openvino import OpenVinoRunner, build_openvino_model

            path = build_openvino_model(self._transformer, self.tokenizer, resolved.path, layer, cache_dir(),
                                        query_prefix=self.info.query_prefix,
                                        passage_prefix=self.info.passage_prefix, max_length=self.info.max_length)
            return OpenVinoRunner(path, threads=threads)
        return None

    @classmethod
    def load(cls, model: str, *, pooling: str = "mean", layer: int | None = None,
             max_length: int | None = None, threads: int | None = None, backend: str | None = None) -> Encoder:
        """Resolve ``model`` offline (see :func:`resolve_model`) and load it.

        ``backend`` is ``"openvino"`` or ``"onnx"`` (int8, built and cached on first use) or
        ``"torch"`` (fp32); ``$XSEARCH_BACKEND`` sets the default (see :func:`default_backend`).
        """
        return cls(resolve_model(model), pooling=pooling, layer=layer, max_length=max_length, threads=threads,
                   backend=backend)

    @property
    def dim(self) -> int:
        """Dimension of the sentence vectors."""
        return self.info.dim

    def warm(self) -> None:
        """Run every single-query width up to :data:`WARM_QUERY_TOKENS` once, for a backend
        that prepares each new input shape (OpenVINO), so that no query pays for that."""
        step = self._width_step()
        if self._runner is None or step == 1:
            return
        for width in range(step, self._padded(min(WARM_QUERY_TOKENS, self.info.max_length)) + 1, step):
            self._runner(np.full((1, width), self.tokenizer.pad_token_id or 0, dtype=np.int64),
                         np.ones((1, width), dtype=np.int64))

    def _width_step(self) -> int:
        """The runner wants a single text padded to a multiple of this many tokens (1: any width)."""
        return int(getattr(self._runner, "width_step", 1))

    def _padded(self, length: int) -> int:
        """The width the runner runs one text of ``length`` tokens at (a query: batches of many
        texts run at their exact width, where the padding would cost more than a new shape)."""
        step = self._width_step()
        return min(-(-length // step) * step, max(length, self.info.max_length))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens of each text, special tokens and prefixes not counted."""
        if not texts:
            return []
        with self._tokenizer_lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                     return_attention_mask=False, return_token_type_ids=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for texts as given, with no prefix."""
        return self.embed(texts)[0]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for search queries (with the model's query prefix)."""
        return self.embed(texts, kind="query")[0]

    def encode_passages(self, texts: Sequence[str], *, batch_tokens: int = DEFAULT_BATCH_TOKENS) -> np.ndarray:
        """Vectors for passages to index (with the model's passage prefix)."""
        return self.embed(texts, kind="passage", batch_tokens=batch_tokens)[0]

    def token_embeddings(self, texts: Sequence[str], *, kind: str | None = None,
                         batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[TokenEmbeddings]:
        """Token vectors with character offsets for each text.

        ``kind`` (``"query"`` or ``"passage"``) puts the model's prefix in front, as the
        sentence vectors do; the prefix's own tokens are left out of the result, so offsets
        always refer to the text as given.
        """
        return self.embed(texts, kind=kind, tokens=True, batch_tokens=batch_tokens)[1]

    def embed(self, texts: Sequence[str], *, kind: str | None = None, tokens: bool = False,
              batch_tokens: int = DEFAULT_BATCH_TOKENS) -> tuple[np.ndarray, list[TokenEmbeddings]]:
        """Sentence vectors and, if ``tokens``, token vectors of ``texts`` from one forward pass.

        Texts are tokenized once, sorted by token length and run in batches capped by
        ``batch_tokens`` padded tokens; results come back in input order.
        """
        import torch

        prefix = {"query": self.info.query_prefix, "passage": self.info.passage_prefix, None: ""}[kind]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_results: list[TokenEmbeddings] = [None] * len(texts) if tokens else []  # type: ignore[list-item]
        if not texts:
            return out, token_results
        with self._tokenizer_lock:
            encoded = self.tokenizer([prefix + t for t in texts], truncation=True, max_length=self.info.max_length,
                                     return_offsets_mapping=tokens, return_special_tokens_mask=tokens,
                                     return_attention_mask=False, return_token_type_ids=False)
        ids = encoded["input_ids"]
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for batch in token_budget_batches([len(x) for x in ids], batch_tokens):
                width = max(len(ids[i]) for i in batch)
                if len(batch) == 1:
                    width = self._padded(width)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                hidden = self._hidden(input_ids, mask)
                pooled = torch.nn.functional.normalize(pool(hidden, mask, self.info.pooling), p=2, dim=1)
                out[batch] = pooled.float().numpy()
                if tokens:
                    states = hidden.float().numpy()
                    for row, i in enumerate(batch):
                        token_results[i] = self._token_result(
                            texts[i], len(prefix), ids[i], encoded["offset_mapping"][i],
                            encoded["special_tokens_mask"][i], states[row, : len(ids[i])])
        return out, token_results

    def _token_result(self, text: str, shift: int, ids: list[int], offsets: list[tuple[int, int]],
                      special: list[int], vectors: np.ndarray) -> TokenEmbeddings:
        pieces = self._pieces(ids)
        keep, spans = [], []
        for i, ((start, end), is_special) in enumerate(zip(offsets, special)):
            if is_special:
                keep.append(i)
                spans.append((0, 0))
                continue
            if end <= shift:  # a token of the prefix
                continue
            start, end = max(start - shift, 0), end - shift
            while start < end and text[start].isspace():
                start += 1
            if pieces[i] == "\u2581":
                end = start  # a bare word-start marker stands for no character of its own
            keep.append(i)
            spans.append((start, end))
        content_tokens = sum(1 for i in keep if not special[i])
        return TokenEmbeddings(
            text=text,
            tokens=[pieces[i] for i in keep],
            ids=[ids[i] for i in keep],
            offsets=np.array(spans, dtype=np.int32).reshape(-1, 2),
            special=np.array([bool(special[i]) for i in keep], dtype=bool),
            vectors=np.ascontiguousarray(vectors[keep], dtype=np.float32),
            truncated=self.count_tokens([text])[0] > content_tokens,
        )

    def _pieces(self, ids: list[int]) -> list[str]:
        with self._tokenizer_lock:
            return self.tokenizer.convert_ids_to_tokens(ids)

    def _hidden(self, input_ids, mask):
        if self._runner is not None:
            import torch

            return torch.from_numpy(self._runner(input_ids.numpy(), mask.numpy()))
        layer = self.info.layer
        outputs = self._transformer(input_ids=input_ids, attention_mask=mask,
                                    output_hidden_states=layer is not None)
        return outputs.last_hidden_state if layer is None else outputs.hidden_states[layer]
