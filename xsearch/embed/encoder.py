"""The encoder: texts in, L2-normalised sentence vectors out.

An :class:`Encoder` is three parts: the model's tokenizer (:mod:`~xsearch.embed.tokenizer`),
a *runner* that maps padded token ids to hidden states (an int8 OpenVINO or ONNX Runtime
graph, or the torch model), and the batching, pooling and normalisation done here, so that
batches are sorted by *token* length and capped by a token budget, and so that any layer and
pooling mode can be used. :meth:`Encoder.load` finds a model whose compiled backend is
already built and runs it with neither torch nor transformers
(:mod:`~xsearch.embed.prebuilt`); otherwise it loads the model through sentence-transformers
and builds what is missing (:mod:`~xsearch.embed.transformer`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import runtime
from .backends import COMPILED, EncoderInfo, ModelFacts, Runner, compiled_module, compiled_runner, default_backend

__all__ = ["COMPILED", "Encoder", "EncoderInfo", "ModelFacts", "Runner", "TokenEmbeddings", "compiled_module",
           "compiled_runner", "default_backend", "token_budget_batches"]
from .pooling import normalize, pool

if TYPE_CHECKING:
    from ..token_codec import TokenCodec
    from .tokenizer import Tokenizer

DEFAULT_BATCH_TOKENS = 8192
"""Upper bound on padded tokens per forward pass."""
MAX_BATCH_SIZE = 128
WARM_QUERY_TOKENS = 128
""":meth:`Encoder.warm` prepares the single-query widths up to this many tokens."""


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

    def __init__(self, info: EncoderInfo, tokenizer: Tokenizer, runner: Runner, backend: str, model_dir: Path) -> None:
        self.info = info
        self.tokenizer = tokenizer
        self.backend = backend
        """How the model runs: ``openvino``, ``onnx`` or ``torch``."""
        self._runner = runner
        self._model_dir = model_dir
        self._codec: TokenCodec | None = None
        self._codec_lock = threading.Lock()

    @classmethod
    def load(cls, model: str, *, pooling: str = "mean", layer: int | None = None,
             max_length: int | None = None, threads: int | None = None, backend: str | None = None) -> Encoder:
        """Resolve ``model`` offline (see :func:`~xsearch.embed.registry.resolve_model`) and load it.

        ``backend`` is ``"openvino"`` or ``"onnx"`` (int8, built and cached on first use) or
        ``"torch"`` (fp32); ``$XSEARCH_BACKEND`` sets the default (see :func:`default_backend`).
        When no backend is named and the default one cannot take the model, the next one in
        :data:`~xsearch.config.BACKENDS` runs it, with a warning. A model whose compiled
        backend is built loads without torch, transformers or sentence-transformers.
        """
        from .prebuilt import load_prebuilt

        threads = threads or runtime.cpu_count()
        loaded = load_prebuilt(model, pooling=pooling, layer=layer, max_length=max_length, threads=threads,
                               backend=backend)
        if loaded is None:
            from .registry import resolve_model
            from .transformer import load_transformer

            loaded = load_transformer(resolve_model(model), pooling=pooling, layer=layer, max_length=max_length,
                                      threads=threads, backend=backend)
        return cls(*loaded)

    @property
    def dim(self) -> int:
        """Dimension of the sentence vectors."""
        return self.info.dim

    def warm(self) -> None:
        """Build the tokenizer's whole core (:meth:`Tokenizer.prepare`) and run every
        single-query width up to :data:`WARM_QUERY_TOKENS` once, for a backend that prepares
        each new input shape (OpenVINO), so that no query pays for either."""
        self.tokenizer.prepare()
        step = self._width_step()
        if step == 1:
            return
        for width in range(step, self._padded(min(WARM_QUERY_TOKENS, self.info.max_length)) + 1, step):
            self._runner(np.full((1, width), self.tokenizer.pad_id, dtype=np.int64),
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
        return self.tokenizer.count(texts) if texts else []

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
        prefix = {"query": self.info.query_prefix, "passage": self.info.passage_prefix, None: ""}[kind]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_results: list[TokenEmbeddings] = [None] * len(texts) if tokens else []  # type: ignore[list-item]
        if not texts:
            return out, token_results
        encodings = self.tokenizer.encode([prefix + t for t in texts], max_length=self.info.max_length)
        ids = [encoding.ids for encoding in encodings]
        batches = list(token_budget_batches([len(x) for x in ids], batch_tokens))
        inputs = [self._batch_input(ids, batch) for batch in batches]
        run_batches = getattr(self._runner, "run_batches", None)
        if run_batches is not None and len(batches) > 1:  # many batches: the runner's parallel streams
            hidden_states = run_batches(inputs)
        else:  # one text or one batch: one forward pass at the lowest latency
            hidden_states = (self._runner(input_ids, mask) for input_ids, mask in inputs)
        for batch, (_, mask), hidden in zip(batches, inputs, hidden_states):
            hidden = np.asarray(hidden, dtype=np.float32)
            out[batch] = normalize(pool(hidden, mask, self.info.pooling))
            if tokens:
                for row, i in enumerate(batch):
                    token_results[i] = self._token_result(
                        texts[i], len(prefix), ids[i], encodings[i].offsets, encodings[i].special_tokens_mask,
                        hidden[row, : len(ids[i])])
        return out, token_results

    def _batch_input(self, ids: list[list[int]], batch: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The padded ``(input_ids, attention_mask)`` of the texts ``batch`` (indices into ``ids``)."""
        width = max(len(ids[i]) for i in batch)
        if len(batch) == 1:
            width = self._padded(width)
        input_ids = np.full((len(batch), width), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            input_ids[row, : len(ids[i])] = ids[i]
            mask[row, : len(ids[i])] = 1
        return input_ids, mask

    def _token_result(self, text: str, shift: int, ids: list[int], offsets: list[tuple[int, int]],
                      special: list[int], vectors: np.ndarray) -> TokenEmbeddings:
        pieces = self.tokenizer.pieces(ids)
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
            # a text shorter than the limit was not cut: counting it again is needed only at the limit
            truncated=len(ids) >= self.info.max_length and self.count_tokens([text])[0] > content_tokens,
        )

    def token_codec(self) -> TokenCodec:
        """The codec that stores this model's token vectors compactly: a product quantizer
        trained once per model (and layer and backend) on xsearch's calibration texts, cached
        beside the model's builds (see :mod:`~xsearch.embed.codebook`). A new index whose first
        write is small stores its token vectors with it (``Store.set_token_codec``) instead of
        training its own."""
        with self._codec_lock:
            if self._codec is None:
                from .codebook import model_token_codec

                self._codec = model_token_codec(self, self._model_dir)
            return self._codec
