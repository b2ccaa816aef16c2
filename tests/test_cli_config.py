"""The config file of the ``xsearch`` command and its precedence: flags, then ``$XSEARCH_*``, then the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from xsearch.cli_config import CliConfig, config_path, load_config


def _hits(*args: str, env: dict[str, str]) -> list[dict]:
    result = run_cli("search", "the", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_config_file_then_environment_then_flags(sample_index, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'index = "{sample_index.path}"\nk = 2\nmode = "lexical"\n', encoding="utf-8")
    env = {"XSEARCH_CONFIG": str(config)}
    hits = _hits(env=env)  # no --index: the file's index, k and mode
    assert len(hits) == 2 and all("explain" not in hit for hit in hits)
    assert set(_hits("--explain", env=env)[0]["explain"]) == {"rank_score", "lexical"}
    assert len(_hits(env={**env, "XSEARCH_K": "3"})) == 3
    assert len(_hits("-k", "4", env={**env, "XSEARCH_K": "3"})) == 4
    dense = _hits("--explain", env={**env, "XSEARCH_MODE": "dense", "XSEARCH_K": "1"})
    assert len(dense) == 1 and "cosine" in dense[0]["explain"] and "lexical" not in dense[0]["explain"]
    other = tmp_path / "elsewhere"
    result = run_cli("info", "--json", env={**env, "XSEARCH_INDEX": str(other)})
    assert result.returncode == 4 and str(other) in result.stderr  # the environment beats the file


@pytest.mark.parametrize("content,named", [
    ("k = 0\n", "k = 0"),
    ("mode = \"fast\"\n", "mode = 'fast'"),
    ("backend = 3\n", "backend = 3"),
    ("colour = \"red\"\n", "unknown key 'colour'"),
    ("k = \n", "not valid TOML"),
])
def test_a_bad_config_is_refused_naming_file_and_key(tmp_path: Path, content: str, named: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content, encoding="utf-8")
    result = run_cli("info", env={"XSEARCH_CONFIG": str(config)})
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: config file")
    assert str(config) in lines[0] and named in lines[0]


def test_config_lives_in_the_user_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XSEARCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "xsearch" / "config.toml"
    assert load_config() == CliConfig()  # no file: nothing set
    (tmp_path / "xsearch").mkdir()
    config_path().write_text('backend = "onnx"\nindex = "~/notes"\n', encoding="utf-8")
    assert load_config() == CliConfig(backend="onnx", index=str(Path.home() / "notes"))
    monkeypatch.setenv("XSEARCH_CONFIG", str(tmp_path / "missing.toml"))
    result = run_cli("info")
    assert result.returncode == 2 and "missing.toml" in result.stderr
