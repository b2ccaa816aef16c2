"""Query latency on a 100k-chunk index: embed, first stage, rerank, total.

    python benchmarks/bench_query.py [--chunks 100000] [--queries 200] [--backend onnx] [--keep DIR]

Builds a real index (SQLite, token store, FAISS IVF-PQ) of ``--chunks`` chunks: the
bible-nt-7 passages of ../shared/data are chunked and embedded for real (sentence and token
vectors), then stored again as replicas under other paths, with their vectors moved by a
little Gaussian noise, until the index holds ``--chunks`` chunks; the index is then closed and
opened afresh (and warmed) as a user's search session would open it. Queries are the real
bible-nt-7 queries (seven languages). Prints a markdown table of p50 / p95 milliseconds for:
encoding the query (sentence + token vectors), the ANN search alone, a whole search without
rerank, one with the late-interaction rerank of the top 100, one that also pulls up the best
hit's translations (the default), and the shares of rerank and feedback; the ANN's recall@10 against exact search in the same run; RAM and disk.

``--keep DIR`` builds the index in ``DIR`` and keeps it; a later run with the same ``DIR`` (and
``--chunks``) skips the build and times queries on it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xsearch.runtime import configure_process  # noqa: E402

configure_process()  # before numpy, as the CLI does: it tunes numpy's BLAS threads

import numpy as np  # noqa: E402

from memory import peak_rss_mb  # noqa: E402  (benchmarks/memory.py)

from xsearch import Index  # noqa: E402
from xsearch.ann.factory import exact_top_k  # noqa: E402
from xsearch.ingest import chunk_documents, detect_document_languages, detect_languages  # noqa: E402
from xsearch.embed.tokens import content_tokens  # noqa: E402
from xsearch.embed.centering import prepare  # noqa: E402
from xsearch.search.engine import RERANK_CANDIDATES  # noqa: E402
from xsearch.store.db import FileState, NewDocument  # noqa: E402
from xsearch.translations import update_links  # noqa: E402
from xsearch.types import ChunkTokens  # noqa: E402
from xsearch.types import Document  # noqa: E402

BIBLE = ROOT.parent / "shared" / "data" / "bible-nt-7"
GROUP = 2000


def percentiles(ms: list[float]) -> str:
    return f"{statistics.median(ms):.1f} / {np.percentile(ms, 95):.1f}"


def fill(index: Index, target: int, rng: np.random.Generator) -> tuple[int, float, float]:
    """Store real chunks, link them, then store noisy replicas of them until the index holds
    ``target`` chunks; returns the chunks stored and the seconds of embedding and linking."""
    rows = [json.loads(line) for line in open(BIBLE / "corpus.jsonl", encoding="utf-8")]
    docs = detect_document_languages([Document(path=f"/bench/orig/{r['_id']}", text=r["text"], title=r.get("title", ""))
                                      for r in rows])
    chunk_lists = chunk_documents(docs, index.encoder.count_tokens, max_tokens=index.config.max_tokens,
                                  overlap=index.config.overlap)
    texts = [c.text for chunks in chunk_lists for c in chunks]
    t0 = time.perf_counter()
    vectors, token_embeddings = index.encoder.embed(texts, kind="passage", tokens=True)
    embed_s = time.perf_counter() - t0
    tokens = [content_tokens(t) for t in token_embeddings]
    starts = np.cumsum([0] + [len(c) for c in chunk_lists])
    stored, replica = 0, 0
    while stored < target:
        added = []
        for n, (doc, chunks) in enumerate(zip(docs, chunk_lists)):
            if stored >= target:
                break
            a, b = starts[n], starts[n + 1]
            vecs, toks = vectors[a:b], tokens[a:b]
            if replica:
                vecs = vecs + rng.standard_normal(vecs.shape, dtype=np.float32) * 0.01
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                toks = [ChunkTokens(t.offsets, t.vectors + rng.standard_normal(t.vectors.shape, dtype=np.float32) * 0.05)
                        for t in toks]
            path = f"/bench/r{replica}/{n}"
            added.append((FileState(path, f"{replica}-{n}", 0.0, len(doc.text)),
                          [NewDocument(Document(path=path, text=doc.text, title=doc.title, lang=doc.lang),
                                       chunks, vecs, toks)]))
            stored += len(chunks)
            if len(added) == GROUP:
                index.store.replace_files([], added)
                added = []
        if added:
            index.store.replace_files([], added)
        if replica == 0:
            link_s = link_originals(index)
        replica += 1
    return stored, embed_s, link_s


def link_originals(index: Index) -> float:
    """Make the translation links of the original passages for real; returns the seconds."""
    t0 = time.perf_counter()
    update_links(index.store, index.vectors.sync(save=False), index.config.scoring)
    return time.perf_counter() - t0


def copy_links(index: Index) -> int:
    """Link replica r of a passage to replica r of its translations, as in a corpus of that many
    parallel collections (linked for real, a replica's nearest neighbours would be its own noisy
    copies in its own language); returns the number of links in the index."""
    rows = index.store.db.execute(
        "SELECT c.id, d.path, c.ord FROM chunks c JOIN documents d ON d.id = c.doc_id").fetchall()
    place = {cid: (path.split("/")[2], path.split("/")[3], ord_) for cid, path, ord_ in rows}
    chunk_at = {spot: cid for cid, spot in place.items()}
    pairs = index.store.db.execute("SELECT chunk_id, other_id, score FROM translations WHERE chunk_id < other_id")
    copied = []
    for a, b, score in pairs.fetchall():
        for replica in sorted({spot[0] for spot in place.values()} - {"r0"}):
            ra, rb = chunk_at.get((replica, *place[a][1:])), chunk_at.get((replica, *place[b][1:]))
            if ra is not None and rb is not None:
                copied.append((ra, rb, score))
    index.store.replace_links([], copied, upto_gen=index.store.generation)
    return index.store.link_count()


def build(folder: Path, chunks: int, backend: str | None, rng: np.random.Generator) -> dict:
    """Build the benchmark index in ``folder``; returns what the build took (saved beside it)."""
    index = Index.create(folder, backend=backend)
    index.warm()
    t0 = time.perf_counter()
    stored, embed_s, link_s = fill(index, chunks, rng)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.vectors.sync(save=True)
    ann_build_s = time.perf_counter() - t0
    links = copy_links(index)
    index.close()
    return {"stored": stored, "embed_s": embed_s, "link_s": link_s, "fill_s": fill_s, "ann_build_s": ann_build_s,
            "links": links}


def built(folder: Path, chunks: int, backend: str | None, rng: np.random.Generator) -> dict:
    """The build record of the index in ``folder``, building it first unless a build of
    ``chunks`` chunks is already there."""
    record = folder / "build.json"
    if record.is_file():
        facts = json.loads(record.read_text())
        if facts.get("chunks") == chunks:
            return facts
        raise SystemExit(f"error: {folder} holds a {facts.get('chunks')}-chunk build; use another --keep folder")
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"error: {folder} is not empty and holds no finished build")
    facts = {"chunks": chunks, **build(folder / "index", chunks, backend, rng)}
    record.write_text(json.dumps(facts))
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", default=None, help="encoder backend [default: xsearch's]")
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the index in this folder and keep it; reuse it when it is there")
    args = parser.parse_args()
    if not BIBLE.is_dir():
        print(f"skipped: needs {BIBLE}")
        return
    rng = np.random.default_rng(0)
    queries = [json.loads(line)["text"] for line in open(BIBLE / "queries.jsonl", encoding="utf-8")][: args.queries]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        facts = built(folder, args.chunks, args.backend, rng)
        stored, embed_s, link_s, links = facts["stored"], facts["embed_s"], facts["link_s"], facts["links"]
        fill_s, ann_build_s = facts["fill_s"], facts["ann_build_s"]
        gc.collect()  # searched as a user would: the index opened afresh, the build's memory gone
        index = Index.open(folder / "index", backend=args.backend)
        index.warm()
        info = index.info()
        ann = index.vectors.sync(save=False)

        for q in queries[:5]:  # warm every path
            index.search(q, k=10)
        timings: dict[str, list[float]] = {"encode": [], "ann": [], "dense": [], "rerank": [], "feedback": []}
        means = index.store.language_means()
        for q in queries:
            t0 = time.perf_counter()
            index.encoder.embed([q], kind="query", tokens=True)
            timings["encode"].append((time.perf_counter() - t0) * 1000)
            qv = prepare(index.encoder.encode_queries([q]), detect_languages([q]), index.config.scoring, means)
            t0 = time.perf_counter()
            ann.search(qv, RERANK_CANDIDATES)
            timings["ann"].append((time.perf_counter() - t0) * 1000)
            for name, rerank, feedback in (("dense", False, False), ("rerank", True, False), ("feedback", True, True)):
                t0 = time.perf_counter()
                index.search(q, k=10, rerank=rerank, feedback=feedback)
                timings[name].append((time.perf_counter() - t0) * 1000)

        stored_vectors = index.store.all_vectors()
        base = index.vectors.prepared(stored_vectors)
        qv = prepare(index.encoder.encode_queries(queries[:100]), detect_languages(queries[:100]),
                     index.config.scoring, means)
        exact = stored_vectors.ids[exact_top_k(qv, base, 10)]
        _, found = ann.search(qv, 10)
        raw = float(np.mean([np.isin(e, f).mean() for e, f in zip(exact, found)]))
        from xsearch.ann.factory import measured_recall

        rescored = measured_recall(ann, base, stored_vectors.ids, qv, ann.nprobe)
        sweep = [(nprobe, measured_recall(ann, base, stored_vectors.ids, qv, nprobe))
                 for nprobe in (8, 16, 32, 64) if nprobe <= ann.nlist]
        index.close()

    rerank_ms = [r - d for r, d in zip(timings["rerank"], timings["dense"])]
    feedback_ms = [f - r for f, r in zip(timings["feedback"], timings["rerank"])]
    print(f"\n{stored:,} chunks ({info.index_type}, nprobe {ann.nprobe}); filled in {fill_s:.0f} s "
          f"(embedding {embed_s:.0f} s), ANN built in {ann_build_s:.1f} s, {links:,} translation links (the "
          f"originals' made in {link_s:.1f} s); {len(queries)} queries in 7 languages; "
          f"{os.cpu_count()} cores, backend {index.encoder.backend}\n")
    print("| step | p50 / p95 ms |\n|---|---|")
    print(f"| encode the query (sentence + token vectors) | {percentiles(timings['encode'])} |")
    print(f"| ANN search, top {RERANK_CANDIDATES} | {percentiles(timings['ann'])} |")
    print(f"| whole search, no rerank, no feedback | {percentiles(timings['dense'])} |")
    print(f"| whole search, rerank of the top {RERANK_CANDIDATES}, no feedback | {percentiles(timings['rerank'])} |")
    print(f"| whole search, rerank and translation feedback (default) | {percentiles(timings['feedback'])} |")
    print(f"| of which rerank | {percentiles(rerank_ms)} |")
    print(f"| of which feedback | {percentiles(feedback_ms)} |")
    print(f"\nANN recall@10 vs exact: {raw:.3f} raw, {rescored:.3f} after exact re-scoring of the top 100; "
          f"disk {info.bytes_on_disk / stored:,.0f} bytes per chunk; "
          f"peak RSS {peak_rss_mb():,.0f} MB")
    print("re-scored recall@10 by nprobe: " + ", ".join(f"{n}: {r:.3f}" for n, r in sweep))


if __name__ == "__main__":
    main()
