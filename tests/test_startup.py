"""A fresh process that queries a built model loads no torch, transformers or sentence-transformers.

Each check runs in a new Python process (so nothing this test session imported counts) and
reports the modules the process ended with. The default model is built into the test cache
by the session's ``encoder`` fixture first; the time it all takes is measured in
``benchmarks/bench_startup.py``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE
from xsearch import Index

HEAVY = {"torch", "transformers", "sentence_transformers"}
QUERY = "wie wandeln Pflanzen Licht in Energie um?"

CLI = """
import json, sys
from xsearch.cli import main
try:
    main.main(args=sys.argv[2:], prog_name="xsearch")
    code = 0
except SystemExit as exit:
    code = exit.code or 0
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""

API = """
import json, sys
from xsearch import Index
with Index.open(sys.argv[2]) as index:
    index.warm()
    hits = index.search(sys.argv[3], k=3)
    hybrid = index.search_batch([sys.argv[3]], k=3, mode="hybrid")[0]
with open(sys.argv[1], "w") as out:
    json.dump({"code": 0 if hits and hybrid else 1, "modules": sorted(sys.modules)}, out)
"""


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    """An index of two topics of the sample corpus, made with the (built) default model."""
    path = tmp_path_factory.mktemp("startup") / "index"
    with Index.create(path, encoder=encoder) as index:
        index.add_paths([SAMPLE / "photosynthesis", SAMPLE / "volcanoes"])
    return path


def modules_after(script: str, tmp_path: Path, *args: str) -> set[str]:
    """The modules a new process running ``script`` with ``args`` has imported when it ends."""
    report = tmp_path / "modules.json"
    env = {key: value for key, value in os.environ.items() if key != "XSEARCH_BACKEND"}
    result = subprocess.run([sys.executable, "-c", script, str(report), *args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["code"] == 0, result.stderr
    return set(data["modules"])


@pytest.mark.parametrize("options", [(), ("--json", "--no-rerank"), ("--mode", "hybrid")])
def test_a_cold_search_imports_no_torch(small_index: Path, tmp_path: Path, options: tuple[str, ...]) -> None:
    modules = modules_after(CLI, tmp_path, "search", QUERY, "--index", str(small_index), *options)
    assert not modules & HEAVY
    assert {"openvino", "tokenizers"} <= modules  # the query was embedded


def test_embed_imports_no_torch(encoder, tmp_path: Path) -> None:
    modules = modules_after(CLI, tmp_path, "embed", "hallo", "--tokens", "--json")
    assert not modules & HEAVY and "openvino" in modules


def test_the_python_api_opens_warms_and_searches_without_torch(small_index: Path, tmp_path: Path) -> None:
    modules = modules_after(API, tmp_path, str(small_index), QUERY)
    assert not modules & HEAVY and "openvino" in modules
