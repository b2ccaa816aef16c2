"""A model's token codec: product-quantizer codebooks for its token vectors, trained once.

An index stores each chunk's token vectors as one-byte codes (:mod:`xsearch.token_codec`).
The codebooks depend on the model, not on the documents, so they are trained once per model
(and layer and backend) on the content tokens (:func:`~xsearch.embed.tokens.content_tokens`)
of xsearch's calibration texts (:mod:`~xsearch.embed.calibration`: 24 languages and scripts)
encoded as passages, and cached beside the model's builds (``<cache>/token-codecs/<key>``,
written atomically by :func:`~xsearch.embed.export.build_cached`). A new index whose first
write holds too few tokens to train codebooks of its own takes these (see
:data:`xsearch.pipeline.MODEL_CODEC_BELOW`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..token_codec import TokenCodec
from .calibration import calibration_texts
from .export import build_cached, cache_key
from .registry import cache_dir
from .tokens import content_tokens

if TYPE_CHECKING:
    from .encoder import Encoder

FORMAT_VERSION = 2
"""Bumped whenever the training texts, the training or the codec's kind or size change."""
CODEC_FILE = "token-codec.bin"
KIND = "pq"


def codec_dir(encoder: Encoder, model_dir: Path) -> Path:
    """Where the codec of ``encoder`` (the model in ``model_dir``) is kept."""
    info = encoder.info
    version = f"v{FORMAT_VERSION}|{KIND}|{encoder.backend}|{info.passage_prefix}|{info.max_length}"
    return cache_dir() / "token-codecs" / cache_key(model_dir, info.layer, version)


def model_token_codec(encoder: Encoder, model_dir: Path) -> TokenCodec:
    """The token codec of ``encoder`` (the model in ``model_dir``), trained on first use."""
    texts = calibration_texts()

    def train(tmp: Path) -> None:
        tokens = [content_tokens(t).vectors for t in encoder.token_embeddings(texts, kind="passage")]
        codec = TokenCodec.for_vectors(np.concatenate(tokens), KIND)
        (tmp / CODEC_FILE).write_bytes(codec.to_bytes())

    manifest = {"format_version": FORMAT_VERSION, "source": str(model_dir), "layer": encoder.info.layer,
                "backend": encoder.backend, "kind": KIND, "texts": len(texts)}
    folder = build_cached(codec_dir(encoder, model_dir), (CODEC_FILE,), train, manifest,
                          f"the token codec of {encoder.info.model}")
    return TokenCodec.from_bytes((folder / CODEC_FILE).read_bytes())
