"""Every interface offers the modes, scorings, poolings and ``k`` limit of :mod:`xsearch.config`."""

from __future__ import annotations

import typing

import click
import pytest
from pydantic import ValidationError

from conftest import run_cli
from xsearch.cli import main
from xsearch.cli_models import embed_cmd
from xsearch.config import GROUPINGS, MAX_K, MODES, POOLINGS, SCORINGS
from xsearch.server import BatchSearchRequest, SearchRequest
from xsearch.tui.options import MODE_ORDER, SearchOptions


def _option(command: click.Command, name: str) -> click.Parameter:
    return next(param for param in command.params if param.name == name)


def test_every_edge_offers_the_modes_of_config() -> None:
    search = main.commands["search"]
    assert list(_option(search, "mode").type.choices) == list(MODES)
    assert list(_option(search, "scoring").type.choices) == list(SCORINGS)
    assert list(_option(search, "group_by").type.choices) == list(GROUPINGS)
    assert list(_option(main.commands["index"], "pooling").type.choices) == list(POOLINGS)
    assert list(_option(embed_cmd, "pooling").type.choices) == list(POOLINGS)
    for model in (SearchRequest, BatchSearchRequest):
        assert model.model_json_schema()["properties"]["mode"]["enum"] == list(MODES)
    assert sorted(MODE_ORDER) == sorted(MODES)
    options = SearchOptions(mode=MODE_ORDER[0])
    seen = []
    for _ in MODES:
        seen.append(options.mode)
        options = SearchOptions(mode=options.next_mode())
    assert seen == list(MODE_ORDER) and options.mode == MODE_ORDER[0]


def test_langchain_retriever_offers_the_modes_of_config() -> None:
    pytest.importorskip("langchain_core")
    from xsearch.integrations.langchain import XsearchRetriever

    assert typing.get_args(XsearchRetriever.model_fields["mode"].annotation) == MODES


def test_k_over_the_limit_is_refused_everywhere() -> None:
    result = run_cli("search", "x", "-k", str(MAX_K + 1))
    assert result.returncode == 2 and str(MAX_K) in result.stderr
    for model in (SearchRequest, BatchSearchRequest):
        assert model.model_json_schema()["properties"]["k"]["maximum"] == MAX_K
    SearchRequest(query="x", k=MAX_K)
    with pytest.raises(ValidationError):
        SearchRequest(query="x", k=MAX_K + 1)
    with pytest.raises(ValidationError):
        BatchSearchRequest(queries=["x"], k=MAX_K + 1)


def test_langchain_retriever_refuses_k_over_the_limit() -> None:
    pytest.importorskip("langchain_core")
    from xsearch.integrations.langchain import XsearchRetriever

    def refused(k: int) -> list[tuple[str, ...]]:
        with pytest.raises(ValidationError) as caught:  # object() is no Index: always refused
            XsearchRetriever.model_validate({"index": object(), "k": k})
        return [error["loc"] for error in caught.value.errors()]

    assert ("k",) not in refused(MAX_K)
    assert ("k",) in refused(MAX_K + 1)
