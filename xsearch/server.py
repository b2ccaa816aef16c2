"""The HTTP service: an index's search, add and delete over JSON, for retrieval-augmented apps.

:func:`create_app` wraps an open :class:`~xsearch.Index` in a FastAPI app; ``xsearch serve``
runs it with uvicorn (:func:`run`). Endpoints:

- ``POST /search``: ``{"query", "k", "filters", "mode", "rerank"}`` -> ``{"hits", "took_ms"}``
- ``POST /search/batch``: ``{"queries": [...], ...}`` -> ``{"results": [{"hits"}...], "took_ms"}``
- ``POST /documents``: ``{"documents": [{"text", "metadata", "id"}...]}`` -> ``{"ids"}``
- ``DELETE /documents/{id}``: -> ``{"deleted": [id]}``, 404 for an unknown id
- ``GET /info``, ``GET /health``; OpenAPI docs at ``/docs``, the schema at ``/openapi.json``.

Bad bodies get 422 with pydantic's account of what is wrong (filters included); ``k`` over
:data:`MAX_K` gets 400, bodies over :data:`MAX_BODY_BYTES` 413, a write while another process
writes 409. Endpoints are plain functions, so FastAPI runs them in its thread pool: the model
and the index are used from several threads at once, which :class:`~xsearch.Index` allows.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._version import __version__
from .errors import IndexLockedError, ModelError, UsageError, XsearchError
from .index import Index
from .search.filters import Filters

MAX_K = 100
"""Most hits one query may ask for."""
MAX_QUERIES = 64
"""Most queries in one ``POST /search/batch``."""
MAX_QUERY_CHARS = 4096
MAX_DOCUMENTS = 1000
"""Most documents in one ``POST /documents``."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (413 above it)."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# request and response bodies ----------------------------------------------
class SearchOptions(BaseModel):
    """How to search; shared by ``/search`` and ``/search/batch``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, description=f"Hits per query, at most {MAX_K}.")
    filters: dict[str, Any] | None = Field(
        None, description='e.g. {"lang": ["de", "ja"]}, {"path": "*.md"}, {"topic": "biology"}, '
                          '{"year": {"in": [2023, 2024]}}; every entry must hold.')
    mode: Literal["dense", "lexical", "hybrid"] = Field("dense", description="Sentence vectors, BM25 keywords, or both.")
    rerank: bool = Field(True, description="Rerank the best 100 by token-level late interaction.")

    @field_validator("filters")
    @classmethod
    def _valid_filters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        try:
            Filters.parse(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return value


class SearchRequest(SearchOptions):
    """One query."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question, in any language.")


class BatchSearchRequest(SearchOptions):
    """Several queries with the same options."""

    queries: list[str] = Field(min_length=1, max_length=MAX_QUERIES)


class HitModel(BaseModel):
    """One passage, as :meth:`xsearch.Hit.to_dict` gives it."""

    id: str = Field(description="The document's id: a text's id, or a file's path (#N for record N > 0).")
    chunk_id: int
    score: float
    path: str = Field(description="The file's absolute path; empty for a text.")
    lang: str
    title: str
    record: int
    start: int = Field(description="Character offset of the passage in its document.")
    end: int
    text: str
    metadata: dict[str, Any]
    highlights: list[list[int]] = Field(description="[start, end] spans in text that match the query best.")


class SearchResponse(BaseModel):
    """The hits of one query, best first."""

    hits: list[HitModel]
    took_ms: float


class SearchResult(BaseModel):
    """The hits of one query of a batch."""

    hits: list[HitModel]


class BatchSearchResponse(BaseModel):
    """One result per query, in order."""

    results: list[SearchResult]
    took_ms: float


class DocumentIn(BaseModel):
    """A text to index, with its metadata and optionally its id."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept with the text; filterable.")
    id: str | None = Field(None, min_length=1, max_length=1024,
                           description="Your id; an existing one is replaced. Made up when missing.")


class AddDocumentsRequest(BaseModel):
    """Texts to index."""

    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS)


class AddDocumentsResponse(BaseModel):
    """The ids of the documents, in request order."""

    ids: list[str]


class DeleteResponse(BaseModel):
    """The ids of the documents removed."""

    deleted: list[str]


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"] = "ok"
    version: str = __version__


# the app --------------------------------------------------------------------
_STATUS = ((IndexLockedError, 409), (UsageError, 400), (ModelError, 503))


def create_app(index: Index, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app serving ``index`` (which stays the caller's to close)."""
    app = FastAPI(title="xsearch", version=__version__,
                  description="Multilingual semantic search over one xsearch index.")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(XsearchError)
    def _library_error(_request: Request, exc: XsearchError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": " ".join(str(exc).split())}, status_code=status)

    def _check_k(k: int) -> None:
        if k > MAX_K:
            raise HTTPException(400, f"k may be at most {MAX_K}")

    @app.post("/search", response_model=SearchResponse)
    def search(body: SearchRequest) -> dict[str, Any]:
        """The best passages for a query, in any language, from documents in every language."""
        _check_k(body.k)
        started = time.perf_counter()
        hits = index.search(body.query, body.k, filters=body.filters, mode=body.mode, rerank=body.rerank)
        return {"hits": [hit.to_dict() for hit in hits], "took_ms": _ms_since(started)}

    @app.post("/search/batch", response_model=BatchSearchResponse)
    def search_batch(body: BatchSearchRequest) -> dict[str, Any]:
        """Several queries with the same options, in one model call."""
        _check_k(body.k)
        started = time.perf_counter()
        results = index.search_batch(body.queries, body.k, filters=body.filters, mode=body.mode, rerank=body.rerank)
        return {"results": [{"hits": [hit.to_dict() for hit in hits]} for hits in results],
                "took_ms": _ms_since(started)}

    @app.post("/documents", response_model=AddDocumentsResponse)
    def add_documents(body: AddDocumentsRequest) -> dict[str, Any]:
        """Index texts with their metadata; an existing id is replaced."""
        docs = body.documents
        ids = index.add_texts([d.text for d in docs], metadata=[d.metadata for d in docs], ids=[d.id for d in docs])
        return {"ids": ids}

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse)
    def delete_document(doc_id: str) -> dict[str, Any]:
        """Remove a document by id (a file's document stays out until the file changes)."""
        deleted = index.remove(ids=[doc_id])
        if not deleted:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return {"deleted": deleted}

    @app.get("/info")
    def info() -> dict[str, Any]:
        """Counts, languages, model and size of the index."""
        return index.info().to_dict()

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Whether the service answers."""
        return Health()

    return app


class BodyLimit:
    """ASGI middleware: requests with bodies over ``max_bytes`` get 413, declared or streamed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse({"detail": f"request body over {self.max_bytes} bytes"}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def run(index: Index, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Load the model, then serve ``index`` on ``host:port`` until interrupted."""
    import uvicorn

    index.warm()
    uvicorn.run(create_app(index), host=host, port=port, log_level=log_level)


__all__ = ["MAX_BODY_BYTES", "MAX_DOCUMENTS", "MAX_K", "MAX_QUERIES", "create_app", "run"]
