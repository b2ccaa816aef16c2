"""The HTTP service: an index's search, add and delete over JSON, for retrieval-augmented apps.

:func:`create_app` wraps an open :class:`~xsearch.Index` in a FastAPI app; ``xsearch serve``
runs it with uvicorn (:func:`run`). Endpoints:

- ``POST /search``: ``{"query", "k", "filters", "mode", "rerank", "feedback", "group_by", "min_score",
  "explain"}`` -> ``{"hits", "took_ms"}``
- ``POST /search/batch``: ``{"queries": [...], ...}`` -> ``{"results": [{"hits"}...], "took_ms"}``
- ``POST /documents``: ``{"documents": [{"text", "metadata", "id"}...]}`` -> ``{"ids"}``
- ``DELETE /documents/{id}``: -> ``{"deleted": [id]}``, 404 for an unknown id
- ``GET /info``, ``GET /health``; OpenAPI docs at ``/docs`` (Swagger UI) and ``/redoc``, served
  with their scripts from the ``fastapi-offline`` package (no network needed), the schema at
  ``/openapi.json``.

A hit is :meth:`xsearch.Hit.to_dict`: ``more``, ``translations`` and ``explain`` appear only when
the search gives them (grouped results, ``explain``). Bad bodies get 422 with pydantic's account
of what is wrong, without quoting the input: values of the wrong type (strictly: ``"k": "5"`` is
refused), ``k`` over :data:`~xsearch.config.MAX_K`, text holding a lone surrogate (``"\\ud800"``
is not Unicode), filters over the limits of :mod:`xsearch.search.filters`, metadata over those of
:func:`xsearch.ingest.extract.check_metadata`, a ``lang`` filter naming a language the index holds
no passages in (the reason lists those it holds). Bodies over :data:`MAX_BODY_BYTES` get 413, a write
while another process writes 409. Metadata that an older version stored and JSON cannot carry is
sent with NaN as null, and empty when it nests deeper than
:data:`~xsearch.ingest.extract.MAX_JSON_DEPTH`. Endpoints are plain functions, so FastAPI runs
them in its thread pool: the model and the index are used from several threads at once, which
:class:`~xsearch.Index` allows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ._version import __version__
from .config import GROUPINGS, MAX_K, MODES
from .errors import IndexLockedError, ModelError, UnknownLanguageError, UsageError, XsearchError
from .index import Index
from .ingest.extract import check_metadata, json_value
from .runtime import configure_process
from .search.filters import Filters

MAX_QUERIES = 64
"""Most queries in one ``POST /search/batch``."""
MAX_QUERY_CHARS = 4096
MAX_DOCUMENTS = 1000
"""Most documents in one ``POST /documents``."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest request body accepted (413 above it)."""
DOCS_ASSETS = "/docs-assets"
"""Where the scripts and styles of ``/docs`` and ``/redoc`` are served from."""
SHUTDOWN_SECONDS = 1
"""How long ``xsearch serve`` lets requests in flight finish after Ctrl+C before it stops."""


def _no_surrogates(text: str) -> str:
    if _SURROGATE.search(text):
        raise ValueError("text holds a lone surrogate (such as \\ud800), which is not Unicode")
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")
Text = Annotated[str, AfterValidator(_no_surrogates)]
"""A string in valid Unicode: JSON may escape lone surrogates, which no text can hold."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# request and response bodies ----------------------------------------------
class SearchOptions(BaseModel):
    """How to search; shared by ``/search`` and ``/search/batch``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    k: int = Field(10, ge=1, le=MAX_K, description=f"Hits per query, at most {MAX_K}.")
    filters: dict[str, Any] | None = Field(
        None, description='e.g. {"lang": ["de", "ja"]}, {"path": "*.md"}, {"topic": "biology"}, '
                          '{"year": {"in": [2023, 2024]}}; every entry must hold.')
    mode: Literal[MODES] = Field("dense", description="Sentence vectors, BM25 keywords, or both.")
    rerank: bool = Field(True, description="Rerank the best 100 by token-level late interaction.")
    feedback: bool = Field(True, description="Pull up the language versions of each query's best hit "
                                             "(dense and hybrid modes).")
    group_by: Literal[GROUPINGS] | None = Field(
        None, description="Each document once (its other passages in `more`), or each passage once "
                          "(its language versions in `translations`).")
    min_score: float = Field(0, ge=0, le=1, description="Only hits whose score (0 to 1) reaches this.")
    explain: bool = Field(False, description="Add `explain` to each hit: the stages' scores and the aligned words.")

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`xsearch.Index.search` and ``search_batch``."""
        return self.model_dump(include={"k", "filters", "mode", "rerank", "feedback", "group_by", "min_score",
                                        "explain"})

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

    query: Text = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question, in any language.")


class BatchSearchRequest(SearchOptions):
    """Several queries with the same options."""

    queries: list[Text] = Field(min_length=1, max_length=MAX_QUERIES)


class TranslationModel(BaseModel):
    """A language version of a hit's passage, as :meth:`xsearch.types.Translation.to_dict` gives it."""

    chunk_id: int
    lang: str
    path: str = Field(description="The file's absolute path; empty for a text.")
    id: str = Field(description="The document's id.")
    score: float | None = Field(description="Its own score for the query; null in lexical mode.")


class MatchedWord(BaseModel):
    """A query token aligned to the passage word it matched best."""

    query: str
    passage: str
    span: list[int] = Field(description="[start, end] of the word in the hit's text.")
    cosine: float


class ExplainModel(BaseModel):
    """Why a hit ranks where it does: the score that ordered it and each stage's score for it."""

    model_config = ConfigDict(extra="allow")

    rank_score: float = Field(description="The score the list was ordered by.")
    dense: float | None = Field(None, description="First-stage sentence-vector score.")
    lexical: float | None = Field(None, description="BM25 score.")
    rrf: float | None = Field(None, description="Reciprocal rank fusion of dense and lexical (hybrid).")
    maxsim: float | None = Field(None, description="Late-interaction MaxSim over token vectors.")
    cosine: float | None = Field(None, description="Cosine of the query and the passage.")
    translation_of_best: float | None = Field(
        None, description="The score feedback gave it as a language version of the best hit.")
    matched: list[MatchedWord] | None = Field(None, description="Query tokens aligned to passage words.")


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
    more: list[HitModel] | None = Field(None, description="With group_by document: its other passages.")
    translations: list[TranslationModel] | None = Field(
        None, description="With group_by translation: the passage's language versions, best first.")
    explain: ExplainModel | None = Field(None, description="With explain: why the hit matched.")


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

    model_config = ConfigDict(extra="forbid", strict=True)

    text: Text = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept with the text; filterable.")
    id: Text | None = Field(None, min_length=1, max_length=1024,
                           description="Your id; an existing one is replaced. Made up when missing.")

    @field_validator("metadata")
    @classmethod
    def _storable_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
            return check_metadata(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"metadata cannot be stored: {exc or 'nested too deeply'}") from None


class AddDocumentsRequest(BaseModel):
    """Texts to index."""

    model_config = ConfigDict(extra="forbid", strict=True)

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS)


class AddDocumentsResponse(BaseModel):
    """The ids of the documents, in request order."""

    ids: list[str]


class DeleteResponse(BaseModel):
    """The ids of the documents removed."""

    deleted: list[str]


class ErrorResponse(BaseModel):
    """Why a request failed, in one line."""

    detail: str


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route may give besides 422, for its OpenAPI entry."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


_ERRORS = {400: "The index cannot do what was asked.", 404: "No document has this id.",
           409: "Another process is writing to the index.", 413: "The body is over the size limit.",
           503: "The model cannot be loaded."}


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"] = "ok"
    version: str = __version__


# the app --------------------------------------------------------------------
_STATUS = ((IndexLockedError, 409), (UsageError, 400), (ModelError, 503))


def create_app(index: Index, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """A FastAPI app serving ``index`` (which stays the caller's to close)."""
    app = FastAPIOffline(title="xsearch", version=__version__, static_url=DOCS_ASSETS,
                         description="Multilingual semantic search over one xsearch index.")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(XsearchError)
    def _library_error(_request: Request, exc: XsearchError) -> JSONResponse:
        if isinstance(exc, UnknownLanguageError):  # a bad value of the body, told as validation errors are
            error = {"type": "value_error", "loc": ["body", "filters", "lang"], "msg": " ".join(str(exc).split())}
            return JSONResponse({"detail": _plain([error])}, status_code=422)
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": _unicode(" ".join(str(exc).split()))}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # where and why, without the input quoted: it may be large, or not encodable as UTF-8
        errors = [{key: error[key] for key in ("type", "loc", "msg") if key in error} for error in exc.errors()]
        return JSONResponse({"detail": _plain(jsonable_encoder(errors))}, status_code=422)

    # hits leave out what the search did not give (see Hit.to_dict), so unset fields stay out
    @app.post("/search", response_model=SearchResponse, response_model_exclude_unset=True,
              responses=_errors(400, 413, 503))
    def search(body: SearchRequest) -> dict[str, Any]:
        """The best passages for a query, in any language, from documents in every language."""
        started = time.perf_counter()
        hits = index.search(body.query, **body.search_kwargs())
        return {"hits": [_hit(hit.to_dict()) for hit in hits], "took_ms": _ms_since(started)}

    @app.post("/search/batch", response_model=BatchSearchResponse, response_model_exclude_unset=True,
              responses=_errors(400, 413, 503))
    def search_batch(body: BatchSearchRequest) -> dict[str, Any]:
        """Several queries with the same options, in one model call."""
        started = time.perf_counter()
        results = index.search_batch(body.queries, **body.search_kwargs())
        return {"results": [{"hits": [_hit(hit.to_dict()) for hit in hits]} for hits in results],
                "took_ms": _ms_since(started)}

    @app.post("/documents", response_model=AddDocumentsResponse, responses=_errors(400, 409, 413, 503))
    def add_documents(body: AddDocumentsRequest) -> dict[str, Any]:
        """Index texts with their metadata; an existing id is replaced."""
        docs = body.documents
        ids = index.add_texts([d.text for d in docs], metadata=[d.metadata for d in docs], ids=[d.id for d in docs])
        return {"ids": ids}

    @app.delete("/documents/{doc_id:path}", response_model=DeleteResponse, responses=_errors(400, 404, 409))
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

    @app.get("/roots")
    def roots() -> dict[str, Any]:
        """What the index was built from, as `xsearch ls --json` lists it: each folder with its
        counts and what is gone or changed on disk since, the files under no folder, the texts."""
        return {"roots": [row.to_dict() for row in index.roots()]}

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


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    """A hit's dict with its metadata (and that of its ``more``) made :func:`_sendable`."""
    hit["metadata"] = _sendable(hit["metadata"])
    if "more" in hit:
        hit["more"] = [_hit(other) for other in hit["more"]]
    return hit


def _sendable(metadata: dict[str, Any]) -> dict[str, Any]:
    """Stored metadata as JSON can carry it: NaN and infinities become null; metadata nested
    deeper than :data:`~xsearch.ingest.extract.MAX_JSON_DEPTH` (which an index written by an
    older version may hold) is sent empty."""
    try:
        value = json_value(json.dumps(metadata, ensure_ascii=True))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _unicode(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def _plain(value: Any) -> Any:
    """A JSON-like value with every string in valid Unicode (see :func:`_unicode`)."""
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, dict):
        return {_unicode(str(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def run(index: Index, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
        sock: socket.socket | None = None) -> None:
    """Load the model, then serve ``index`` on ``host:port`` until interrupted; then stop within
    :data:`SHUTDOWN_SECONDS`, open connections and requests in flight included.

    ``sock`` is a socket :func:`listen` bound to ``host:port`` already; without it, ``run``
    binds one first.
    """
    import uvicorn

    configure_process()
    with sock or listen(host, port) as sock:
        index.warm()
        config = uvicorn.Config(create_app(index), host=host, port=port, log_level=log_level,
                                timeout_graceful_shutdown=SHUTDOWN_SECONDS)
        logging.getLogger("uvicorn.error").addFilter(_no_shutdown_tracebacks)  # after Config set logging up
        uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` as uvicorn binds one (address reuse on), for
    :func:`run`; :class:`UsageError` when it cannot be (a port in use, a host not of this
    machine)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()} "
                         "(choose another --port or --host)") from exc
    return sock


def _no_shutdown_tracebacks(record: logging.LogRecord) -> bool:
    """Leave out the traceback of each request that shutdown cut short: uvicorn's line "Cancel N
    running task(s)" already says so."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


__all__ = ["DOCS_ASSETS", "MAX_BODY_BYTES", "MAX_DOCUMENTS", "MAX_QUERIES", "create_app", "listen", "run"]
