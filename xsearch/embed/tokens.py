"""Which token vectors are worth keeping and matching: those that stand for a word's letters.

Special tokens, bare word-start markers and punctuation carry little meaning of their own in
late interaction; the index stores, and the query matches, only the tokens picked here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..text import is_content_char
from ..types import ChunkTokens

if TYPE_CHECKING:
    from .encoder import TokenEmbeddings


def content_mask(text: str, offsets: np.ndarray, special: np.ndarray | None = None) -> np.ndarray:
    """``(n,)`` bool: True for tokens that stand for at least one letter, digit or mark.

    False for special tokens, tokens with an empty span (a bare word-start marker) and
    tokens that are only punctuation, symbols or space. ``offsets`` is ``(n, 2)``
    character spans into ``text``; ``special`` an optional ``(n,)`` bool mask.
    """
    offsets = np.asarray(offsets).reshape(-1, 2)
    keep = np.fromiter((any(is_content_char(ch) for ch in text[s:e]) for s, e in offsets.tolist()),
                       dtype=bool, count=len(offsets))
    if special is not None:
        keep &= ~np.asarray(special, dtype=bool)
    return keep


def content_tokens(tokens: TokenEmbeddings) -> ChunkTokens:
    """The tokens of a chunk kept for late interaction: letters, digits and marks only."""
    keep = content_mask(tokens.text, tokens.offsets, tokens.special)
    return ChunkTokens(tokens.offsets[keep], tokens.vectors[keep])
