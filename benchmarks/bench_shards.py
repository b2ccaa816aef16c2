"""Benchmark building a large vector index in shards and searching it memory-mapped.

    python benchmarks/bench_shards.py --n 1000000                 # the quick check
    nice -n 10 python benchmarks/bench_shards.py --n 10000000 --nlist 4096
    python benchmarks/bench_shards.py --parts store,tokens --store-rows 100000

Runs the recipe of :mod:`xsearch.ann.shards` the way a distributed build would, each step
in a process of its own so each reports its own peak resident memory (VmHWM):

1. **generate**: ``--n`` vectors of ``--dim`` dimensions, written to disk as float16 through
   ``np.memmap``, a block at a time (never all in memory), from a seeded mixture of clusters
   each spread over its own 24-d subspace, L2-normalised, so they resemble embeddings; plus
   ``--queries`` held-out queries from the same mixture, nudged off it by noise;
2. **truth**: the exact top-10 of each query by a blocked brute-force scan of the float16 file;
3. **train** (the driver): :func:`~xsearch.ann.shards.train_empty` on a seeded sample;
4. **shards** (the executors): ``--workers`` processes in parallel, each filling its share
   of ``--shards`` shards with :func:`~xsearch.ann.shards.write_shard`;
5. **merge**: :func:`~xsearch.ann.shards.merge_shards` into ``ann-1.faiss`` + ``ann-1.ivfdata``;
6. **search**: a fresh process loads the merged index memory-mapped and times single
   queries (k = 100 candidates) at several nprobe; recall@10 is measured after re-scoring
   the 100 candidates exactly against the float16 vectors, as the query engine does.

With ``--parts store,tokens`` (after or instead of ``build``) it measures what else an index
keeps per chunk at that scale:

7. **store**: ``--store-rows`` chunk rows (texts of about 1,000 characters cut from the
   bible-nt-7 corpus when ``../shared/data`` has it, float16 vectors, ``--tokens-per-chunk``
   token codes) bulk-inserted into the store's schema, FTS5 trigram triggers included, in one
   transaction: rows per second and bytes per chunk (per table where SQLite has ``dbstat``);
8. **tokens**: the token vectors of 100 candidates recomputed with the default encoder,
   against their codes read from that store (with its pages dropped from the page cache, and
   cached) and decoded.

Prints a markdown table per part. Everything is written under ``--dir`` (default: a new
folder under /tmp), removed at the end unless ``--keep``. The disk needs about
``n x dim x 2`` bytes for the vectors plus twice the index (shards, then the merged copy).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from queue import Empty
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory import peak_rss_mb, rss_mb  # noqa: E402  (benchmarks/memory.py)

from xsearch import runtime  # noqa: E402
from xsearch.ann import FaissIndex, shards  # noqa: E402
from xsearch.ann.sizing import PQ_NBITS, choose_nlist, choose_pq_m  # noqa: E402

K = 10
CANDIDATES = 100
BLOCK = 100_000
"""Rows generated, scanned or added at a time."""
N_CENTRES = 1000
RANK = 24
SEED = 20_251


# -- the data: a seeded mixture of clusters, generated a block at a time -------------------------

def mixture(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster centres (c, dim), each cluster's subspace basis (c, RANK, dim) and weights (c,)."""
    rng = np.random.default_rng(SEED)
    centres = rng.standard_normal((N_CENTRES, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((N_CENTRES, RANK, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
    weights = rng.dirichlet(np.full(N_CENTRES, 2.0))
    return centres, bases, weights


def draw(model: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, seed: int) -> np.ndarray:
    """``n`` L2-normalised float32 vectors from the mixture, reproducible from ``seed``."""
    centres, bases, weights = model
    dim = centres.shape[1]
    rng = np.random.default_rng([SEED, seed])
    labels = rng.choice(N_CENTRES, size=n, p=weights)
    x = centres[labels] + np.float32(0.25 / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
    z = np.float32(0.8 / np.sqrt(RANK)) * rng.standard_normal((n, RANK), dtype=np.float32)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for rows in np.split(order, bounds):
        x[rows] += z[rows] @ bases[labels[rows[0]]]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def open_vectors(folder: Path, n: int, dim: int, mode: str = "r") -> np.memmap:
    return np.memmap(folder / "vectors.f16", dtype=np.float16, mode=mode, shape=(n, dim))


def rows_view(folder: Path, dim: int, start: int, stop: int, mode: str = "r") -> np.memmap:
    """Rows ``start:stop`` of the vectors file, mapped on their own: dropping the view unmaps
    them, so the pages a step has read or written do not stay in its resident memory."""
    return np.memmap(folder / "vectors.f16", dtype=np.float16, mode=mode, offset=start * dim * 2,
                     shape=(stop - start, dim))


def gather_rows(folder: Path, dim: int, rows: np.ndarray) -> np.ndarray:
    """The rows at positions ``rows`` as float32, read one by one (not mapped)."""
    size = dim * 2
    out = np.empty((len(rows), dim), dtype=np.float32)
    with open(folder / "vectors.f16", "rb") as f:
        fd = f.fileno()
        for i, row in enumerate(rows):
            out[i] = np.frombuffer(os.pread(fd, size, int(row) * size), dtype=np.float16)
    return out


def read_rows(folder: Path, dim: int, start: int, stop: int, dtype: Any = np.float32) -> np.ndarray:
    """Rows ``start:stop`` as ``dtype``, read a block at a time."""
    out = np.empty((stop - start, dim), dtype=dtype)
    for first in range(start, stop, BLOCK):
        last = min(stop, first + BLOCK)
        view = rows_view(folder, dim, first, last)
        out[first - start : last - start] = view
        del view
    return out


# -- the steps, each run in a process of its own -------------------------------------------------

def step_generate(folder: Path, n: int, dim: int, queries: int) -> dict[str, Any]:
    model = mixture(dim)
    open_vectors(folder, n, dim, "w+").flush()  # the file at its full size
    for block, start in enumerate(range(0, n, BLOCK)):
        stop = min(n, start + BLOCK)
        view = rows_view(folder, dim, start, stop, "r+")
        view[:] = draw(model, stop - start, block)
        view.flush()
        del view
    q = draw(model, queries, 1_000_000_000)
    rng = np.random.default_rng([SEED, 1_000_000_001])
    q += rng.standard_normal(q.shape, dtype=np.float32) * np.float32(0.5 / np.sqrt(dim))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.save(folder / "queries.npy", q)
    return {}


def step_truth(folder: Path, n: int, dim: int) -> dict[str, Any]:
    """Exact top-K row positions of each query over the float16 vectors, a block at a time."""
    q = np.load(folder / "queries.npy")
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_r = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, n, BLOCK):
        block = read_rows(folder, dim, start, min(n, start + BLOCK))
        s = np.concatenate([best_s, q @ block.T], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(np.arange(start, start + len(block)), (len(q), len(block)))], axis=1)
        top = np.argpartition(-s, K - 1, axis=1)[:, :K]
        best_s, best_r = np.take_along_axis(s, top, axis=1), np.take_along_axis(r, top, axis=1)
    np.save(folder / "truth.npy", best_r)
    return {}


def step_train(folder: Path, n: int, dim: int, factory: str, sample: int) -> dict[str, Any]:
    rows = np.sort(np.random.default_rng(SEED).choice(n, min(n, sample), replace=False))
    x = gather_rows(folder, dim, rows)
    (folder / "trained.bin").write_bytes(shards.train_empty(x, factory))
    return {"sample": len(rows)}


def step_shards(folder: Path, n: int, dim: int, parts: list[tuple[int, int, int]], threads: int) -> dict[str, Any]:
    """Fill shards ``(number, start, stop)`` of the rows, as one executor would."""
    runtime.faiss().omp_set_num_threads(threads)
    trained = (folder / "trained.bin").read_bytes()
    added = 0
    for number, start, stop in parts:
        x = read_rows(folder, dim, start, stop, np.float16)  # as the store holds them
        added += shards.write_shard(trained, np.arange(start, stop, dtype=np.int64), x,
                                    folder / f"shard-{number:04d}.faiss")
    return {"added": added}


def step_merge(folder: Path, count: int) -> dict[str, Any]:
    trained = (folder / "trained.bin").read_bytes()
    paths = [folder / f"shard-{number:04d}.faiss" for number in range(count)]
    shards.merge_shards(trained, paths, folder / "ann-1.faiss")
    return {}


def step_search(folder: Path, n: int, dim: int, probes: list[int]) -> dict[str, Any]:
    """Load the merged index memory-mapped in this fresh process, time queries, measure recall."""
    before = rss_mb()
    runtime.faiss().omp_set_num_threads(1)
    t = time.perf_counter()
    index = FaissIndex.load(folder / "ann-1.faiss")
    load_s = time.perf_counter() - t
    loaded = rss_mb()
    q = np.load(folder / "queries.npy")
    truth = np.load(folder / "truth.npy")
    results = []
    for nprobe in probes:
        index.search(q[:20], CANDIDATES, nprobe=nprobe)  # warm the code paths
        latencies, found = [], []
        for query in q:
            t = time.perf_counter()
            _, ids = index.search(query, CANDIDATES, nprobe=nprobe)
            latencies.append(time.perf_counter() - t)
            found.append(ids[0])
        hits = []
        for query, ids, exact in zip(q, found, truth):
            ids = np.sort(ids[ids >= 0])
            sims = gather_rows(folder, dim, ids) @ query
            hits.append(np.isin(exact, ids[np.argsort(-sims)[:K]]).mean())
        results.append({
            "nprobe": nprobe,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p95_ms": 1000 * float(np.percentile(latencies, 95)),
            "recall": float(np.mean(hits)),
        })
    return {"load_s": load_s, "rss_start_mb": before, "rss_loaded_mb": loaded, "rss_end_mb": rss_mb(),
            "default_nprobe": index.nprobe, "nlist": index.nlist, "probes": results}


# -- beyond the vector index: the SQLite store and the token vectors at scale --------------------

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bible-nt-7" / "corpus.jsonl"
CHUNK_CHARS = 1000
"""Characters of a chunk of about 256 tokens (the default chunk size) of the bible-nt-7 texts."""


def chunk_texts(count: int, seed: int = SEED, corpus: Path = CORPUS) -> list[str]:
    """``count`` windows of about :data:`CHUNK_CHARS` characters of the bible-nt-7 texts (seven
    languages, four scripts), or of a seeded Zipf word stream when those are absent."""
    rng = np.random.default_rng([SEED, seed])
    if corpus.is_file():
        streams: dict[str, list[str]] = {}
        for line in corpus.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            streams.setdefault(record["_id"].split("-")[0], []).append(record["text"])
        docs = [" ".join(texts) for texts in streams.values()]  # one text per language
    else:
        vocab = ["".join(chr(97 + c) for c in rng.integers(0, 26, size=rng.integers(2, 10))) for _ in range(30_000)]
        docs = [" ".join(vocab[min(i, len(vocab) - 1)] for i in rng.zipf(1.3, size=4000)) for _ in range(50)]
    out = []
    for _ in range(count):
        doc = docs[rng.integers(len(docs))]
        start = int(rng.integers(0, len(doc) - CHUNK_CHARS))
        start = doc.find(" ", start) + 1
        out.append(doc[start : start + CHUNK_CHARS].rsplit(" ", 1)[0])
    return out


def step_store(folder: Path, rows: int, dim: int, tokens_per_chunk: int, code_bytes: int,
               corpus: Path) -> dict[str, Any]:
    """Bulk-insert ``rows`` chunk rows (text, float16 vector, token codes) into a new store's
    schema (FTS triggers included) in one transaction; the rate and the bytes per chunk."""
    import sqlite3

    from xsearch.store.db import DB_NAME, Store

    where = folder / "store"
    where.mkdir()
    Store(where, create=True, settings={"dim": dim}).close()
    conn = sqlite3.connect(where / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    texts = chunk_texts(10_000, corpus=corpus)
    rng = np.random.default_rng(SEED)
    per_doc = 10
    offsets = np.arange(2 * tokens_per_chunk, dtype=np.int32).tobytes()
    phases = dict.fromkeys(("files and documents", "chunks (with FTS5)", "vectors", "token_vectors", "commit"), 0.0)

    def timed(phase: str, sql: str, values: Any) -> None:
        t = time.perf_counter()
        conn.execute(sql) if values is None else conn.executemany(sql, values)
        phases[phase] += time.perf_counter() - t

    t = time.perf_counter()
    conn.execute("BEGIN")
    for start in range(0, rows, BLOCK // 10):
        stop = min(rows, start + BLOCK // 10)
        docs = range(start // per_doc, (stop + per_doc - 1) // per_doc)
        timed("files and documents", "INSERT INTO files (path, hash, mtime, size, indexed_gen) VALUES (?, ?, 0, 0, 1)",
              ((f"/corpus/{d:09d}.txt", f"{d:064x}") for d in docs))
        timed("files and documents", "INSERT INTO documents (id, path, title, lang) VALUES (?, ?, ?, 'en')",
              ((d + 1, f"/corpus/{d:09d}.txt", f"document {d}") for d in docs))
        vectors = rng.standard_normal((stop - start, dim), dtype=np.float32).astype(np.float16)
        timed("chunks (with FTS5)", 'INSERT INTO chunks (id, doc_id, ord, text, start, "end", lang, n_tokens, gen) '
              "VALUES (?, ?, ?, ?, 0, ?, 'en', 256, 1)",
              ((i + 1, i // per_doc + 1, i % per_doc, texts[i % len(texts)], len(texts[i % len(texts)]))
               for i in range(start, stop)))
        timed("vectors", "INSERT INTO vectors (chunk_id, vec) VALUES (?, ?)",
              ((i + 1, vectors[i - start].tobytes()) for i in range(start, stop)))
        if tokens_per_chunk:
            codes = rng.integers(0, 256, size=(stop - start, tokens_per_chunk * code_bytes), dtype=np.uint8)
            timed("token_vectors", "INSERT INTO token_vectors (chunk_id, n, offsets, codes) VALUES (?, ?, ?, ?)",
                  ((i + 1, tokens_per_chunk, offsets, codes[i - start].tobytes()) for i in range(start, stop)))
    timed("commit", "COMMIT", None)
    seconds = time.perf_counter() - t
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables: dict[str, int] = {}
    try:
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            tables[name] = int(size)
    except sqlite3.OperationalError:  # SQLite built without dbstat
        pass
    conn.close()
    size = sum(p.stat().st_size for p in where.iterdir())
    return {"rows": rows, "insert_s": seconds, "bytes": size, "tables": tables, "phases": phases}


def step_tokens(folder: Path, candidates: int, repeats: int, corpus: Path) -> dict[str, Any]:
    """Token vectors of ``candidates`` chunks: recomputed with the default encoder, against read
    from a store of token codes (warm and with its pages dropped from the cache) and decoded."""
    import sqlite3

    from xsearch.config import DEFAULT_MODEL
    from xsearch.embed.encoder import Encoder
    from xsearch.embed.tokens import content_tokens
    from xsearch.store.db import DB_NAME
    from xsearch.store.tokens import decode_tokens
    from xsearch.token_codec import TokenCodec

    encoder = Encoder.load(DEFAULT_MODEL)
    texts = chunk_texts(candidates, seed=7, corpus=corpus)
    encoder.embed(texts[:8], kind="passage", tokens=True)  # warm up
    _, found = encoder.embed(texts, kind="passage", tokens=True)
    kept = [content_tokens(t) for t in found]
    codec = TokenCodec.train(np.concatenate([k.vectors for k in kept]), "pq")
    db = folder / "store" / DB_NAME
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT MAX(chunk_id) FROM token_vectors").fetchone()[0]
    rng = np.random.default_rng(SEED)
    recompute, warm, cold = [], [], []

    def read(ids: np.ndarray) -> float:
        t = time.perf_counter()
        marks = ",".join("?" * len(ids))
        got = conn.execute(f"SELECT n, codes FROM token_vectors WHERE chunk_id IN ({marks})",
                           [int(i) for i in ids]).fetchall()
        codes = np.frombuffer(b"".join(c for _, c in got), dtype=np.uint8).reshape(-1, codec.bytes_per_token)
        decode_tokens(codec, codes)
        return time.perf_counter() - t

    for _ in range(repeats):
        t = time.perf_counter()
        _, out = encoder.embed(texts, kind="passage", tokens=True)
        [content_tokens(o) for o in out]
        recompute.append(time.perf_counter() - t)
        ids = rng.choice(rows, candidates, replace=False) + 1
        with open(db, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        cold.append(read(ids))
        warm.append(read(ids))
    return {
        "model": DEFAULT_MODEL, "backend": encoder.backend,
        "tokens_in": float(np.mean([len(t.vectors) for t in found])),
        "tokens_kept": float(np.mean([len(k.vectors) for k in kept])),
        "bytes_per_token": codec.bytes_per_token,
        "recompute_ms": 1000 * float(np.median(recompute)),
        "read_cold_ms": 1000 * float(np.median(cold)),
        "read_warm_ms": 1000 * float(np.median(warm)),
    }


def _child(queue: Any, name: str, args: tuple[Any, ...]) -> None:
    t = time.perf_counter()
    result = STEPS[name](*args)
    result.update(seconds=time.perf_counter() - t, peak_rss_mb=peak_rss_mb())
    queue.put(json.dumps(result))


STEPS = {"generate": step_generate, "truth": step_truth, "train": step_train, "shards": step_shards,
         "merge": step_merge, "search": step_search, "store": step_store, "tokens": step_tokens}


def run_steps(name: str, argsets: list[tuple[Any, ...]]) -> tuple[float, list[dict[str, Any]]]:
    """Run step ``name`` once per argument tuple, all in parallel, each in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    t = time.perf_counter()
    procs = [context.Process(target=_child, args=(queue, name, args)) for args in argsets]
    for proc in procs:
        proc.start()
    results = []
    while len(results) < len(procs):
        try:
            results.append(json.loads(queue.get(timeout=1)))
        except Empty:
            failed = [proc.exitcode for proc in procs if proc.exitcode]
            if failed:
                for proc in procs:
                    proc.terminate()
                raise SystemExit(f"error: step {name} failed (exit {failed[0]})") from None
    for proc in procs:
        proc.join()
    return time.perf_counter() - t, results


def build_part(args: argparse.Namespace, folder: Path) -> None:
    """Steps 1-6: the sharded build of the vector index and its memory-mapped search."""
    n, dim = args.n, args.dim
    nlist = args.nlist or choose_nlist(n)
    m = choose_pq_m(dim)
    if m is None:
        raise SystemExit(f"error: no PQ split of dimension {dim}")
    factory = f"IVF{nlist},PQ{m}x{PQ_NBITS}"
    sample = args.train or max(100_000, 64 * nlist)
    count = args.shards or max(args.workers, math.ceil(n / 1_000_000))
    bounds = np.linspace(0, n, count + 1).astype(np.int64)
    parts = [(i, int(bounds[i]), int(bounds[i + 1])) for i in range(count)]
    threads = max(1, runtime.cpu_count() // args.workers)
    print(f"{n:,} x {dim} vectors, {factory}, training sample {min(n, sample):,}, {count} shards "
          f"filled by {args.workers} processes ({threads} FAISS thread(s) each), {runtime.cpu_count()} cores; "
          f"work folder {folder}\n", flush=True)

    rows = []
    for name, argsets in [
        ("generate", [(folder, n, dim, args.queries)]),
        ("truth", [(folder, n, dim)]),
        ("train", [(folder, n, dim, factory, sample)]),
        ("shards", [(folder, n, dim, parts[w :: args.workers], threads) for w in range(args.workers)]),
        ("merge", [(folder, count)]),
    ]:
        wall, results = run_steps(name, argsets)
        rows.append((name, wall, [r["peak_rss_mb"] for r in results]))
        peaks = ", ".join(f"{r['peak_rss_mb']:,.0f}" for r in results)
        print(f"{name}: {wall:.1f} s, peak RSS {peaks} MB", flush=True)

    index_bytes = (folder / "ann-1.faiss").stat().st_size
    data_bytes = (folder / "ann-1.ivfdata").stat().st_size
    shard_bytes = sum(p.stat().st_size for p in folder.glob("shard-*.faiss"))
    default = FaissIndex.load(folder / "ann-1.faiss").nprobe
    probes = sorted({int(p) for p in args.nprobe.split(",") if p} or {16, 32, 64, default})
    wall, (search,) = run_steps("search", [(folder, n, dim, probes)])
    rows.append(("search (fresh process)", wall, [search["peak_rss_mb"]]))

    print("\n| step | wall s | peak RSS per process (VmHWM) |")
    print("|---|--:|--:|")
    for name, wall, peaks in rows:
        print(f"| {name} | {wall:,.1f} | {' / '.join(f'{p:,.0f} MB' for p in peaks)} |")
    print(f"\nmerged index: {index_bytes / 2**20:,.1f} MB index file + {data_bytes / 2**20:,.1f} MB data file "
          f"= {(index_bytes + data_bytes) / n:.1f} bytes per vector (shards: {shard_bytes / n:.1f} bytes per vector; "
          f"float16 vectors: {dim * 2} bytes per vector)")
    print(f"search process: load {search['load_s'] * 1000:.0f} ms; RSS {search['rss_start_mb']:,.0f} MB before "
          f"loading, {search['rss_loaded_mb']:,.0f} MB loaded, {search['rss_end_mb']:,.0f} MB after the queries, "
          f"peak {search['peak_rss_mb']:,.0f} MB\n")
    print(f"| nprobe (nlist {search['nlist']}) | ANN p50 ms | ANN p95 ms | recall@{K} rescored top-{CANDIDATES} |")
    print("|--:|--:|--:|--:|")
    for r in search["probes"]:
        label = f"{r['nprobe']} (default)" if r["nprobe"] == search["default_nprobe"] else str(r["nprobe"])
        print(f"| {label} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall']:.3f} |")
    for path in folder.glob("shard-*.faiss"):
        path.unlink()  # room for the store part


def store_part(args: argparse.Namespace, folder: Path, tokens: bool) -> None:
    """The SQLite store's insert rate and size per chunk; with ``tokens``, reranking's token
    vectors recomputed against read from the store."""
    code_bytes = args.dim // 8  # the default pq token codec: one byte per 8 dimensions
    wall, (store,) = run_steps("store", [(folder, args.store_rows, args.dim, args.tokens_per_chunk, code_bytes,
                                          args.corpus)])
    rows = store["rows"]
    source = args.corpus.name if args.corpus.is_file() else "synthetic words"
    print(f"\nSQLite: {rows:,} chunk rows ({CHUNK_CHARS}-character texts of {source} with the FTS5 trigram index, "
          f"{args.dim * 2}-byte vectors, {args.tokens_per_chunk} token codes of {code_bytes} + 8 bytes) "
          f"in one transaction: {store['insert_s']:,.1f} s, {rows / store['insert_s']:,.0f} rows/s, "
          f"{store['bytes'] / rows:,.0f} bytes per chunk ({store['bytes'] / 2**30:,.2f} GiB), "
          f"peak RSS {store['peak_rss_mb']:,.0f} MB")
    print("\n| insert phase | s | share |")
    print("|---|--:|--:|")
    for phase, spent in store["phases"].items():
        print(f"| {phase} | {spent:,.1f} | {spent / store['insert_s']:.0%} |")
    if store["tables"]:
        print("\n| table or index | bytes per chunk |")
        print("|---|--:|")
        for name, size in sorted(store["tables"].items(), key=lambda item: -item[1])[:8]:
            print(f"| {name} | {size / rows:,.0f} |")
    if tokens:
        wall, (tok,) = run_steps("tokens", [(folder, CANDIDATES, args.repeats, args.corpus)])
        print(f"\ntoken vectors of {CANDIDATES} candidates ({tok['model']}, {tok['backend']}; "
              f"{tok['tokens_in']:.0f} tokens a chunk, {tok['tokens_kept']:.0f} kept, "
              f"{tok['bytes_per_token']} + 8 bytes each = {tok['tokens_kept'] * (tok['bytes_per_token'] + 8):,.0f} "
              f"bytes a chunk), median of {args.repeats}:\n")
        print("| how | ms |")
        print("|---|--:|")
        print(f"| recompute with the encoder | {tok['recompute_ms']:,.1f} |")
        print(f"| read codes from SQLite, pages not cached, and decode | {tok['read_cold_ms']:,.1f} |")
        print(f"| read codes from SQLite, pages cached, and decode | {tok['read_warm_ms']:,.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the corpus")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension")
    parser.add_argument("--nlist", type=int, default=0, help="IVF lists (default: sizing.choose_nlist(n))")
    parser.add_argument("--train", type=int, default=0,
                        help="training sample (default: 64 x nlist, at least 100,000, as FaissIndex.train)")
    parser.add_argument("--shards", type=int, default=0, help="shard files (default: one per million vectors)")
    parser.add_argument("--workers", type=int, default=2, help="processes filling shards in parallel")
    parser.add_argument("--queries", type=int, default=200, help="queries for recall and latency")
    parser.add_argument("--nprobe", default="", help="comma-separated nprobe values (default: 16,32,64,default)")
    parser.add_argument("--parts", default="build",
                        help="comma-separated: build (the vector index), store (SQLite), tokens (needs store)")
    parser.add_argument("--store-rows", type=int, default=1_000_000, help="chunk rows of the store part")
    parser.add_argument("--tokens-per-chunk", type=int, default=110, help="token codes per chunk row")
    parser.add_argument("--corpus", type=Path, default=CORPUS,
                        help="JSON Lines corpus the chunk texts are cut from (default: bible-nt-7 in ../shared/data)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of the tokens part")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if parts - {"build", "store", "tokens"}:
        raise SystemExit(f"error: unknown part(s) {', '.join(sorted(parts - {'build', 'store', 'tokens'}))}")
    folder = Path(tempfile.mkdtemp(prefix="xsearch-shards-", dir=args.dir))
    try:
        if "build" in parts:
            build_part(args, folder)
        if parts & {"store", "tokens"}:
            store_part(args, folder, "tokens" in parts)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
