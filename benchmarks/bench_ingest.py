"""End-to-end ingestion: `xsearch index` over a generated multilingual folder.

    python benchmarks/bench_ingest.py [--files 2000] [--per-file 1] [--repeat 1] [--busy 0]
        [--configs serial-openvino,ahead-openvino,pipelined-openvino] [--corpus DIR]
    python benchmarks/bench_ingest.py --articles   # long articles: sentence-transformers against xsearch

Writes ``--files`` files (.txt, .md, .html and .jsonl, in turn) of ``--per-file`` bible-nt-7
passages each, from ../shared/data (seven languages; the bundled sample corpus, repeated, when
that is absent), or takes the folder ``--corpus``, and indexes it once per configuration, each
into a fresh index, in its own process so that peak RSS is its own. With ``--repeat`` the
configurations take turns that many times and each figure is the median, so that a load on the
machine falls on all of them alike. Prints two markdown tables: files/s, chunks/s, seconds,
peak RSS and CPU use (CPU seconds / wall seconds / cores), each run against the first
configuration, with each run's seconds and the CPU seconds other processes took meanwhile (on
a machine shared with other work, a run that shared it is slower); and the seconds each stage
took (``IndexReport.stages``: a stage that runs in a thread of its own overlaps the others, so
the stages add up to more than the wall time). ``--busy N`` keeps N processes spinning beside
each run, as another program on the same cores would.

Configurations: ``serial`` reads, chunks, embeds and commits one group after another in one
thread; ``ahead`` reads and chunks ahead in a thread of its own; ``pipelined`` (the default)
also commits behind the encoder in another. ``torch`` / ``onnx`` / ``openvino`` is the encoder
backend. ``st-fp32`` is the baseline a user would write without xsearch: the same files' text
(extracted beforehand, untimed), cut into chunks of :data:`ST_SENTENCES` sentences, through
sentence-transformers ``encode`` in fp32 (batch size 32, the passage prefix); it times only the
encoder, with no language detection, token vectors or storage. ``--articles`` runs that baseline
against the whole ``xsearch index`` on long articles: 60 files of 10 consecutive passages each
(about 2,000 tokens, one language a file). Model loading (and the one-off int8 builds, made
beforehand) is not counted.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import peak_rss_mb  # noqa: E402  (benchmarks/memory.py)

BIBLE = ROOT.parent / "shared" / "data" / "bible-nt-7" / "corpus.jsonl"
READING = {"serial": (0, 0), "ahead": (2, 0), "pipelined": (2, 1)}
"""Groups read ahead of the encoder and committed behind it, by configuration."""
ST_SENTENCES = 6
"""Sentences per chunk of the ``st-fp32`` baseline."""
ARTICLES = {"files": 60, "per_file": 10, "configs": "st-fp32,pipelined-openvino"}
"""What ``--articles`` sets."""
STAGE_COLUMNS = ("scan", "read", "language", "chunk", "embed", "write", "vector index", "links")


def passages() -> list[tuple[str, str]]:
    """(title, text) pairs to write files from."""
    if BIBLE.is_file():
        rows = [json.loads(line) for line in open(BIBLE, encoding="utf-8")]
        return [(row.get("title") or row["_id"], row["text"]) for row in rows]
    out = []
    for file in sorted((ROOT / "data" / "sample").rglob("*.txt")) + sorted((ROOT / "data" / "sample").rglob("*.md")):
        out.append((file.stem, file.read_text(encoding="utf-8")))
    return out


def write_folder(folder: Path, n_files: int, per_file: int = 1) -> None:
    """``n_files`` files of ``per_file`` consecutive passages (one language) each."""
    rows = passages()
    folder.mkdir(parents=True)
    for n in range(n_files):
        first = n * per_file
        picked = [rows[(first + i) % len(rows)] for i in range(per_file)]
        title = picked[0][0]
        text = "\n\n".join(t for _, t in picked)
        if first >= len(rows):
            text = f"{text} ({first // len(rows)})"  # a copy must differ, or its hash would match
        kind = n % 4
        if kind == 0:
            (folder / f"doc{n:05d}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
        elif kind == 1:
            (folder / f"doc{n:05d}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
        elif kind == 2:
            body = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n"))
            body = f"<html><head><title>{html.escape(title)}</title></head><body>{body}</body></html>"
            (folder / f"doc{n:05d}.html").write_text(body, encoding="utf-8")
        else:
            (folder / f"doc{n:05d}.jsonl").write_text(json.dumps({"title": title, "text": text}, ensure_ascii=False)
                                                      + "\n", encoding="utf-8")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (0 where /proc/stat is not there)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_sentence_transformers(folder: str) -> dict:
    """The ``st-fp32`` baseline on the files of ``folder``: figures as :func:`run_one` prints them."""
    from sentence_transformers import SentenceTransformer

    from xsearch.config import DEFAULT_MODEL
    from xsearch.embed.registry import resolve_model
    from xsearch.ingest import discover, extract
    from xsearch.ingest.chunk import split_sentences
    from xsearch.types import SourceFile

    resolved = resolve_model(DEFAULT_MODEL)
    prefix = resolved.passage_prefix
    model = SentenceTransformer(str(resolved.path), device="cpu", local_files_only=True)
    files = [item for item in discover([folder]) if isinstance(item, SourceFile)]
    chunks = []
    for source in files:
        for doc in extract(source):
            spans = split_sentences(doc.text)
            for n in range(0, len(spans), ST_SENTENCES):
                part = spans[n : n + ST_SENTENCES]
                chunks.append(prefix + doc.text[part[0][0] : part[-1][1]])
    model.encode(chunks[:32], batch_size=32)  # warm, as the xsearch runs are
    cpu0, wall0, busy0 = time.process_time(), time.perf_counter(), busy_seconds()
    model.encode(chunks, batch_size=32, normalize_embeddings=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"files": len(files), "chunks": len(chunks), "seconds": wall, "cpu": cpu,
            "others": max(busy_seconds() - busy0 - cpu, 0.0), "rss_mb": peak_rss_mb(), "skipped": 0,
            "stages": {"embed": wall}}


def run_one(folder: str, index_dir: str, config: str) -> None:
    """In a child process: index ``folder`` with ``config`` and print one JSON line of figures."""
    from xsearch import Index, pipeline

    if config == "st-fp32":
        print(json.dumps(run_sentence_transformers(folder)))
        return
    reading, backend = config.split("-")
    prefetch, behind = READING[reading]
    with Index.create(index_dir, backend=backend) as index:
        index.warm()
        cpu0, wall0, busy0 = time.process_time(), time.perf_counter(), busy_seconds()
        target = pipeline.Target(index.store, index.config, lambda: index.encoder)
        report = pipeline.index_paths(target, [folder], prefetch=prefetch, behind=behind)
        stages = {**report.stages, **index._derive()}  # what Index.add_paths runs after the pipeline
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        others = max(busy_seconds() - busy0 - cpu, 0.0)
    print(json.dumps({"files": report.files_added, "chunks": report.chunks_added, "seconds": wall, "cpu": cpu,
                      "others": others, "rss_mb": peak_rss_mb(), "skipped": len(report.skipped),
                      "stages": stages}))


def median_run(runs: list[dict]) -> dict:
    """The median of each figure of ``runs`` (the same folder, so the same counts)."""
    out = dict(runs[0])
    for key in ("seconds", "cpu", "rss_mb"):
        out[key] = statistics.median(r[key] for r in runs)
    out["stages"] = {name: statistics.median(r["stages"].get(name, 0.0) for r in runs) for name in runs[0]["stages"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--per-file", type=int, default=1, help="Passages per generated file.")
    parser.add_argument("--corpus", type=Path, help="Index this folder instead of generating one.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs of each configuration, taking turns.")
    parser.add_argument("--busy", type=int, default=0,
                        help="Busy processes beside each run, as on a machine shared with other work.")
    parser.add_argument("--configs", default="serial-openvino,ahead-openvino,pipelined-openvino")
    parser.add_argument("--articles", action="store_true",
                        help="Long articles, sentence-transformers fp32 against xsearch: " + ", ".join(
                            f"--{k.replace('_', '-')} {v}" for k, v in ARTICLES.items()) + ".")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child)
        return
    if args.articles:
        vars(args).update(ARTICLES)

    configs = args.configs.split(",")
    from xsearch.config import DEFAULT_MODEL
    from xsearch.embed.encoder import Encoder

    for backend in {c.split("-")[1] for c in configs} - {"torch", "fp32"}:  # one-off builds are not part of any run
        Encoder.load(DEFAULT_MODEL, backend=backend)
    runs: dict[str, list[dict]] = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.corpus or Path(tmp) / "docs"
        if args.corpus is None:
            write_folder(folder, args.files, args.per_file)
        for turn in range(args.repeat):
            for n, config in enumerate(configs):
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
                try:
                    done = subprocess.run([sys.executable, __file__, "--child", str(folder),
                                           str(Path(tmp) / f"idx{turn}-{n}"), config], capture_output=True, text=True)
                finally:
                    for process in busy:
                        process.kill()
                        process.wait()
                if done.returncode:
                    sys.exit(f"{config} failed:\n{done.stderr}")
                runs[config].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"done: {config} ({turn + 1}/{args.repeat})", file=sys.stderr)
    rows = [(config, median_run(runs[config])) for config in configs]

    cores = os.cpu_count() or 1
    base = rows[0][1]
    source = args.corpus or f"{args.files} files of {args.per_file} passage(s)"
    beside = f", {args.busy} busy process(es) beside each run" if args.busy else ""
    print(f"\n{source}: {base['files']} files, {cores} cores, median of {args.repeat}{beside}\n")
    print("| configuration | files/s | chunks/s | × | seconds | each run: seconds (CPU seconds of other processes) "
          "| peak RSS | CPU use |")
    print("|---|---|---|---|---|---|---|---|")
    for config, r in rows:
        each = " / ".join(f"{run['seconds']:.1f} ({run['others']:.0f})" for run in runs[config])
        print(f"| {config} | {r['files'] / r['seconds']:.1f} | {r['chunks'] / r['seconds']:.1f} | "
              f"{base['seconds'] / r['seconds']:.2f} | {r['seconds']:.1f} | {each} | {r['rss_mb']:,.0f} MB | "
              f"{r['cpu'] / r['seconds'] / cores:.0%} |")
    print("\nSeconds per stage (share of the run's wall time):\n")
    print("| configuration | " + " | ".join(STAGE_COLUMNS) + " | wall |")
    print("|---" * (len(STAGE_COLUMNS) + 2) + "|")
    for config, r in rows:
        cells = [f"{r['stages'].get(name, 0.0):.1f} ({r['stages'].get(name, 0.0) / r['seconds']:.0%})"
                 for name in STAGE_COLUMNS]
        print(f"| {config} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
