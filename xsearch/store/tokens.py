"""The store's token codec: :class:`~xsearch.token_codec.TokenCodec`, shared with the encoder,
which trains one per model (see :mod:`xsearch.token_codec`)."""

from __future__ import annotations

from ..token_codec import KINDS, MIN_TRAIN_TOKENS, NotEnoughTokensError, TokenCodec

__all__ = ["KINDS", "MIN_TRAIN_TOKENS", "NotEnoughTokensError", "TokenCodec"]
