"""Hostile HTTP requests: each gets a 4xx with a reason, never a 500; and a schemathesis run over
the app's OpenAPI schema (no 5xx, every response as the schema says)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from xsearch import Index
from xsearch.errors import UsageError
from xsearch.ingest.extract import MAX_JSON_DEPTH
from xsearch.search.filters import MAX_FILTER_FIELDS, MAX_FILTER_VALUES
from xsearch.server import create_app

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Iterator[Index]:
    """Texts, a JSON Lines record with NaN, and two documents whose stored metadata an older
    version could write: NaN (not JSON) and nesting far deeper than the limit."""
    root = tmp_path_factory.mktemp("http")
    (root / "docs").mkdir()
    (root / "docs" / "r.jsonl").write_text('{"text": "Der Hund läuft im Park.", "v": NaN}\n'
                                           '{"text": "Cats sleep all day.", "v": 2}\n', encoding="utf-8")
    path = root / "index"
    with Index.create(path, encoder=encoder) as built:
        built.add_paths([root / "docs"])
        built.add_texts(["The cat sleeps on the sofa.", "Dogs bark at the postman.", "Birds sing at dawn."],
                        metadata=[{"v": 1}, {"v": 3}, {"v": 4}], ids=["cat", "old-nan", "old-deep"])
    db = sqlite3.connect(path / "xsearch.db")
    with db:
        db.execute("UPDATE documents SET metadata = ? WHERE path = 'text:old-nan'", ['{"v": NaN}'])
        db.execute("UPDATE documents SET metadata = ? WHERE path = 'text:old-deep'",
                   ['{"d": ' + "[" * 900 + "]" * 900 + "}"])
    db.close()
    with Index.open(path, encoder=encoder) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(index: Index) -> Iterator[TestClient]:
    with TestClient(create_app(index), raise_server_exceptions=False) as test_client:
        yield test_client


def _post(client: TestClient, path: str, raw: bytes):
    return client.post(path, content=raw, headers=JSON)


@pytest.mark.parametrize("raw,words", [
    (b'{"query": "Hund \\ud800"}', "valid string"),
    (b'{"query": "x", "mode": "\\udfff"}', "valid string"),
    (b'{"queries": ["ok", "\\udc80"]}', "lone surrogate"),
    (b'{"query": "x", "filters": {"topic": "\\ud800"}}', "lone surrogate"),
    (b'{"query": "x", "filters": {"\\ud800": 1}}', "filter names"),
    (b'{"query": "x", "filters": {"lang": ["de", "\\ud800"]}}', "list of strings"),
    (b'{"query": "x", "filters": {"n": 100000000000000000000000000}}', "out of range"),
    (b'{"query": "x", "filters": {"bad\\u0000name": 1}}', "bad metadata field name"),
])
def test_text_that_is_not_unicode_gets_422(client: TestClient, raw: bytes, words: str) -> None:
    path = "/search/batch" if b"queries" in raw else "/search"
    answer = _post(client, path, raw)
    assert answer.status_code == 422, answer.text
    assert words in answer.text


@pytest.mark.parametrize("filters,words", [
    ({"path": [f"notes/{i}/*.md" for i in range(40_000)]}, "40000 values"),
    ({f"field{i}": i for i in range(2_000)}, f"more than {MAX_FILTER_FIELDS} metadata fields"),
    ({"v": {"in": list(range(MAX_FILTER_VALUES + 1))}}, f"at most {MAX_FILTER_VALUES}"),
])
def test_filters_over_the_limits_get_422(client: TestClient, filters: dict, words: str) -> None:
    answer = client.post("/search", json={"query": "cat", "filters": filters})
    assert answer.status_code == 422 and words in answer.text, answer.text
    assert len(answer.content) < 2000  # the reason, not the request quoted back


def test_filters_at_the_limits_run(client: TestClient, index: Index) -> None:
    half = MAX_FILTER_VALUES // 2
    at_limit = [
        {"path": [f"notes/{i}/*.md" for i in range(half - 1)] + ["*r.jsonl"]},
        {"lang": ["en", "de"], **{f"field{i}": i for i in range(MAX_FILTER_FIELDS - 1)}, "v": {"in": [2, 3]}},
        {"v": {"in": [*range(10, 10 + MAX_FILTER_VALUES - 1), 2]}},
    ]
    for filters in at_limit:
        answer = client.post("/search", json={"query": "cat", "filters": filters})
        assert answer.status_code == 200, answer.text
    with pytest.raises(UsageError, match="metadata fields"):
        index.search("cat", filters={f"field{i}": i for i in range(MAX_FILTER_FIELDS + 1)})
    with pytest.raises(UsageError, match="values"):
        index.search("cat", filters={"path": [f"{i}/*" for i in range(MAX_FILTER_VALUES + 1)]})


def test_metadata_the_api_refuses_gets_422(client: TestClient, index: Index) -> None:
    before = index.info().generation
    for metadata in ({"deep": json.loads("[" * 900 + "]" * 900)},
                     {"deep": json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)},
                     {"big": "x" * 100_000}):
        answer = client.post("/documents", json={"documents": [{"text": "a text", "metadata": metadata}]})
        assert answer.status_code == 422 and "metadata cannot be stored" in answer.text, answer.text
    for raw in (b'{"documents": [{"text": "x", "metadata": {"v": NaN}}]}',
                b'{"documents": [{"text": "x", "metadata": {"k": "\\ud800"}}]}'):
        assert _post(client, "/documents", raw).status_code == 422
    assert index.info().generation == before


def test_hits_with_metadata_json_cannot_carry_are_sent(client: TestClient) -> None:
    for query in ("Dogs bark at the postman.", "Birds sing at dawn."):
        answer = client.post("/search", json={"query": query, "k": 10})
        assert answer.status_code == 200, answer.text
        hits = {hit["id"]: hit["metadata"] for hit in answer.json()["hits"]}
        assert hits["old-nan"] == {"v": None} and hits["old-deep"] == {}
    grouped = client.post("/search", json={"query": "animals", "k": 10, "group_by": "document"})
    assert grouped.status_code == 200, grouped.text


def test_metadata_filter_over_nan_metadata(client: TestClient, index: Index) -> None:
    for filters in ({"v": 2}, {"v": {"in": [1, 2, 3]}}):
        answer = client.post("/search", json={"query": "cat", "k": 10, "filters": filters})
        assert answer.status_code == 200, answer.text
        assert {hit["text"] for hit in answer.json()["hits"]} <= {"Cats sleep all day.", "The cat sleeps on the sofa."}
    assert [hit.text for hit in index.search("cat", k=10, filters={"v": 2})] == ["Cats sleep all day."]


def test_delete_removes_only_the_exact_id(tmp_path: Path, encoder) -> None:
    with Index.create(tmp_path / "index", encoder=encoder) as index:
        index.add_texts(["The cat sleeps."], ids=["cat"])
        with TestClient(create_app(index), raise_server_exceptions=False) as client:
            assert client.delete("/documents/text:cat").status_code == 404
            assert client.delete("/documents/cat").json() == {"deleted": ["cat"]}


# schemathesis over the OpenAPI schema ---------------------------------------------
@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, encoder):
    """The app over an index of its own (the generated requests add and delete documents)."""
    index = Index.create(tmp_path_factory.mktemp("schema") / "index", encoder=encoder)
    index.add_texts(["Der Mond umkreist die Erde.", "Volcanoes erupt lava."], metadata=[{"topic": "moon"}, {}],
                    ids=["moon", "lava"])
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(index))
    index.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_openapi_schema_holds(case) -> None:
    # filters and metadata are checked beyond what the schema can say, so a body the schema
    # allows may still get 422: only "schema-valid data is accepted" is left out
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
