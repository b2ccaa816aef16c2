"""A LangChain retriever over an xsearch index (``pip install 'xsearch[langchain]'``).

>>> from xsearch import Index
>>> from xsearch.integrations.langchain import XsearchRetriever
>>> retriever = XsearchRetriever(index=Index.open("indexes/default"), k=4)   # doctest: +SKIP
>>> docs = retriever.invoke("¿Cómo producen energía las plantas?")             # doctest: +SKIP

Each passage becomes a ``Document`` whose ``page_content`` is the passage and whose
``metadata`` holds the document's own metadata plus ``id``, ``path``, ``lang``, ``score``,
``title``, ``chunk_id``, ``start`` and ``end`` (these win over metadata fields of the same name).
"""

from __future__ import annotations

from typing import Any, Literal

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain retriever needs langchain-core: pip install 'xsearch[langchain]'") from exc
from pydantic import ConfigDict

from ..index import Index
from ..types import Hit


class XsearchRetriever(BaseRetriever):
    """Retrieves the ``k`` best passages of an :class:`~xsearch.Index`, in any language."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    """The open index to search (the caller closes it)."""
    k: int = 4
    """Passages per query."""
    filters: dict[str, Any] | None = None
    """As in :meth:`xsearch.Index.search`, e.g. ``{"lang": ["de"]}`` or ``{"topic": "biology"}``."""
    mode: Literal["dense", "lexical", "hybrid"] = "dense"
    rerank: bool = True

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, self.k, filters=self.filters, mode=self.mode, rerank=self.rerank)
        return [to_document(hit) for hit in hits]


def to_document(hit: Hit) -> Document:
    """A LangChain ``Document`` for one hit (see the module docstring for its metadata)."""
    metadata = {**hit.metadata, "id": hit.id, "path": hit.path, "lang": hit.lang, "score": hit.score,
                "title": hit.title, "chunk_id": hit.chunk_id, "start": hit.start, "end": hit.end}
    return Document(page_content=hit.text, metadata=metadata)


__all__ = ["XsearchRetriever", "to_document"]
