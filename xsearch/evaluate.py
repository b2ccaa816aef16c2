"""Retrieval evaluation: BEIR-format test sets and Tatoeba bitext retrieval.

:func:`evaluate_beir` indexes a BEIR corpus with xsearch itself, runs every judged query
through :meth:`Index.search_batch` and scores the rankings with ``ir-measures`` (trec_eval's
definitions); :func:`evaluate_tatoeba` measures accuracy@1 of translation retrieval with the
bare encoder. The metric arithmetic is the library's, never ours.

Nothing heavy is imported at module level, so the CLI can import this module for free.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from .embed.encoder import Encoder
    from .index import Index
    from .pipeline import IndexProgress
    from .types import Hit

CONFIGS: dict[str, dict[str, Any]] = {
    "dense-plain": {"mode": "dense", "scoring": "plain", "rerank": False, "feedback": False},
    "dense": {"mode": "dense", "scoring": "centered", "rerank": False, "feedback": False},
    "dense+feedback": {"mode": "dense", "scoring": "centered", "rerank": False, "feedback": True},
    "dense+rerank": {"mode": "dense", "scoring": "centered", "rerank": True, "feedback": False},
    "dense+rerank+feedback": {"mode": "dense", "scoring": "centered", "rerank": True, "feedback": True},
    "lexical": {"mode": "lexical", "rerank": False, "feedback": False},
    "hybrid": {"mode": "hybrid", "scoring": "centered", "rerank": False, "feedback": False},
    "hybrid+rerank": {"mode": "hybrid", "scoring": "centered", "rerank": True, "feedback": False},
    "hybrid+rerank+feedback": {"mode": "hybrid", "scoring": "centered", "rerank": True, "feedback": True},
}
"""Ranking configurations by name: the keyword arguments each passes to ``Index.search_batch``."""

MEASURES: dict[str, str] = {
    "nDCG@10": "nDCG@10",
    "R@10": "R@10",
    "R@100": "R@100",
    "MRR@10": "RR@10",
    "MAP@20": "AP@20",
    "R@7": "R@7",
}
"""Reported metric name -> ``ir-measures`` measure (RR is reciprocal rank, AP average precision)."""

DOC_ID_FIELD = "doc_id"
"""Metadata field of the indexed JSON Lines records that carries the BEIR ``_id``."""
SHARD_SIZE = 10_000
"""Corpus records per JSON Lines file written for indexing."""
DEFAULT_K = 100
_TATOEBA_NAME = re.compile(r"^tatoeba\.([a-z]{2,3})-eng\.\1$")


# data -----------------------------------------------------------------------
@dataclass(frozen=True)
class BeirDoc:
    """One corpus passage."""

    title: str
    text: str
    lang: str = ""


@dataclass(frozen=True)
class BeirQuery:
    """One query."""

    text: str
    lang: str = ""


@dataclass(frozen=True)
class BeirData:
    """A BEIR test set: corpus, queries and relevance judgements (``qrels[query_id][doc_id]``)."""

    corpus: dict[str, BeirDoc]
    queries: dict[str, BeirQuery]
    qrels: dict[str, dict[str, int]]

    @property
    def judged_queries(self) -> list[str]:
        """Ids of the queries that have judgements, the ones that are evaluated, in file order."""
        return [qid for qid in self.queries if qid in self.qrels]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: malformed JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UsageError(f"{path}:{number}: expected a JSON object")
        if not isinstance(record.get("_id"), (str, int)) or isinstance(record.get("_id"), bool):
            raise UsageError(f'{path}:{number}: no string "_id" field')
        if not isinstance(record.get("text"), str):
            raise UsageError(f'{path}:{number}: no string "text" field')
        records.append((number, record))
    return records


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _string(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


def _unique(path: Path, records: list[tuple[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for number, record in records:
        key = str(record["_id"])
        if key in found:
            raise UsageError(f"{path}:{number}: duplicate _id {key!r}")
        found[key] = record
    return found


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip() or (number == 1 and line.lower().startswith("query-id")):
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 3:
            raise UsageError(f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score)")
        qid, did, score = (f.strip() for f in fields)
        try:
            qrels.setdefault(qid, {})[did] = int(score)
        except ValueError:
            raise UsageError(f"{path}:{number}: score {score!r} is not an integer") from None
    if not qrels:
        raise UsageError(f"{path} holds no judgements")
    return qrels


def load_beir(directory: str | os.PathLike[str], *, split: str = "test") -> BeirData:
    """Read a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Every query named in the qrels must be in ``queries.jsonl``; judged documents missing from
    the corpus are kept (they can never be retrieved, so they count as misses).

    Raises:
        UsageError: a file is missing or malformed.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}")
    paths = {"corpus": root / "corpus.jsonl", "queries": root / "queries.jsonl",
             "qrels": root / "qrels" / f"{split}.tsv"}
    for path in paths.values():
        if not path.is_file():
            raise UsageError(f"{path} is missing (a BEIR folder holds corpus.jsonl, queries.jsonl "
                             f"and qrels/{split}.tsv)")
    corpus = {key: BeirDoc(_string(r, "title"), str(r["text"]), _string(r, "lang"))
              for key, r in _unique(paths["corpus"], _read_jsonl(paths["corpus"])).items()}
    queries = {key: BeirQuery(str(r["text"]), _string(r, "lang"))
               for key, r in _unique(paths["queries"], _read_jsonl(paths["queries"])).items()}
    qrels = _read_qrels(paths["qrels"])
    if not corpus:
        raise UsageError(f"{paths['corpus']} holds no passages")
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise UsageError(f"{paths['qrels']} judges {len(missing)} queries not in {paths['queries']}, "
                         f"e.g. {missing[0]!r}")
    return BeirData(corpus, queries, qrels)


# results --------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRow:
    """The scores of one ranking configuration on one BEIR test set (metrics in [0, 1])."""

    config: str
    model: str
    queries: int
    ndcg_10: float
    recall_10: float
    recall_100: float
    mrr_10: float
    map_20: float
    recall_7: float
    p50_ms: float
    """Median wall time of one ``search_batch([query])`` call (encoding included)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: metrics under their reported names (``nDCG@10`` … ``R@7``)."""
        metrics = dict(zip(MEASURES, (self.ndcg_10, self.recall_10, self.recall_100, self.mrr_10,
                                      self.map_20, self.recall_7)))
        return {"config": self.config, "model": self.model, "queries": self.queries,
                **{name: round(value, 4) for name, value in metrics.items()}, "p50_ms": round(self.p50_ms, 1)}


@dataclass(frozen=True)
class TatoebaResult:
    """Accuracy@1 (percent, one decimal) of retrieving each sentence's English translation."""

    model: str
    average: float
    languages: dict[str, float]
    sentences: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: ``{"model", "average", "languages": {code: acc}, "sentences": {code: n}}``."""
        return {"model": self.model, "average": self.average, "languages": dict(self.languages),
                "sentences": dict(self.sentences)}


@dataclass(frozen=True)
class EvalProgress:
    """Where an evaluation stands: ``phase`` is ``"index"``, ``"search"`` or ``"encode"``."""

    phase: str
    done: int
    total: int
    label: str = ""
    """The configuration being searched, or the language being encoded."""


ProgressCallback = Callable[[EvalProgress], None]


# metrics --------------------------------------------------------------------
def compute_metrics(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean of each metric in :data:`MEASURES` over the queries in ``qrels``, by ``ir-measures``.

    ``run`` maps a query id to its ranked document ids, best first; a judged query missing
    from ``run`` scores 0. The ranking is passed on as given (scores are derived from ranks, so
    trec_eval's tie-breaking never reorders it).
    """
    import ir_measures

    measures = {name: ir_measures.parse_measure(spec) for name, spec in MEASURES.items()}
    scored = {qid: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
              for qid, docs in run.items() if qid in qrels}
    judged = {qid: dict(docs) for qid, docs in qrels.items()}
    means = ir_measures.calc_aggregate(list(measures.values()), judged, scored)
    return {name: float(means.get(measure, 0.0)) for name, measure in measures.items()}


def check_configs(configs: Sequence[str]) -> list[str]:
    """``configs`` without repeats, each a key of :data:`CONFIGS`.

    Raises:
        UsageError: no configuration, or an unknown one.
    """
    chosen = list(dict.fromkeys(configs))
    if not chosen:
        raise UsageError("give at least one ranking configuration")
    unknown = [name for name in chosen if name not in CONFIGS]
    if unknown:
        raise UsageError(f"unknown ranking configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    return chosen


# BEIR -----------------------------------------------------------------------
def _write_corpus(data: BeirData, folder: Path) -> list[Path]:
    """The corpus as JSON Lines shards whose records carry ``doc_id`` and ``lang`` as metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = [(key, doc) for key, doc in data.corpus.items() if (doc.text or doc.title).strip()]
    paths = []
    for start in range(0, len(docs), SHARD_SIZE):
        path = folder / f"corpus-{start // SHARD_SIZE:05d}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for key, doc in docs[start : start + SHARD_SIZE]:
                record = {DOC_ID_FIELD: key, "title": doc.title, "text": doc.text or doc.title, "lang": doc.lang}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def _build_index(data: BeirData, encoder: Encoder, index_path: Path, corpus_dir: Path,
                 progress: ProgressCallback | None) -> Index:
    from .config import IndexConfig
    from .index import Index

    info = encoder.info
    config = IndexConfig(model=info.model, pooling=info.pooling, layer=info.layer)
    index = Index.create(index_path, config, encoder=encoder)
    paths = _write_corpus(data, corpus_dir)
    total = len(data.corpus)

    def report(p: IndexProgress) -> None:
        if progress is not None:
            progress(EvalProgress("index", p.chunks_done, max(total, p.chunks_done)))

    try:
        index.add_paths(paths, progress=report)
    except BaseException:
        index.close()
        raise
    return index


def rank_documents(hits: Sequence[Hit]) -> list[str]:
    """Document ids in hit order, each document at its best chunk's place."""
    ranked: dict[str, None] = {}
    for hit in hits:
        doc_id = hit.metadata.get(DOC_ID_FIELD)
        if doc_id is not None:
            ranked.setdefault(str(doc_id), None)
    return list(ranked)


def _run_config(index: Index, data: BeirData, name: str, k: int, progress: ProgressCallback | None
                ) -> tuple[dict[str, list[str]], list[float]]:
    kwargs = CONFIGS[name]
    qids = data.judged_queries
    index.search_batch([data.queries[qids[0]].text], k, **kwargs)  # warm-up, not timed
    run: dict[str, list[str]] = {}
    timings = []
    for n, qid in enumerate(qids, 1):
        started = time.perf_counter()
        hits = index.search_batch([data.queries[qid].text], k, **kwargs)[0]
        timings.append((time.perf_counter() - started) * 1000)
        run[qid] = rank_documents(hits)
        if progress is not None:
            progress(EvalProgress("search", n, len(qids), name))
    return run, timings


def evaluate_beir(data: BeirData, *, configs: Sequence[str] = ("dense",), encoder: Encoder | None = None,
                  k: int = DEFAULT_K, index_dir: str | os.PathLike[str] | None = None,
                  progress: ProgressCallback | None = None) -> list[EvalRow]:
    """Index ``data.corpus`` with xsearch and score each ranking configuration, one row each.

    The index is built once (in a temporary folder, or in ``index_dir``, which is kept and
    must not hold an index yet) and every configuration in ``configs`` (names from
    :data:`CONFIGS`) searches it for the ``k`` best chunks per judged query, one query per call.
    Chunks map back to corpus ids through their ``doc_id`` metadata, each document ranked at
    its best chunk. ``encoder`` defaults to the default model.

    Raises:
        UsageError: an unknown configuration, ``k`` below 1, or no judged query.
    """
    chosen = check_configs(configs)
    if k < 1:
        raise UsageError("k must be at least 1")
    if not data.judged_queries:
        raise UsageError("no query has relevance judgements")
    if encoder is None:
        encoder = _default_encoder()
    with tempfile.TemporaryDirectory(prefix="xsearch-eval-") as tmp:
        index_path = Path(index_dir) if index_dir is not None else Path(tmp) / "index"
        index = _build_index(data, encoder, index_path, Path(tmp) / "corpus", progress)
        with index:
            index.warm()
            rows = []
            for name in chosen:
                run, timings = _run_config(index, data, name, k, progress)
                scores = compute_metrics(data.qrels, run)
                rows.append(EvalRow(
                    config=name, model=encoder.info.model, queries=len(run),
                    ndcg_10=scores["nDCG@10"], recall_10=scores["R@10"], recall_100=scores["R@100"],
                    mrr_10=scores["MRR@10"], map_20=scores["MAP@20"], recall_7=scores["R@7"],
                    p50_ms=statistics.median(timings),
                ))
    return rows


# Tatoeba --------------------------------------------------------------------
def load_tatoeba(directory: str | os.PathLike[str], *, languages: Sequence[str] | None = None
                 ) -> dict[str, tuple[list[str], list[str]]]:
    """The ``tatoeba.xx-eng.xx`` / ``tatoeba.xx-eng.eng`` pairs of a folder: ``{xx: (xx lines, eng lines)}``.

    Raises:
        UsageError: no such folder, no pair in it, a language in ``languages`` without a
            pair, or a pair whose files differ in length.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"no such directory: {root}")
    found = sorted(m.group(1) for p in root.iterdir() if (m := _TATOEBA_NAME.match(p.name)))
    if not found:
        raise UsageError(f"{root} holds no Tatoeba pairs (tatoeba.xx-eng.xx with tatoeba.xx-eng.eng)")
    if languages is not None:
        wanted = list(dict.fromkeys(languages))
        absent = [code for code in wanted if code not in found]
        if absent or not wanted:
            raise UsageError(f"no Tatoeba pair for {', '.join(absent) or 'an empty language list'} in {root}; "
                             f"there are: {', '.join(found)}")
        found = wanted
    pairs = {}
    for code in found:
        source, english = (root / f"tatoeba.{code}-eng.{side}" for side in (code, "eng"))
        if not english.is_file():
            raise UsageError(f"{english} is missing (the English side of {source.name})")
        sides = [_lines(path) for path in (source, english)]
        if len(sides[0]) != len(sides[1]):
            raise UsageError(f"{source.name} has {len(sides[0])} lines but {english.name} has {len(sides[1])}")
        if not sides[0]:
            raise UsageError(f"{source} is empty")
        pairs[code] = (sides[0], sides[1])
    return pairs


def _lines(path: Path) -> list[str]:
    lines = [line.rstrip("\r") for line in _read_text(path).split("\n")]
    return lines[:-1] if lines and not lines[-1] else lines


BITEXT_SCORINGS = ("plain", "centered", "csls")


def bitext_accuracy(source_vectors: np.ndarray, target_vectors: np.ndarray, scoring: str = "plain") -> float:
    """Percent of rows ``i`` of ``source_vectors`` whose best target is row ``i``.

    ``plain`` is cosine; ``centered`` subtracts each side's mean vector first (each side is
    one language, see :mod:`xsearch.embed.centering`); ``csls`` adds CSLS margin scoring to
    the centred cosines.
    """
    import numpy as np

    from .embed.centering import csls

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    if scoring not in BITEXT_SCORINGS:
        raise UsageError(f"unknown scoring {scoring!r}; choose one of {', '.join(BITEXT_SCORINGS)}")
    source, target = unit(source_vectors), unit(target_vectors)
    if scoring != "plain":
        source, target = unit(source - source.mean(axis=0)), unit(target - target.mean(axis=0))
    similarities = source @ target.T
    if scoring == "csls":
        similarities = csls(similarities)
    nearest = similarities.argmax(axis=1)
    return float((nearest == np.arange(len(nearest))).mean() * 100)


def evaluate_tatoeba(directory: str | os.PathLike[str], *, encoder: Encoder | None = None,
                     languages: Sequence[str] | None = None, scoring: str = "plain",
                     progress: ProgressCallback | None = None) -> TatoebaResult:
    """Accuracy@1 of xx -> English nearest-neighbour retrieval for each pair in ``directory``.

    Both sides are encoded with the model's *query* prefix (the e5 recipe for symmetric
    tasks); each xx sentence must find its own line among all English lines of its file. The
    average is taken over the unrounded per-language accuracies.
    """
    pairs = load_tatoeba(directory, languages=languages)
    if encoder is None:
        encoder = _default_encoder()
    accuracies = {}
    for n, (code, (source, english)) in enumerate(pairs.items()):
        if progress is not None:
            progress(EvalProgress("encode", n, len(pairs), code))
        accuracies[code] = bitext_accuracy(encoder.encode_queries(source), encoder.encode_queries(english), scoring)
    if progress is not None:
        progress(EvalProgress("encode", len(pairs), len(pairs)))
    return TatoebaResult(
        model=encoder.info.model,
        average=round(statistics.fmean(accuracies.values()), 1),
        languages={code: round(acc, 1) for code, acc in accuracies.items()},
        sentences={code: len(source) for code, (source, _) in pairs.items()},
    )


def _default_encoder() -> Encoder:
    from .config import DEFAULT_MODEL
    from .embed.encoder import Encoder

    return Encoder.load(DEFAULT_MODEL)


__all__ = [
    "CONFIGS", "MEASURES", "BeirData", "BeirDoc", "BeirQuery", "EvalProgress", "EvalRow", "TatoebaResult",
    "bitext_accuracy", "check_configs", "compute_metrics", "evaluate_beir", "evaluate_tatoeba", "load_beir",
    "load_tatoeba", "rank_documents",
]
