"""The model layer: registry, resolution, pooling, token vectors, fill-mask, ``xsearch embed``.

XLM-R code paths run on a tiny random XLM-RoBERTa built at test time with the real
250k-piece tokenizer; the default model is used for real where its behaviour matters.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from xsearch import Index
from xsearch.embed.encoder import Encoder
from xsearch.embed.registry import CARDS, list_models, resolve_model
from xsearch.errors import IndexMismatchError, ModelError

TEXTS = {
    "de": "Die Photosynthese wandelt Lichtenergie in chemische Energie um.",
    "ja": "光合成は光エネルギーを化学エネルギーに変換する。植物は酸素を出す。",
    "ar": "التمثيل الضوئي يحول الطاقة الضوئية إلى طاقة كيميائية.",
    "zh": "光合作用把光能转化为化学能。",
    "en": "  Leading spaces,  double  spaces and a URL: https://example.org/x?y=1 ",
}


@pytest.fixture(scope="module")
def tiny_encoders(tiny_xlmr: Path) -> dict[tuple[str, int | None], Encoder]:
    """fp32 torch encoders: pooling is checked to float precision here; the int8 backend's
    agreement with them is checked in test_backends."""
    return {(mode, layer): Encoder.load(str(tiny_xlmr), pooling=mode, layer=layer, backend="torch")
            for mode in ("mean", "cls", "max", "mean_sqrt_len") for layer in (None, 1)}


def _hand_pool(vectors: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        pooled = vectors[0]
    elif mode == "max":
        pooled = vectors.max(axis=0)
    elif mode == "mean":
        pooled = vectors.sum(axis=0) / len(vectors)
    else:
        pooled = vectors.sum(axis=0) / np.sqrt(len(vectors))
    return pooled / np.linalg.norm(pooled)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len"])
@pytest.mark.parametrize("layer", [None, 1])
def test_pooling_matches_hand_computation(tiny_encoders, mode: str, layer: int | None) -> None:
    encoder = tiny_encoders[(mode, layer)]
    texts = list(TEXTS.values())
    sentence = encoder.encode(texts)  # batched and padded together
    for text, vec in zip(texts, sentence):
        tokens = encoder.token_embeddings([text])[0]
        assert len(tokens.vectors) == len(tokens.tokens)
        np.testing.assert_allclose(vec, _hand_pool(tokens.vectors, mode), atol=2e-5)


def test_layers_differ_and_modes_differ(tiny_encoders) -> None:
    text = [TEXTS["de"]]
    vectors = {key: enc.encode(text)[0] for key, enc in tiny_encoders.items()}
    assert not np.allclose(vectors[("mean", None)], vectors[("mean", 1)])
    assert not np.allclose(vectors[("mean", None)], vectors[("cls", None)])
    assert not np.allclose(vectors[("max", None)], vectors[("mean", None)])


def _check_offsets(result) -> None:
    text = result.text
    previous_end = 0
    covered = set()
    for token, (start, end), special in zip(result.tokens, result.offsets, result.special):
        if special:
            assert start == end == 0
            continue
        assert previous_end <= start <= end <= len(text)
        piece = token.lstrip("\u2581")
        if end > start:
            assert text[start:end] == piece or unicodedata.normalize("NFKC", text[start:end]) == piece
            assert not text[start].isspace()
        else:
            assert piece == ""
        covered.update(range(start, end))
        previous_end = end
    assert {i for i, ch in enumerate(text) if not ch.isspace()} <= covered


@pytest.mark.parametrize("lang", list(TEXTS))
def test_token_offsets_slice_the_input(tiny_encoders, lang: str) -> None:
    result = tiny_encoders[("mean", None)].token_embeddings([TEXTS[lang]])[0]
    assert result.special[0] and result.special[-1] and result.tokens[0] == "<s>"
    _check_offsets(result)


def test_token_embeddings_with_prefix_keep_offsets_in_the_text(encoder) -> None:
    plain, with_prefix = encoder.token_embeddings([TEXTS["ja"]] * 2, kind=None), encoder.token_embeddings([TEXTS["ja"]], kind="query")
    assert with_prefix[0].tokens == plain[0].tokens
    _check_offsets(with_prefix[0])
    assert not np.allclose(with_prefix[0].vectors, plain[0].vectors)


def test_long_text_is_truncated_and_flagged(tiny_encoders) -> None:
    result = tiny_encoders[("mean", None)].token_embeddings(["word " * 400])[0]
    assert result.truncated and len(result.tokens) == 128


def test_registry_lists_the_seed_models_and_the_default() -> None:
    names = [m.card.name for m in list_models()]
    assert names[:5] == ["multilingual-e5-small", "sent_xlm_roberta_base", "xlm_roberta_xtreme_base",
                         "twitter_xlm_roberta_base", "xlm-roberta-large"]
    assert CARDS["xlm-roberta-large"].dim == 1024 and CARDS["xlm-roberta-large"].layers == 24
    assert CARDS["xlm_roberta_xtreme_base"].max_length == 128 and CARDS["xlm_roberta_xtreme_base"].kind == "token"
    assert all(card.case_sensitive for card in CARDS.values())
    where = {m.card.name: m.location for m in list_models()}
    assert where["multilingual-e5-small"].startswith("bundled")
    assert where["xlm-roberta-large"] == "missing"  # nothing is downloaded behind the user's back


def test_missing_models_say_how_to_get_them() -> None:
    with pytest.raises(ModelError, match="xsearch models pull xlm-roberta-large"):
        resolve_model("xlm-roberta-large")
    with pytest.raises(ModelError, match="models import"):
        resolve_model("xlm_roberta_xtreme_base")
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("no-such-model")


def test_finding_a_model_builds_and_imports_nothing(tiny_xlmr: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    from xsearch.embed.registry import find_model, hf_cache_dir

    assert hf_cache_dir() == Path(huggingface_hub.constants.HF_HUB_CACHE)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hf_cache_dir() == tmp_path / "hub"
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    assert find_model("multilingual-e5-small") is None and not (tmp_path / "cache").exists()  # not built there
    assert find_model("xlm-roberta-large") is None and find_model("no-such-model") is None
    found = find_model(str(tiny_xlmr))
    assert found is not None and found == resolve_model(str(tiny_xlmr))


def test_models_cli_import_list_info_pull(tiny_xlmr: Path, tmp_path: Path) -> None:
    env = {"XSEARCH_CACHE_DIR": str(tmp_path / "cache")}  # imports are recorded in the cache dir
    result = run_cli("models", "import", str(tiny_xlmr), "--name", "xlm_roberta_xtreme_base", env=env)
    assert result.returncode == 0, result.stderr
    models = json.loads(run_cli("models", "list", "--json", env=env).stdout)
    by_name = {m["name"]: m for m in models}
    assert by_name["xlm_roberta_xtreme_base"]["location"] == "local path"
    assert by_name["xlm_roberta_xtreme_base"]["path"] == str(tiny_xlmr.resolve())
    assert by_name["multilingual-e5-small"]["dim"] == 384
    assert by_name["multilingual-e5-small"]["location"] == "bundled (built on first use)"
    info = json.loads(run_cli("models", "info", "twitter_xlm_roberta_base", "--json").stdout)
    assert info["hub_ids"] == ["cardiffnlp/twitter-xlm-roberta-base"] and info["location"] == "missing"
    result = run_cli("models", "pull", "xlm-roberta-large")  # HF_HUB_OFFLINE=1: refused, one line
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: cannot download FacebookAI/xlm-roberta-large")
    result = run_cli("embed", "Hallo Welt", "--model", "xlm_roberta_xtreme_base", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["vector"]) == 32


def test_fill_mask_on_a_tiny_masked_lm(tiny_xlmr: Path) -> None:
    result = run_cli("models", "fill-mask", "Hello I'm a <mask> model.", "--model", str(tiny_xlmr), "--json")
    assert result.returncode == 0, result.stderr
    candidates = json.loads(result.stdout)
    assert len(candidates) == 5
    scores = [c["score"] for c in candidates]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0
    for c in candidates:
        assert isinstance(c["token"], str) and c["token_id"] >= 0
        assert "<mask>" not in c["sequence"] and c["sequence"].startswith("Hello I'm a ")


def test_fill_mask_refuses_a_model_without_mlm_head() -> None:
    result = run_cli("models", "fill-mask", "Hello <mask>.", "--model", "multilingual-e5-small")
    assert result.returncode == 3 and "no masked-LM head" in result.stderr and "Traceback" not in result.stderr


def test_embed_tokens_cli_offsets(tmp_path: Path) -> None:
    texts = [TEXTS["de"], TEXTS["ja"], TEXTS["ar"]]
    result = run_cli("embed", "--tokens", "--json", *texts)
    assert result.returncode == 0, result.stderr
    for text, entry in zip(texts, json.loads(result.stdout)):
        content = [t for t in entry["tokens"] if not t["special"] and t["end"] > t["start"]]
        assert "".join(text[t["start"]:t["end"]] for t in content) == "".join(text.split())
        assert all(len(t["vector"]) == 384 for t in entry["tokens"])
    result = run_cli("embed", "--json", "--as", "query", "hello")
    vec = np.array(json.loads(result.stdout)[0]["vector"])
    assert vec.shape == (384,) and abs(np.linalg.norm(vec) - 1) < 1e-4


def test_index_with_cls_pooling_and_layer(tiny_xlmr: Path, sample_copy: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    result = run_cli("index", str(sample_copy / "volcanoes"), "--index", str(index_dir), "--model", str(tiny_xlmr),
                     "--pooling", "cls", "--layer", "1", "--max-tokens", "120", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(run_cli("info", "--index", str(index_dir), "--json").stdout)
    assert (info["pooling"], info["layer"], info["dim"]) == ("cls", 1, 32)
    assert info["model"] == str(tiny_xlmr.resolve())
    result = run_cli("info", "--index", str(index_dir))
    assert "cls (layer 1)" in result.stdout

    with Index.open(index_dir) as index:
        assert index.encoder.info.pooling == "cls" and index.encoder.info.layer == 1
        hits = index.search("volcano", k=3)
        assert len(hits) == 3
    with pytest.raises(IndexMismatchError):
        Index.open(index_dir, pooling="mean")
    with pytest.raises(IndexMismatchError):
        Index.open(index_dir, encoder=Encoder.load(str(tiny_xlmr), pooling="mean"))
    result = run_cli("index", str(sample_copy / "volcanoes"), "--index", str(index_dir), "--pooling", "mean")
    assert result.returncode == 6 and "Traceback" not in result.stderr
    result = run_cli("index", str(sample_copy / "volcanoes"), "--index", str(index_dir), "--layer", "2")
    assert result.returncode == 6


def test_models_info_of_an_unknown_name_is_an_error_with_close_names() -> None:
    result = run_cli("models", "info", "nope", "--json")
    assert result.returncode == 3 and result.stdout == ""
    assert result.stderr.startswith("error: unknown model 'nope'") and len(result.stderr.splitlines()) == 1
    result = run_cli("models", "info", "multilingual-e5-smal")
    assert result.returncode == 3 and "did you mean 'multilingual-e5-small'?" in result.stderr


def test_models_list_never_cuts_a_name_at_80_columns() -> None:
    result = run_cli("models", "list", env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and all(len(line) <= 80 for line in lines)
    names = {line.split()[0] for line in lines[1:] if line[:2].strip()}
    assert set(CARDS) <= names, lines
