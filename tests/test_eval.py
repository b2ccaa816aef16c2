"""``xsearch eval``: BEIR and Tatoeba evaluation, the metrics it reports, and its errors."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, run_cli
from xsearch.errors import UsageError
from xsearch.evaluate import (
    CONFIGS,
    MEASURES,
    bitext_accuracy,
    check_configs,
    compute_metrics,
    evaluate_tatoeba,
    load_beir,
    load_tatoeba,
    rank_documents,
)
from xsearch.types import Hit

EVAL_SET = ROOT / "data" / "eval"
TATOEBA = SHARED_DATA / "tatoeba"
ROW_KEYS = {"config", "model", "queries", *MEASURES, "p50_ms"}

GERMAN = [
    "Der Hund schläft im Garten unter dem Apfelbaum.",
    "Morgen fahre ich mit dem Zug nach Berlin.",
    "Meine Großmutter backt jeden Sonntag einen Kuchen.",
    "Das Konzert wurde wegen des Gewitters abgesagt.",
    "Wie viel kostet dieses rote Fahrrad?",
]
FRENCH = [
    "Le chien dort dans le jardin sous le pommier.",
    "Demain, je prends le train pour Berlin.",
    "Ma grand-mère fait un gâteau tous les dimanches.",
    "Le concert a été annulé à cause de l'orage.",
    "Combien coûte ce vélo rouge ?",
]
ENGLISH = [
    "The dog is sleeping in the garden under the apple tree.",
    "Tomorrow I am taking the train to Berlin.",
    "My grandmother bakes a cake every Sunday.",
    "The concert was cancelled because of the thunderstorm.",
    "How much does this red bicycle cost?",
]


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def tiny_tatoeba(tmp_path: Path) -> Path:
    """German aligned with its English (all found); French with the English rotated by one
    line (each true translation sits on another line, so none is found)."""
    folder = tmp_path / "tatoeba"
    folder.mkdir()
    _write_lines(folder / "tatoeba.deu-eng.deu", GERMAN)
    _write_lines(folder / "tatoeba.deu-eng.eng", ENGLISH)
    _write_lines(folder / "tatoeba.fra-eng.fra", FRENCH)
    _write_lines(folder / "tatoeba.fra-eng.eng", ENGLISH[1:] + ENGLISH[:1])
    return folder


def _beir(folder: Path, corpus: str, queries: str, qrels: str) -> Path:
    folder.mkdir()
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (folder / "queries.jsonl").write_text(queries, encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


# the metrics -----------------------------------------------------------------
def test_perfect_ranking_scores_one() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 1}}
    scores = compute_metrics(qrels, {"q1": ["a", "b", "x"], "q2": ["c", "y"]})
    assert set(scores) == set(MEASURES)
    assert all(value == pytest.approx(1.0) for value in scores.values())


def test_metrics_of_a_known_ranking() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": ["x", "a"], "q2": [f"n{i}" for i in range(7)] + ["b"]}  # a at rank 2, b at rank 8
    scores = compute_metrics(qrels, run)
    assert scores["MRR@10"] == pytest.approx((1 / 2 + 1 / 8) / 2)
    assert scores["nDCG@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(9)) / 2)
    assert scores["R@7"] == pytest.approx(0.5) and scores["R@10"] == pytest.approx(1.0)
    assert scores["MAP@20"] == pytest.approx(scores["MRR@10"])  # one relevant document each


def test_metrics_follow_the_given_order_and_count_missing_queries_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    # were the scores tied, trec_eval would rank "z" (the larger id) first; q2 has no run: 0
    scores = compute_metrics(qrels, {"q1": ["a", "z"]})
    assert scores["MRR@10"] == pytest.approx(0.5) and scores["R@100"] == pytest.approx(0.5)


def test_rank_documents_keeps_each_documents_best_chunk() -> None:
    def hit(chunk_id: int, doc_id: str) -> Hit:
        return Hit(chunk_id=chunk_id, score=1.0 / chunk_id, text="", path="c.jsonl", lang="en", start=0, end=0,
                   metadata={"doc_id": doc_id})

    assert rank_documents([hit(1, "d2"), hit(2, "d1"), hit(3, "d2"), hit(4, "d3")]) == ["d2", "d1", "d3"]


def test_bitext_accuracy() -> None:
    vectors = np.eye(4, dtype=np.float32) + 0.1
    assert bitext_accuracy(vectors, vectors * 3) == 100.0
    assert bitext_accuracy(vectors, vectors[[1, 0, 2, 3]]) == 50.0


def test_configs() -> None:
    assert "dense" in CONFIGS and check_configs(["dense", "dense"]) == ["dense"]
    with pytest.raises(UsageError, match="known: dense"):
        check_configs(["dense", "bm25"])


# reading BEIR folders ----------------------------------------------------------
def test_load_beir_reads_the_eval_set() -> None:
    data = load_beir(EVAL_SET)
    assert len(data.corpus) == 82 and len(data.queries) == 40 and len(data.judged_queries) == 40
    assert sum(len(docs) for docs in data.qrels.values()) == 92
    assert data.corpus["p-water-en"].title == "The Water Cycle" and data.corpus["p-water-en"].lang == "en"


@pytest.mark.parametrize(("corpus", "queries", "qrels", "message"), [
    ('{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": \n', '{"_id": "q1", "text": "y"}\n',
     "query-id\tcorpus-id\tscore\nq1\td1\t1\n", r"corpus\.jsonl:2: malformed JSON"),
    ('{"_id": "d1", "body": "x"}\n', '{"_id": "q1", "text": "y"}\n', "q1\td1\t1\n", 'no string "text" field'),
    ('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "z"}\n', '{"_id": "q1", "text": "y"}\n', "q1\td1\t1\n",
     "duplicate _id 'd1'"),
    ('{"_id": "d1", "text": "x"}\n', '{"_id": "q1", "text": "y"}\n', "q1\td1\n", "expected 3 tab-separated"),
    ('{"_id": "d1", "text": "x"}\n', '{"_id": "q1", "text": "y"}\n', "q1\td1\thigh\n", "not an integer"),
    ('{"_id": "d1", "text": "x"}\n', '{"_id": "q1", "text": "y"}\n', "q2\td1\t1\n", "not in .*queries.jsonl"),
    ('{"_id": "d1", "text": "x"}\n', '{"_id": "q1", "text": "y"}\n', "query-id\tcorpus-id\tscore\n",
     "holds no judgements"),
])
def test_load_beir_rejects_malformed_files(tmp_path: Path, corpus: str, queries: str, qrels: str,
                                           message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_beir(_beir(tmp_path / "set", corpus, queries, qrels))


def test_load_beir_names_a_missing_file(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "set", '{"_id": "d1", "text": "x"}\n', '{"_id": "q1", "text": "y"}\n', "q1\td1\t1\n")
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(UsageError, match=r"test\.tsv is missing"):
        load_beir(folder)
    with pytest.raises(UsageError, match="no such directory"):
        load_beir(tmp_path / "absent")


def test_load_tatoeba_checks_pairs(tiny_tatoeba: Path) -> None:
    assert list(load_tatoeba(tiny_tatoeba)) == ["deu", "fra"]
    assert list(load_tatoeba(tiny_tatoeba, languages=["fra"])) == ["fra"]
    with pytest.raises(UsageError, match="no Tatoeba pair for jpn .*there are: deu, fra"):
        load_tatoeba(tiny_tatoeba, languages=["deu", "jpn"])
    _write_lines(tiny_tatoeba / "tatoeba.deu-eng.eng", ENGLISH[:4])
    with pytest.raises(UsageError, match="has 5 lines but tatoeba.deu-eng.eng has 4"):
        load_tatoeba(tiny_tatoeba)


# the command line ------------------------------------------------------------
def test_cli_errors_are_one_line_before_loading_a_model(tmp_path: Path, tiny_tatoeba: Path) -> None:
    result = run_cli("eval", "beir", str(EVAL_SET), "--mode", "dense", "--mode", "bm25")
    assert result.returncode == 2 and "known: dense" in _one_line_error(result)
    result = run_cli("eval", "beir", str(tmp_path / "absent"))
    assert result.returncode == 2 and "no such directory" in _one_line_error(result)
    result = run_cli("eval", "tatoeba", str(tiny_tatoeba), "--lang", "deu,xho")
    assert result.returncode == 2 and "no Tatoeba pair for xho" in _one_line_error(result)


@pytest.mark.slow
def test_cli_eval_beir_end_to_end() -> None:
    other = next(name for name in CONFIGS if name != "dense")
    result = run_cli("eval", "beir", str(EVAL_SET), "--mode", "dense", "--mode", other, "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["config"] for row in rows] == ["dense", other]
    for row in rows:
        assert set(row) == ROW_KEYS and row["queries"] == 40 and row["p50_ms"] > 0
        assert all(0.0 <= row[name] <= 1.0 for name in MEASURES)
        assert row["R@100"] >= row["R@10"] >= row["R@7"]
    assert rows[0]["nDCG@10"] >= 0.85  # measured 0.901 (centered scoring); plain cosine gives 0.717


@pytest.mark.slow
def test_cli_eval_tatoeba_table(tiny_tatoeba: Path) -> None:
    result = run_cli("eval", "tatoeba", str(tiny_tatoeba))
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["deu", "5", "100.0"] in lines and ["fra", "5", "0.0"] in lines
    assert lines[-1] == ["average", "10", "50.0"]


# Tatoeba through the library ------------------------------------------------------
@pytest.mark.slow
def test_evaluate_tatoeba_tiny(tiny_tatoeba: Path, encoder) -> None:
    result = evaluate_tatoeba(tiny_tatoeba, encoder=encoder)
    assert result.to_dict() == {"model": "multilingual-e5-small", "average": 50.0,
                                "languages": {"deu": 100.0, "fra": 0.0}, "sentences": {"deu": 5, "fra": 5}}
    assert evaluate_tatoeba(tiny_tatoeba, encoder=encoder, languages=["deu"]).languages == {"deu": 100.0}


@pytest.mark.slow
@pytest.mark.skipif(not TATOEBA.is_dir(), reason=f"no Tatoeba data at {TATOEBA}")
def test_evaluate_tatoeba_shared_data(tmp_path: Path, encoder) -> None:
    for code in ("deu", "fra"):
        for side in (code, "eng"):
            name = f"tatoeba.{code}-eng.{side}"
            lines = (TATOEBA / name).read_text(encoding="utf-8").split("\n")[:200]
            _write_lines(tmp_path / name, lines)
    result = evaluate_tatoeba(tmp_path, encoder=encoder)
    assert result.sentences == {"deu": 200, "fra": 200}
    assert result.languages["deu"] >= 95.0 and result.languages["fra"] >= 87.0  # measured 98.5 and 91.0
