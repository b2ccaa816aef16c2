"""A LangChain retriever over an xsearch index (``pip install 'xsearch[langchain]'``).

>>> from xsearch import Index
>>> from xsearch.integrations.langchain import XsearchRetriever
>>> retriever = XsearchRetriever(index=Index.open("indexes/default"), k=4)   # doctest: +SKIP
>>> docs = retriever.invoke("¿Cómo producen energía las plantas?")             # doctest: +SKIP

Each passage becomes a ``Document`` whose ``page_content`` is the passage and whose
``metadata`` holds the document's own metadata plus ``id``, ``path``, ``lang``, ``score`` (the
readable score in [0, 1], see :attr:`xsearch.Hit.score`), ``title``, ``chunk_id``, ``start`` and
``end`` (these win over metadata fields of the same name). With ``group_by="translation"`` each
passage comes once, and ``translations`` lists its language versions, best first, as dicts
(``chunk_id``, ``lang``, ``path``, ``id``, ``score``).
"""

from __future__ import annotations

from typing import Any, Literal

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain retriever needs langchain-core: pip install 'xsearch[langchain]'") from exc
from pydantic import ConfigDict, Field

from ..config import GROUPINGS, MAX_K, MODES
from ..index import Index
from ..types import Hit


class XsearchRetriever(BaseRetriever):
    """Retrieves the ``k`` best passages of an :class:`~xsearch.Index`, in any language."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    """The open index to search (the caller closes it)."""
    k: int = Field(4, ge=1, le=MAX_K)
    """Passages per query, at most :data:`~xsearch.config.MAX_K`."""
    filters: dict[str, Any] | None = None
    """As in :meth:`xsearch.Index.search`, e.g. ``{"lang": ["de"]}`` or ``{"topic": "biology"}``."""
    mode: Literal[MODES] = "dense"
    rerank: bool = True
    feedback: bool = True
    """Pull up the language versions of the best hit (dense and hybrid modes)."""
    group_by: Literal[GROUPINGS] | None = None
    """``"document"``: each document once; ``"translation"``: each passage once, its language
    versions in the ``translations`` metadata."""
    min_score: float = Field(0.0, ge=0, le=1)
    """Only passages whose score reaches this (scores run from 0 to 1)."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, self.k, filters=self.filters, mode=self.mode, rerank=self.rerank,
                                 feedback=self.feedback, group_by=self.group_by, min_score=self.min_score)
        return [to_document(hit, translations=self.group_by == "translation") for hit in hits]


def to_document(hit: Hit, *, translations: bool = False) -> Document:
    """A LangChain ``Document`` for one hit (see the module docstring for its metadata), with
    ``translations`` in its metadata when asked (possibly empty) or when the hit has some."""
    metadata = {**hit.metadata, "id": hit.id, "path": hit.path, "lang": hit.lang, "score": hit.score,
                "title": hit.title, "chunk_id": hit.chunk_id, "start": hit.start, "end": hit.end}
    if translations or hit.translations:
        metadata["translations"] = [version.to_dict() for version in hit.translations]
    return Document(page_content=hit.text, metadata=metadata)


__all__ = ["XsearchRetriever", "to_document"]
