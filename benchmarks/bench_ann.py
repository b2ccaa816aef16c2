"""Benchmark the vector index: exact Flat against the IVF-PQ that the policy chooses.

    python benchmarks/bench_ann.py [--n 100000] [--dim 384] [--queries 1000]
    python benchmarks/bench_ann.py --n 1000000        # the 1M-chunk scale run

Builds both indexes over clustered synthetic embeddings (the generator of
tests/test_ann.py: 200 Gaussian clusters, each spread over its own 24-d subspace,
L2-normalised) and prints a markdown table: build time, bytes per vector on disk,
single-query latency (p50/p95, k=100 candidates), batched QPS, raw recall@10, and
recall@10 after exact re-scoring of the top-100 candidates, as the query engine does.
Recall is against exact inner-product search; latency excludes the re-scoring.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory import peak_rss_mb  # noqa: E402  (benchmarks/memory.py)

from xsearch.ann import FaissIndex, build, choose_factory, default_nprobe  # noqa: E402

CANDIDATES = 100
K = 10


def clustered(n: int, dim: int, *, n_centres: int = 200, seed: int = 0) -> np.ndarray:
    """L2-normalised Gaussian mixture, each cluster spread over a random 24-d subspace."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.choice(n_centres, size=n, p=rng.dirichlet(np.full(n_centres, 2.0)))
    x = centres[labels] + 0.25 / np.sqrt(dim) * rng.standard_normal((n, dim), dtype=np.float32)
    rank = 24
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        basis = rng.standard_normal((rank, dim), dtype=np.float32) / np.sqrt(dim)
        z = (0.8 / np.sqrt(rank)) * rng.standard_normal((rows.size, rank), dtype=np.float32)
        x[rows] += z @ basis
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_top(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Row positions of the exact top-k, best first."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 256):
        sims = queries[start : start + 256] @ base.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[start : start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def rescore(queries: np.ndarray, base: np.ndarray, positions: np.ndarray, k: int) -> np.ndarray:
    """Re-rank candidate positions (-1 = padding) by exact inner product."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 128):
        pos = positions[start : start + 128]
        sims = np.einsum("qd,qcd->qc", queries[start : start + 128], base[np.maximum(pos, 0)])
        sims[pos < 0] = -np.inf
        order = np.argsort(-sims, axis=1)[:, :k]
        out[start : start + 128] = np.take_along_axis(pos, order, axis=1)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([np.isin(t, f).mean() for f, t in zip(found, truth)]))


def loaded_ram_mb(path: Path) -> float:
    """Resident memory a fresh process gains by reading the saved index: what a searcher holds."""
    code = ("import sys; sys.path[:0] = sys.argv[1:3]; from memory import rss_mb; "
            "from xsearch.ann import FaissIndex; before = rss_mb(); index = FaissIndex.load(sys.argv[3]); "
            "print(rss_mb() - before)")
    here = Path(__file__).resolve().parent
    done = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent), str(path)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def measure(index: FaissIndex, queries, base, ids, truth, nprobe: int | None, singles: int) -> dict:
    latencies = []
    for q in queries[:singles]:
        t = time.perf_counter()
        index.search(q, CANDIDATES, nprobe=nprobe)
        latencies.append(time.perf_counter() - t)
    t = time.perf_counter()
    _, found = index.search(queries, CANDIDATES, nprobe=nprobe)
    batch = time.perf_counter() - t
    positions = np.where(found >= 0, np.searchsorted(ids, found), -1)
    return {
        "p50": 1000 * float(np.percentile(latencies, 50)),
        "p95": 1000 * float(np.percentile(latencies, 95)),
        "qps": len(queries) / batch,
        "raw": recall(positions[:, :K], truth),
        "rescored": recall(rescore(queries, base, positions, K), truth),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the corpus")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension")
    parser.add_argument("--queries", type=int, default=1000, help="queries for recall and QPS")
    parser.add_argument("--singles", type=int, default=200, help="queries timed one by one")
    args = parser.parse_args(argv)

    t = time.perf_counter()
    data = clustered(args.n + args.queries, args.dim)
    base, queries = data[: args.n], data[args.n :]
    gaps = np.random.default_rng(1).integers(1, 1000, size=args.n)
    ids = (2**40 + np.cumsum(gaps)).astype(np.int64)  # sparse, sorted, > 32 bits
    truth = exact_top(queries, base, K)
    print(
        f"data: {args.n:,} x {args.dim} clustered vectors, {args.queries} queries, "
        f"{os.cpu_count()} cores; made with ground truth in {time.perf_counter() - t:.1f} s\n"
    )

    factories = ["Flat"]
    if choose_factory(args.n, args.dim) != "Flat":
        factories.append(choose_factory(args.n, args.dim))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for factory in factories:
            t = time.perf_counter()
            index = build(base, ids, factory=factory)
            build_s = time.perf_counter() - t
            path = Path(tmp) / "index.ann"
            index.save(path)
            per_vector = path.stat().st_size / args.n
            ram_mb = loaded_ram_mb(path)
            if index.nlist:
                d = default_nprobe(index.nlist)
                probes = sorted({max(1, d // 4), max(1, d // 2), d, 2 * d, 4 * d})
            else:
                probes = [None]
            for nprobe in probes:
                result = measure(index, queries, base, ids, truth, nprobe, args.singles)
                label = "-" if nprobe is None else str(nprobe)
                if nprobe is not None and nprobe == index.nprobe:
                    label += " (default)"
                rows.append((factory, label, build_s, per_vector, ram_mb, result))

    print(f"| index | nprobe | build s | bytes/vec on disk | RAM loaded | p50 ms | p95 ms | QPS (batch) "
          f"| recall@{K} raw | recall@{K} rescored top-{CANDIDATES} |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for factory, label, build_s, per_vector, ram_mb, r in rows:
        print(
            f"| {factory} | {label} | {build_s:.1f} | {per_vector:.0f} | {ram_mb:,.0f} MB | {r['p50']:.2f} "
            f"| {r['p95']:.2f} | {r['qps']:,.0f} | {r['raw']:.3f} | {r['rescored']:.3f} |"
        )
    data_mb = (base.nbytes + queries.nbytes) / 2**20
    print(f"\npeak RSS {peak_rss_mb():,.0f} MB, of which "
          f"{data_mb:,.0f} MB are the float32 vectors held for ground truth and re-scoring "
          "(an index keeps them on disk, as float16, in SQLite)")


if __name__ == "__main__":
    main()
