"""Translation links: which chunks of an index say the same thing in another language.

After every write the facade calls :func:`update_links`, which links each chunk added since
the last update to its translations, found the way bitext mining finds them: for a chunk
``x`` and another language ``B``, the nearest chunk ``y`` of ``B`` (centred cosine, see
:mod:`xsearch.embed.centering`) is a translation when the choice is mutual (``x`` is also
``y``'s nearest chunk in ``x``'s language), clearly better than the runner-up on both sides
(ratio margin ``cos(x, y) / max(runner-ups) >= LINK_MARGIN``) and not a weak match
(``cos(x, y) >= LINK_FLOOR``). Neighbours come from the vector index (``LINK_NEIGHBOURS`` per
chunk) and are re-scored exactly from the stored vectors.

On bible-nt-7 (7 languages, verse-aligned passages) these rules link 4.7 of the 6 possible
translations per passage with a precision of 0.99; on ``data/eval`` (topic-parallel
articles) 71% of the links join two articles on the same topic.

Links are stored in both directions (:meth:`Store.replace_links`) together with the
generation they are current to, so an interrupted update is redone by the next write, and
an index made before links existed gets them on its next write. A chunk that wins ``y`` over
an older chunk of the same language takes that link over. Links go with their chunks when
those are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .embed.centering import center, prepare
from .store.db import Store, StoredVectors
from .types import LanguageMeans

if TYPE_CHECKING:
    from .ann import AnnIndex

LINK_NEIGHBOURS = 16
"""Nearest chunks looked at per chunk (in every language together)."""
LINK_MARGIN = 1.05
"""How much better than the runner-up (on both sides) a translation must be, as a ratio."""
LINK_FLOOR = 0.2
"""Lowest centred cosine of a translation: below it a mutual best is only the least bad match."""
BATCH = 4096
"""Chunks whose neighbours are searched at once."""
_UNKNOWN = ("", "und")

Neighbours = list[tuple[int, float, str]]
"""``(chunk id, centred cosine, language)``, closest first."""


def update_links(store: Store, ann: AnnIndex | None, scoring: str) -> int:
    """Link the chunks added since links were last made (see the module docstring); returns
    how many links were made. ``ann`` must hold every chunk, as ``scoring`` prepares them."""
    done = int(store.get_setting("links_gen", 0) or 0)
    gen = store.generation
    if done >= gen:
        return 0
    if ann is None or len(ann) == 0:
        store.replace_links([], [], upto_gen=gen)
        return 0
    _, added = store.changes_since(done)
    means = store.language_means()
    made: dict[tuple[int, int], float] = {}
    dropped: set[tuple[int, int]] = set()
    for start in range(0, len(added), BATCH):
        part = _subset(added, slice(start, start + BATCH))
        links, drops = _links_of(store, ann, part, scoring, means)
        made.update(links)
        dropped |= drops
    store.replace_links(sorted(dropped - made.keys()), [(a, b, s) for (a, b), s in made.items()], upto_gen=gen)
    return len(made)


def _links_of(store: Store, ann: AnnIndex, new: StoredVectors, scoring: str, means: LanguageMeans
              ) -> tuple[dict[tuple[int, int], float], set[tuple[int, int]]]:
    """The links of the chunks ``new`` (keyed by the pair, smaller id first), and the older
    links they take over."""
    new = _subset(new, [i for i, lang in enumerate(new.langs) if lang not in _UNKNOWN])
    around = dict(zip(new.ids.tolist(), _neighbours(store, ann, new, scoring, means)))
    choices = []  # (x, x's language, y, y's language, cosine, x's runner-up in y's language)
    for x, lang in zip(new.ids.tolist(), new.langs):
        for other, (y, cos, runner_up) in _best_per_language(around[x], lang).items():
            choices.append((x, lang, y, other, cos, runner_up))
    partners = sorted({choice[2] for choice in choices} - around.keys())
    if partners:
        found = store.vectors_of(partners)
        around.update(zip(found.ids.tolist(), _neighbours(store, ann, found, scoring, means)))
    links: dict[tuple[int, int], float] = {}
    ends: dict[tuple[int, str], int] = {}  # (chunk, language of its new partner) -> the partner
    for x, lang, y, other, cos, runner_up in choices:
        back = _best_per_language(around.get(y, []), other).get(lang)
        if back is None or back[0] != x or cos < LINK_FLOOR:
            continue
        if cos / max(runner_up, back[2], 1e-6) >= LINK_MARGIN:
            links[(min(x, y), max(x, y))] = cos
            ends[(x, other)] = y
            ends[(y, lang)] = x
    return links, _taken_over(store, ends)


def _taken_over(store: Store, ends: dict[tuple[int, str], int]) -> set[tuple[int, int]]:
    """The stored links that new ones replace: a chunk keeps one translation per language."""
    chunks = sorted({chunk for chunk, _ in ends})
    existing = store.links_of(chunks)
    langs = store.chunk_langs(sorted({other for found in existing.values() for other, _ in found}))
    dropped = set()
    for chunk in chunks:
        for other, _ in existing.get(chunk, []):
            partner = ends.get((chunk, langs.get(other, "")))
            if partner is not None and partner != other:
                dropped.add((min(chunk, other), max(chunk, other)))
    return dropped


def _best_per_language(neighbours: Neighbours, own: str) -> dict[str, tuple[int, float, float]]:
    """Per language other than ``own``: ``(nearest chunk, its cosine, the runner-up's cosine)``.
    Where no second chunk of a language is among the neighbours, the farthest neighbour's
    cosine stands in for the runner-up (the true one is no closer)."""
    best: dict[str, tuple[int, float]] = {}
    second: dict[str, float] = {}
    for cid, cos, lang in neighbours:
        if lang == own or lang in _UNKNOWN:
            continue
        if lang not in best:
            best[lang] = (cid, cos)
        elif lang not in second:
            second[lang] = cos
    farthest = neighbours[-1][1] if neighbours else 0.0
    return {lang: (cid, cos, second.get(lang, farthest)) for lang, (cid, cos) in best.items()}


def _neighbours(store: Store, ann: AnnIndex, chunks: StoredVectors, scoring: str, means: LanguageMeans
                ) -> list[Neighbours]:
    """Each chunk's nearest other chunks, re-scored exactly by centred cosine."""
    if not len(chunks):
        return []
    _, ids = ann.search(prepare(chunks.vectors, chunks.langs, scoring, means), LINK_NEIGHBOURS + 1)
    found = store.vectors_of(np.unique(ids[ids >= 0]))
    exact = center(found.vectors, found.langs, means)
    mine = center(chunks.vectors, chunks.langs, means)
    row_of = {int(cid): row for row, cid in enumerate(found.ids)}
    out = []
    for q, (own, id_row) in enumerate(zip(chunks.ids.tolist(), ids)):
        rows = [row_of[int(c)] for c in id_row if c >= 0 and int(c) != own and int(c) in row_of]
        cosines = exact[rows] @ mine[q]
        order = np.argsort(-cosines, kind="stable")
        out.append([(int(found.ids[rows[i]]), float(cosines[i]), found.langs[rows[i]]) for i in order])
    return out


def _subset(chunks: StoredVectors, which: slice | Sequence[int]) -> StoredVectors:
    """Some of ``chunks``, by a slice or by positions."""
    langs = chunks.langs[which] if isinstance(which, slice) else [chunks.langs[i] for i in which]
    return StoredVectors(chunks.ids[which], langs, chunks.vectors[which])
