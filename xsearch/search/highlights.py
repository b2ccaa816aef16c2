"""Highlights: the words of a hit that matched the query, as character spans of its text.

Spans come from the stages that ranked the hit (token alignment in late interaction, term
occurrences in lexical ranking); here they are grown to whole words and merged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..text import in_spaced_word

if TYPE_CHECKING:
    from ..types import Hit
    from .base import Ranked, Span


_in_spaced_word = functools.lru_cache(maxsize=1 << 16)(in_spaced_word)
""":func:`~xsearch.text.in_spaced_word`, remembered per character: growing the spans of ten
hits looks at some 400 characters, each a Unicode category and script lookup."""


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Sorted, disjoint spans covering the same characters as ``spans``."""
    merged: list[Span] = []
    for start, end in sorted((int(a), int(b)) for a, b in spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def whole_words(text: str, spans: Sequence[Span]) -> list[Span]:
    """Grow token spans to the whole words they are part of (``ze`` -> ``Pflanzen``); spans in
    scripts written without spaces stay as they are."""
    out = []
    for start, end in spans:
        start, end = int(start), int(end)
        if start < end and _in_spaced_word(text[start]) and _in_spaced_word(text[end - 1]):
            while start > 0 and _in_spaced_word(text[start - 1]):
                start -= 1
            while end < len(text) and _in_spaced_word(text[end]):
                end += 1
        out.append((start, end))
    return out


def highlighted(queries: Sequence[str], ranked: Sequence[Ranked], hits: Sequence[Sequence[Hit]], *,
                term_spans: Callable[[str, str], list[Span]] | None = None) -> list[list[Hit]]:
    """Each query's hits with their highlights, as whole words: the spans the stages found for
    them, plus ``term_spans(text, query)`` when given (the query's terms in the text)."""
    out = []
    for query, found, query_hits in zip(queries, ranked, hits):
        with_spans = []
        for hit in query_hits:
            spans = list(found.spans.get(hit.chunk_id, ()))
            if term_spans is not None:
                spans += term_spans(hit.text, query)
            merged = merge_spans(whole_words(hit.text, spans))
            with_spans.append(replace(hit, highlights=tuple(merged)) if merged else hit)
        out.append(with_spans)
    return out
