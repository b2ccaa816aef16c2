"""Ingest: find files, turn them into text, tell their language, and cut the text into chunks.

Every function here is a pure function of its inputs (batches in, lists out)
and imports no ML library, so the stages can run anywhere, Spark tasks included.
"""

from __future__ import annotations

from xsearch.ingest.chunk import CountTokens, chunk_documents, chunk_text, split_sentences
from xsearch.ingest.discover import discover
from xsearch.ingest.extract import SUPPORTED_SUFFIXES, decode_text, extract, extract_batch
from xsearch.ingest.lang import detect_document_languages, detect_language, detect_languages

__all__ = [
    "SUPPORTED_SUFFIXES",
    "CountTokens",
    "chunk_documents",
    "chunk_text",
    "decode_text",
    "detect_document_languages",
    "detect_language",
    "detect_languages",
    "discover",
    "extract",
    "extract_batch",
    "split_sentences",
]
