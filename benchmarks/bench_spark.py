"""Ingestion on Apache Spark: `xsearch index --engine spark` at local[1] and local[2] against the
plain `xsearch index`, on the same folder.

    python benchmarks/bench_spark.py [--files 600] [--per-file 1] [--repeat 2] [--corpus DIR]
        [--configs plain,spark-1,spark-2] [--merge]

Writes ``--files`` generated multilingual files (bench_ingest.py's folder: bible-nt-7 passages in
seven languages as .txt, .md, .html and .jsonl; the sample corpus, repeated, without
../shared/data), or takes ``--corpus``, and indexes it into a fresh index once per configuration,
each in its own process, the configurations taking turns ``--repeat`` times (a load on the
machine then falls on all of them alike); each figure is the median of its runs.

``plain`` is ``Index.add_paths`` (the local pipeline, encoder loaded beforehand, as
bench_ingest.py times it); ``spark-N`` is ``Index.add_paths(engine="spark")`` on a ``local[N]``
session started beforehand (``start s``) and warmed, as ``plain``'s encoder is, by a first run
over ``2N`` files (``warm-up s``: the first job of a session starts the Python workers, which
load the encoder, and the JVM's query machinery; ``--cold`` times that first job instead). The
timed run includes the job, the bulk load, and, as for ``plain``, the vector index and the
translation links. Prints a markdown table: chunks/s, seconds, and chunks/s against ``plain``
and against ``spark-1``.

``--merge`` then runs the synthetic shard-and-merge benchmark of the vector index
(benchmarks/bench_shards.py, its ``main``) when that file is there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_ingest import write_folder  # noqa: E402  (benchmarks/bench_ingest.py)

CONFIGS = "plain,spark-1,spark-2"


def run_one(folder: str, index_dir: str, config: str, warm: bool) -> None:
    """In a child process: index ``folder`` with ``config`` and print one JSON line of figures."""
    from xsearch import Index

    with Index.create(index_dir) as index:
        index.warm()
        if config == "plain":
            started = time.perf_counter()
            report = index.add_paths([folder])
            print(json.dumps({"chunks": report.chunks_added, "seconds": time.perf_counter() - started, "start": 0.0,
                              "warm": 0.0}))
            return
        from xsearch.spark import spark_session

        cores = int(config.split("-")[1])
        started = time.perf_counter()
        with spark_session(f"local[{cores}]"), tempfile.TemporaryDirectory() as scratch:
            start = time.perf_counter() - started
            started = time.perf_counter()
            if warm:  # a first job on a few files: the JVM's, the Python workers' and their encoders' start
                write_folder(Path(scratch) / "docs", 2 * cores)
                with Index.create(Path(scratch) / "index", encoder=index.encoder) as first:
                    first.add_paths([Path(scratch) / "docs"], engine="spark", partitions=cores)
            warmed = time.perf_counter() - started
            started = time.perf_counter()
            report = index.add_paths([folder], engine="spark", partitions=cores * 4)
            seconds = time.perf_counter() - started
        print(json.dumps({"chunks": report.chunks_added, "seconds": seconds, "start": start, "warm": warmed,
                          "stages": {k: round(v, 2) for k, v in report.stages.items()}}))


def take_turns(folder: Path, scratch: Path, configs: list[str], repeat: int, cold: bool) -> dict[str, list[dict]]:
    """Index ``folder`` ``repeat`` times with each configuration, in turn, each run in a child
    process writing a fresh index under ``scratch``; the figures of each run, by configuration."""
    runs: dict[str, list[dict]] = {config: [] for config in configs}
    for turn, config in ((t, c) for t in range(repeat) for c in configs):
        child = [sys.executable, __file__, "--child", str(folder), str(scratch / f"index-{turn}-{config}"), config]
        done = subprocess.run(child + (["--cold"] if cold else []), capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{config} failed:\n{done.stderr}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        runs[config].append(figures)
        print(f"turn {turn + 1} {config}: {figures['chunks']} chunks in {figures['seconds']:.1f} s "
              f"{figures.get('stages', '')}", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--per-file", type=int, default=1, help="Passages per generated file.")
    parser.add_argument("--corpus", type=Path, help="Index this folder instead of generating one.")
    parser.add_argument("--repeat", type=int, default=2, help="Runs of each configuration, taking turns.")
    parser.add_argument("--configs", default=CONFIGS)
    parser.add_argument("--cold", action="store_true",
                        help="Time the first Spark job of a session (no warm-up job beforehand).")
    parser.add_argument("--merge", action="store_true", help="Also run benchmarks/bench_shards.py, if present.")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child, warm=not args.cold)
        return
    configs = args.configs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if args.corpus is None:
            write_folder(Path(tmp) / "docs", args.files, args.per_file)
        runs = take_turns(args.corpus or Path(tmp) / "docs", Path(tmp), configs, args.repeat, args.cold)
    rate = {c: statistics.median(r["chunks"] / r["seconds"] for r in runs[c]) for c in configs}
    print(f"\n{runs[configs[0]][0]['chunks']} chunks, median of {args.repeat} runs each\n")
    print("| configuration | chunks/s | seconds | start s | warm-up s | vs plain | vs spark-1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for config in configs:
        seconds, start, warm = (statistics.median(r[key] for r in runs[config]) for key in ("seconds", "start", "warm"))
        plain = f"{rate[config] / rate['plain']:.2f}×" if "plain" in rate else "–"
        one = f"{rate[config] / rate['spark-1']:.2f}×" if "spark-1" in rate and config != "plain" else "–"
        print(f"| {config} | {rate[config]:.1f} | {seconds:.1f} | {start:.1f} | {warm:.1f} | {plain} | {one} |")
    if args.merge:
        if (HERE / "bench_shards.py").is_file():
            from bench_shards import main as shards_main

            sys.argv = [sys.argv[0]]
            shards_main()
        else:
            print("\n(benchmarks/bench_shards.py is not there: no shard-and-merge figures)")


if __name__ == "__main__":
    main()
