"""Grouped results: each document once, or each passage once with its language versions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..types import Hit, Translation
from .base import SearchContext
from .feedback import versions_of
from .scores import relevance


def group_by_document(hits: Sequence[Hit], k: int, *, per_document: int = 3) -> list[Hit]:
    """Each document once, as its best chunk, with up to ``per_document - 1`` more in ``Hit.more``."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.id, []).append(hit)
    best = sorted(groups.values(), key=lambda g: -g[0].score)[:k]
    return [replace(g[0], more=tuple(g[1:per_document])) for g in best]


def group_by_translation(ctx: SearchContext, q: int, hits: Sequence[Hit], k: int) -> list[Hit]:
    """Each passage once, as its best-scoring language version, with the others (chunks linked
    to it as translations, :func:`~xsearch.search.feedback.versions_of`) in
    ``Hit.translations``: the best-scoring version of each other language, best first. Versions
    that are not among ``hits`` are scored against query ``q`` when the search compared vectors,
    and kept out when the filters exclude them."""
    store = ctx.store
    versions = versions_of(store, [hit.chunk_id for hit in hits])
    listed = {hit.chunk_id: hit for hit in hits}
    taken: set[int] = set()
    leaders: list[tuple[Hit, list[int]]] = []
    for hit in hits:
        if hit.chunk_id in taken:
            continue
        members = [c for c in versions.get(hit.chunk_id, []) if c not in taken]
        taken.update([hit.chunk_id, *members])
        leaders.append((hit, members))
        if len(leaders) == k:
            break
    extra = sorted({c for _, members in leaders for c in members if c not in listed})
    if ctx.allowed is not None and extra:
        extra = [c for c, ok in zip(extra, np.isin(extra, ctx.allowed)) if ok]
    rows = store.chunk_rows(extra)
    scored = ctx.encoder is not None and bool(extra)
    extra_scores = dict(zip(extra, relevance(ctx.cosines(q, extra)).tolist())) if scored else {}
    out = []
    for hit, members in leaders:
        found = []
        for c in members:
            if c in listed:
                other = listed[c]
                found.append(Translation(c, other.lang, other.path, other.id, other.score))
            elif c in rows:
                row = rows[c]
                found.append(Translation(c, row.lang, row.path, row.doc_key, extra_scores.get(c)))
        found.sort(key=lambda t: -(t.score if t.score is not None else -1.0))
        best: dict[str, Translation] = {}
        for version in found:  # one version per language: the best-scoring
            if version.lang != hit.lang:
                best.setdefault(version.lang, version)
        out.append(replace(hit, translations=tuple(best.values())))
    return out
