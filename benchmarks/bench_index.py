"""End-to-end benchmark: index a corpus, then query it.

    python benchmarks/bench_index.py [--corpus PATH] [--queries N] [--ann-size N]

The corpus defaults to the bible-nt-7 passages in ../shared/data (written out as one JSON
Lines file), or the bundled sample corpus when that is absent. Prints a markdown table:
ingestion chunks/s, p50/p95 query latency (embed + search + rerank), ANN recall@10 against
exact search (for the index as built, in the language-centred space it searches, and for an
IVF-PQ index over ``--ann-size`` clustered synthetic vectors), and bytes per chunk on disk.
A second, unchanged ``index`` run is timed against the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xsearch import Index  # noqa: E402
from xsearch.ann import build  # noqa: E402
from xsearch.search.engine import RERANK_CANDIDATES  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_ann import clustered  # noqa: E402

BIBLE = ROOT.parent / "shared" / "data" / "bible-nt-7"


def prepare_corpus(arg: str | None, workdir: Path) -> tuple[Path, list[str]]:
    """A folder to index and a list of queries to run against it."""
    eval_queries = [json.loads(line)["text"] for line in open(ROOT / "data" / "eval" / "queries.jsonl", encoding="utf-8")]
    if arg:
        return Path(arg), eval_queries
    if BIBLE.is_dir():
        folder = workdir / "corpus"
        folder.mkdir()
        with open(BIBLE / "corpus.jsonl", encoding="utf-8") as src, open(folder / "bible.jsonl", "w", encoding="utf-8") as dst:
            for line in src:
                row = json.loads(line)
                dst.write(json.dumps({"text": row["text"], "title": row.get("title", ""), "id": row["_id"]},
                                     ensure_ascii=False) + "\n")
        queries = [json.loads(line)["text"] for line in open(BIBLE / "queries.jsonl", encoding="utf-8")]
        return folder, queries
    return ROOT / "data" / "sample", eval_queries


def recall_at_10(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-10 found in the approximate top-10."""
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx[:, :10], exact[:, :10])]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="folder to index (default: bible-nt-7 or data/sample)")
    parser.add_argument("--queries", type=int, default=200, help="queries to time")
    parser.add_argument("--recompute-runs", type=int, default=3,
                        help="times the top candidates' token vectors are re-encoded")
    parser.add_argument("--ann-size", type=int, default=100_000, help="vectors for the IVF-PQ recall check")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        folder, queries = prepare_corpus(args.corpus, workdir)
        queries = queries[: args.queries]
        index_dir = workdir / "index"
        index = Index.create(index_dir)
        index.warm()
        t0 = time.perf_counter()
        report = index.add_paths([folder])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        index.add_paths([folder])
        second = time.perf_counter() - t0

        index.search("warm-up", k=10)
        latencies: dict[bool, list[float]] = {False: [], True: []}
        for query in queries:  # interleaved, so both settings see the same machine load
            for rerank in (False, True):
                t0 = time.perf_counter()
                index.search(query, k=10, rerank=rerank)
                latencies[rerank].append((time.perf_counter() - t0) * 1000)
        info = index.info()

        # The alternative to a token store: encode the candidates' token vectors per query.
        candidate_texts = [hit.text for hit in index.search(queries[0], k=RERANK_CANDIDATES, rerank=False)]
        recompute = []
        for _ in range(args.recompute_runs):
            t0 = time.perf_counter()
            index.encoder.embed(candidate_texts, kind="passage", tokens=True)
            recompute.append((time.perf_counter() - t0) * 1000)

        # ANN recall in the space the index searches (language-centred vectors)
        from xsearch.ingest import detect_languages
        from xsearch.embed.centering import prepare

        stored = index.store.all_vectors()
        means = index.store.language_means()
        base = index.vectors.prepared(stored)
        qv = prepare(index.encoder.encode_queries(queries[:100]), detect_languages(queries[:100]),
                     index.config.scoring, means)
        exact_ids = stored.ids[np.argsort(-(qv @ base.T), axis=1)[:, :10]]
        _, ann_ids = index.vectors.sync(save=False).search(qv, 10)
        recall_built = recall_at_10(ann_ids, exact_ids)

        points = clustered(args.ann_size + 200, base.shape[1])
        big, big_queries = points[:-200], points[-200:]
        t0 = time.perf_counter()
        ann = build(big, np.arange(len(big), dtype=np.int64))
        build_s = time.perf_counter() - t0
        exact_big = np.argsort(-(big_queries @ big.T), axis=1)[:, :10]
        _, cand = ann.search(big_queries, 100)
        rescored = np.array([c[np.argsort(-(big[c] @ q))][:10] for c, q in zip(cand, big_queries)])
        _, raw = ann.search(big_queries, 10)
        t0 = time.perf_counter()
        for q in big_queries:
            ann.search(q[None, :], 100)
        ann_ms = (time.perf_counter() - t0) * 1000 / len(big_queries)
        index.close()

    rows = [
        ("corpus", f"{folder.name}: {info.documents} documents, {info.chunks} chunks, {len(info.languages)} languages"),
        ("ingestion", f"{report.chunks_added / first:.1f} chunks/s ({first:.1f} s, model load excluded)"),
        ("unchanged re-index", f"{second:.2f} s = {second / first:.1%} of the first run"),
        *[(f"query latency p50 / p95, {name}", f"{statistics.median(ms):.1f} / {np.percentile(ms, 95):.1f} ms "
                                               f"(embed + search, k=10, {len(ms)} queries)")
          for name, ms in (("no rerank", latencies[False]), (f"rerank top {RERANK_CANDIDATES}", latencies[True]))],
        ("rerank cost (stored token vectors)", f"+{statistics.median(latencies[True]) - statistics.median(latencies[False]):.1f} ms p50 "
                                               f"({statistics.median(latencies[True]) / statistics.median(latencies[False]):.2f}x)"),
        ("rerank cost if token vectors were recomputed", f"+{statistics.median(recompute):.0f} ms per query "
                                                         f"(encoding {len(candidate_texts)} candidates)"),
        ("ANN recall@10 (index as built)", f"{recall_built:.3f} ({info.index_type})"),
        (f"ANN recall@10, {len(big):,} clustered synthetic vectors", f"{recall_at_10(rescored, exact_big):.3f} re-scored, "
                                                 f"{recall_at_10(raw, exact_big):.3f} raw ({ann.factory}, "
                                                 f"built in {build_s:.1f} s, {ann_ms:.2f} ms/query)"),
        ("bytes per chunk on disk", f"{info.bytes_on_disk / max(info.chunks, 1):,.0f}"),
    ]
    print(f"\nmachine: {os.cpu_count()} cores\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
