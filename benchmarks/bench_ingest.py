"""End-to-end ingestion: `xsearch index` over a generated multilingual folder.

    python benchmarks/bench_ingest.py [--files 2000] [--configs serial-torch,pipelined-torch,pipelined-onnx,pipelined-openvino]

Writes ``--files`` files (.txt, .md, .html and .jsonl, in turn) from the bible-nt-7 passages of
../shared/data (seven languages; the bundled sample corpus, repeated, when that is absent) and
indexes the folder once per configuration, each into a fresh index, in its own process so
that peak RSS is its own. Prints a markdown table: files/s, chunks/s, seconds, peak RSS and
CPU use (CPU seconds / wall seconds / cores), each run against the first configuration.

Configurations: ``serial`` reads, chunks and embeds one group after another; ``pipelined``
reads and chunks ahead in a thread (the default); ``torch`` / ``onnx`` / ``openvino`` is the
encoder backend. Model loading (and the one-off int8 builds, made beforehand) is not counted.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import peak_rss_mb  # noqa: E402  (benchmarks/memory.py)

BIBLE = ROOT.parent / "shared" / "data" / "bible-nt-7" / "corpus.jsonl"


def passages() -> list[tuple[str, str]]:
    """(title, text) pairs to write files from."""
    if BIBLE.is_file():
        rows = [json.loads(line) for line in open(BIBLE, encoding="utf-8")]
        return [(row.get("title") or row["_id"], row["text"]) for row in rows]
    out = []
    for file in sorted((ROOT / "data" / "sample").rglob("*.txt")) + sorted((ROOT / "data" / "sample").rglob("*.md")):
        out.append((file.stem, file.read_text(encoding="utf-8")))
    return out


def write_folder(folder: Path, n_files: int) -> None:
    rows = passages()
    folder.mkdir(parents=True)
    for n in range(n_files):
        title, text = rows[n % len(rows)]
        if n >= len(rows):
            text = f"{text} ({n // len(rows)})"  # a copy must differ, or its hash would match
        kind = n % 4
        if kind == 0:
            (folder / f"doc{n:05d}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
        elif kind == 1:
            (folder / f"doc{n:05d}.md").write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
        elif kind == 2:
            body = f"<html><head><title>{html.escape(title)}</title></head><body><p>{html.escape(text)}</p></body></html>"
            (folder / f"doc{n:05d}.html").write_text(body, encoding="utf-8")
        else:
            (folder / f"doc{n:05d}.jsonl").write_text(json.dumps({"title": title, "text": text}, ensure_ascii=False)
                                                      + "\n", encoding="utf-8")


def run_one(folder: str, index_dir: str, config: str) -> None:
    """In a child process: index ``folder`` with ``config`` and print one JSON line of figures."""
    from xsearch import Index, pipeline

    reading, backend = config.split("-")
    with Index.create(index_dir, backend=backend) as index:
        index.warm()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = pipeline.index_paths(index, [folder], prefetch=0 if reading == "serial" else pipeline.PREFETCH_GROUPS)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(json.dumps({"files": report.files_added, "chunks": report.chunks_added, "seconds": wall, "cpu": cpu,
                      "rss_mb": peak_rss_mb(),
                      "skipped": len(report.skipped)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--configs", default="serial-torch,pipelined-torch,pipelined-onnx,pipelined-openvino")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child)
        return

    configs = args.configs.split(",")
    from xsearch.config import DEFAULT_MODEL
    from xsearch.embed.encoder import Encoder

    for backend in {c.split("-")[1] for c in configs} - {"torch"}:  # one-off builds are not part of any run
        Encoder.load(DEFAULT_MODEL, backend=backend)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        write_folder(folder, args.files)
        for n, config in enumerate(configs):
            done = subprocess.run([sys.executable, __file__, "--child", str(folder), str(Path(tmp) / f"idx{n}"), config],
                                  capture_output=True, text=True, check=True)
            rows.append((config, json.loads(done.stdout.strip().splitlines()[-1])))
            print(f"done: {config}", file=sys.stderr)

    cores = os.cpu_count() or 1
    base = rows[0][1]
    print(f"\n{args.files} files ({rows[0][1]['chunks']} chunks), {cores} cores\n")
    print("| configuration | files/s | chunks/s | × | seconds | peak RSS | CPU use |")
    print("|---|---|---|---|---|---|---|")
    for config, r in rows:
        print(f"| {config} | {r['files'] / r['seconds']:.1f} | {r['chunks'] / r['seconds']:.1f} | "
              f"{base['seconds'] / r['seconds']:.2f} | {r['seconds']:.1f} | {r['rss_mb']:,.0f} MB | "
              f"{r['cpu'] / r['seconds'] / cores:.0%} |")


if __name__ == "__main__":
    main()
