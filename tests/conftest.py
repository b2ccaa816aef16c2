"""Shared fixtures. Tests never touch the network and never write outside tmp folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("XSEARCH_INDEX", None)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the whole run: the bundled model is built into it once.

    ``XSEARCH_TEST_CACHE`` may name a persistent folder to reuse between runs.
    """
    cache = Path(os.environ.get("XSEARCH_TEST_CACHE") or tmp_path_factory.mktemp("xsearch-cache"))
    os.environ["XSEARCH_CACHE_DIR"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def encoder(model_cache: Path):
    """The real default model (multilingual-e5-small from the bundled 4-bit weights), on the
    default backend (int8 OpenVINO)."""
    from xsearch.embed.encoder import Encoder

    return Encoder.load("multilingual-e5-small")


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, encoder):
    """An index of the sample corpus, built once and shared read-only."""
    from xsearch import Index

    path = tmp_path_factory.mktemp("sample") / "index"
    index = Index.create(path, encoder=encoder)
    index.add_paths([SAMPLE])
    yield index
    index.close()


def build_tiny_xlmr(path: Path, *, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny XLM-RoBERTa masked LM with random weights and the real 250k-piece tokenizer."""
    import torch
    from semantra_multilingual import get_asset_dir
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizerFast

    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=250002, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=130,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2)
    XLMRobertaForMaskedLM(config).save_pretrained(path)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(Path(get_asset_dir()) / "tokenizer.json"),
                                        model_max_length=128)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random XLM-R (2 layers, 32-d) with the real tokenizer, built once."""
    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the sample corpus."""
    dest = tmp_path / "docs"
    shutil.copytree(SAMPLE, dest)
    return dest


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed ``xsearch`` entry point for real."""
    exe = Path(sys.executable).with_name("xsearch")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "xsearch.cli"]
    return subprocess.run([*command, *args], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
