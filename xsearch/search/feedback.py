"""Translation feedback: the best hit's language versions come up with it.

The top hit of a query is usually right, and its translations are what the query also asks
for in other languages; yet they score lower against the query than same-language near misses
do. This stage takes each query's best hit ``h``, follows its translation links (made at index
time, :mod:`xsearch.translations`) up to :data:`HOPS` steps, and scores each linked chunk ``c``
as ``(1 - WEIGHT) * s(q, c) + WEIGHT * s(h, c)``, never above ``h`` itself; ``s`` is the
cosine of the search's scoring and the list is on the cosine scale (:mod:`.scores`). Linked
chunks that the first stage missed join the list. Only links are followed, so an index whose
documents are not translations of each other keeps its ranking (``data/eval`` nDCG@10 does not
drop), and filters hold: a chunk outside them is never pulled in.

Chosen on bible-nt-7 with centred passage vectors: mAP@20 0.147 without feedback, 0.398 with
weight 0.9 and two hops (0.334 with one hop, 0.361 at weight 0.7); the same rule applied to every
candidate instead of linked ones only reached 0.258. In the product (``xsearch eval``) it runs
after the late-interaction rerank, whose better top hit it builds on: bible-nt-7 mAP@20 0.235 ->
0.435; run before the rerank, which then pushes the translations down again, only 0.278.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .base import Ranked, SearchContext

if TYPE_CHECKING:
    from ..store.db import Store

WEIGHT = 0.9
"""Share of a linked chunk's score that comes from its similarity to the best hit."""
HOPS = 2
"""Link steps followed from the best hit (two reach a version that is linked only through another)."""


def pull_translations(ctx: SearchContext, ranked: list[Ranked]) -> list[Ranked]:
    """Stage: each list with its best hit's translations scored up (see the module docstring)."""
    if not ctx.feedback:
        return ranked
    out = []
    for q, found in enumerate(ranked):
        group = _linked(ctx, int(found.ids[0])) if len(found) else []
        out.append(_pulled(ctx, q, found, group) if group else found)
    return out


def _linked(ctx: SearchContext, best: int) -> list[int]:
    """The chunks linked to ``best`` and allowed by the filters."""
    group = versions_of(ctx.store, [best])[best]
    if ctx.allowed is not None and group:
        group = [c for c, ok in zip(group, np.isin(group, ctx.allowed)) if ok]
    return group


def versions_of(store: Store, chunks: Sequence[int]) -> dict[int, list[int]]:
    """Per chunk, the chunks linked to it as translations within :data:`HOPS` steps, nearest
    step first (itself excluded)."""
    out = {}
    for chunk in chunks:
        reached = {chunk: None}
        frontier = [chunk]
        for _ in range(HOPS):
            links = store.links_of(frontier)
            frontier = [other for c in frontier for other, _ in links.get(c, []) if other not in reached]
            reached.update(dict.fromkeys(frontier))
        out[chunk] = list(reached)[1:]
    return out


def _pulled(ctx: SearchContext, q: int, found: Ranked, group: list[int]) -> Ranked:
    """``found`` with the chunks of ``group`` (linked to its best hit) scored up or added."""
    listed = {int(c): i for i, c in enumerate(found.ids)}
    stored = ctx.chunk_vectors([int(found.ids[0]), *group])
    vectors = stored.vectors
    row = {int(c): i for i, c in enumerate(stored.ids)}
    group = [c for c in group if c in row]
    if int(found.ids[0]) not in row or not group:
        return found
    to_query = vectors @ ctx.query_vectors()[q]
    to_best = vectors @ vectors[row[int(found.ids[0])]]
    joining = [c for c in group if c not in listed]
    ids = np.concatenate([found.ids, np.array(joining, dtype=np.int64)])
    scores = np.concatenate([found.scores, [to_query[row[c]] for c in joining]]).astype(np.float32)
    details = {name: np.concatenate([values, np.full(len(joining), np.nan, dtype=np.float32)])
               for name, values in found.details.items()}
    if "cosine" in details:
        details["cosine"][len(found):] = scores[len(found):]
    position = {int(c): i for i, c in enumerate(ids)}
    members = np.array([position[c] for c in group], dtype=np.int64)
    similarity = np.full(len(ids), np.nan, dtype=np.float32)
    similarity[members] = [to_best[row[c]] for c in group]
    keys = scores.copy()
    pulled = np.minimum((1 - WEIGHT) * scores[members] + WEIGHT * similarity[members], scores[0])
    keys[members] = np.maximum(keys[members], pulled)
    grown = Ranked(ids, keys, found.spans, found.aligned, {**details, "translation_of_best": similarity})
    return grown.take(np.argsort(-keys, kind="stable"))
