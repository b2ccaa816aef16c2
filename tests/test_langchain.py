"""The LangChain retriever against the real langchain-core, and the RAG example end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api_corpus import add_corpus, meta
from conftest import ROOT
from xsearch import Index

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from xsearch.integrations.langchain import XsearchRetriever  # noqa: E402


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("langchain") / "index", encoder=encoder)
    add_corpus(index)
    yield index
    index.close()


def test_retriever_returns_documents_from_other_languages(index: Index) -> None:
    retriever = XsearchRetriever(index=index, k=3, filters={"topic": "moon"})
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("Who first walked on the Moon?")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert {d.metadata["lang"] for d in docs} == {"en", "de", "ar"}
    for doc in docs:
        assert "1969" in doc.page_content
        assert doc.metadata["topic"] == "moon" and doc.metadata["year"] == meta(doc.metadata["id"])["year"]
        assert doc.metadata["path"] == "" and isinstance(doc.metadata["score"], float)
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_retriever_options_and_batch(index: Index) -> None:
    retriever = XsearchRetriever(index=index, k=1, filters={"lang": ["ja"]}, rerank=False)
    first, second = retriever.batch(["volcanic eruption", "photosynthesis"])
    assert [d.metadata["id"] for d in first] == ["volcano-ja"]
    assert [d.metadata["id"] for d in second] == ["photo-ja"]


def test_retriever_feedback_grouping_and_min_score(index: Index) -> None:
    question = "How does a volcano erupt?"
    grouped = XsearchRetriever(index=index, k=2, group_by="translation").invoke(question)
    first = grouped[0].metadata
    assert first["id"].startswith("volcano-") and all(isinstance(d.metadata["translations"], list) for d in grouped)
    versions = first["translations"]
    assert {first["lang"], *(v["lang"] for v in versions)} == {"en", "fr", "ru", "ja"} and len(versions) == 3
    assert all(set(v) == {"chunk_id", "lang", "path", "id", "score"} for v in versions)

    lifted = XsearchRetriever(index=index, k=3).invoke(question)
    apart = XsearchRetriever(index=index, k=3, feedback=False).invoke(question)
    assert "translations" not in lifted[0].metadata and all(0 <= d.metadata["score"] <= 1 for d in lifted)
    assert sum(d.metadata["score"] for d in lifted) > sum(d.metadata["score"] for d in apart)

    floor = lifted[1].metadata["score"] - 0.001
    strict = XsearchRetriever(index=index, k=3, min_score=floor).invoke(question)
    assert [d.metadata["id"] for d in strict] == [d.metadata["id"] for d in lifted[:2]]
    with pytest.raises(ValidationError):
        XsearchRetriever(index=index, min_score=2)
    with pytest.raises(ValidationError):
        XsearchRetriever(index=index, group_by="sentence")


def test_rag_example_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "rag.py")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prompt = done.stdout
    assert "Question: How do plants turn sunlight into food?" in prompt
    sources = [line for line in prompt.splitlines() if line.startswith("[")]
    assert len(sources) == 3 and all("(en," not in line for line in sources)
    assert {line.split(", ")[1].split("/")[0] for line in sources} == {"de", "ja", "es"}
