"""Cold-process start-up: how long a fresh process takes to answer, against bare imports.

    python benchmarks/bench_startup.py [--chunks 100000] [--runs 5] [--only search,index] [--rebuild]

Each row is the wall time of a new process, median of ``--runs`` taken in turns with the other
rows (after one untimed turn that fills the page cache), with the default model already built:

- ``xsearch search`` (dense with rerank, the default options) and ``--mode lexical`` on an
  index of ``--chunks`` chunks, built as ``benchmarks/bench_query.py`` builds it and kept in
  ``$XSEARCH_BENCH_CACHE`` (default: the temp folder) for later runs;
- ``xsearch tui`` until the first results are shown (Textual's ``App.run_test()``);
- ``xsearch index`` of a folder of one file into a new index;
- the README's five-line Python example (a new index of three texts, searched once).

Each is shown as a ratio to ``python -c "import numpy, faiss, openvino, tokenizers, sqlite3"``,
timed the same way in the same run: the libraries any query needs, and nothing of xsearch.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY = "wie wandeln Pflanzen Licht in Energie um?"
BARE = "import numpy, faiss, openvino, tokenizers, sqlite3"
TUI = '''
import asyncio, sys
from pathlib import Path
from xsearch.runtime import configure_process

configure_process()
from textual.widgets import Input

from xsearch.tui.app import XsearchApp
from xsearch.tui.widgets import ResultList


async def first_result(query: str) -> None:
    app = XsearchApp(Path(sys.argv[1]))
    async with app.run_test(size=(100, 30)) as pilot:
        app.query_one("#query", Input).value = query  # pasted, not typed key by key
        await pilot.press("enter")
        results = app.query_one(ResultList)
        while not (app.last_query == query and results.hits):
            await pilot.pause(0.01)


asyncio.run(first_result(sys.argv[2]))
'''


def xsearch_command() -> list[str]:
    exe = Path(sys.executable).with_name("xsearch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "xsearch.cli"]


def readme_example() -> str:
    """The five-line example of the README's "Python API" section."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


@dataclass
class Row:
    """One process to time: its command, what must happen before each run, and where it runs."""

    name: str
    command: list[str]
    prepare: Callable[[], None] | None = None
    cwd: Path = ROOT
    seconds: list[float] = field(default_factory=list)

    def run(self) -> float:
        """Seconds a new process takes (``prepare`` runs first, untimed)."""
        if self.prepare is not None:
            self.prepare()
        start = time.perf_counter()
        result = subprocess.run(self.command, capture_output=True, text=True, cwd=self.cwd)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{self.name} failed:\n{result.stderr}")
        return seconds


def timed(rows: list[Row], runs: int) -> None:
    """Run every row ``runs`` times, in turns, so that all see the same load on a shared machine
    (after one untimed turn that fills the page cache)."""
    for turn in range(runs + 1):
        for row in rows:
            seconds = row.run()
            if turn:
                row.seconds.append(seconds)


def large_index(chunks: int, rebuild: bool) -> Path:
    """An index of ``chunks`` chunks (see ``bench_query.fill``), built once and kept."""
    cache = Path(os.environ.get("XSEARCH_BENCH_CACHE") or Path(tempfile.gettempdir()) / "xsearch-bench")
    path = cache / f"startup-{chunks}"
    if rebuild:
        shutil.rmtree(path, ignore_errors=True)
    if (path / "done").is_file():
        return path / "index"
    shutil.rmtree(path, ignore_errors=True)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from bench_query import BIBLE, fill

    from xsearch import Index

    if not BIBLE.is_dir():
        raise SystemExit(f"skipped: needs {BIBLE}")
    print(f"building a {chunks:,}-chunk index in {path} (once)...", file=sys.stderr)
    with Index.create(path / "index") as index:
        fill(index, chunks, np.random.default_rng(0))
        index.vectors.sync(save=True)
    (path / "done").touch()
    return path / "index"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="search,lexical,tui,index,python",
                        help="comma-separated rows to run [default: all]")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached index")
    args = parser.parse_args()
    only = set(args.only.split(","))
    xsearch = xsearch_command()
    subprocess.run([*xsearch, "embed", "hallo"], capture_output=True, check=True)  # the model is built
    rows = [Row("bare imports: `" + BARE + "`", [sys.executable, "-c", BARE])]
    if only & {"search", "lexical", "tui"}:
        index = str(large_index(args.chunks, args.rebuild))
        size = f"{args.chunks:,} chunks"
        rows += [row for key, row in (
            ("search", Row(f"`xsearch search` ({size}, dense + rerank)", [*xsearch, "search", QUERY, "--index", index])),
            ("lexical", Row(f"`xsearch search --mode lexical` ({size})",
                            [*xsearch, "search", QUERY, "--index", index, "--mode", "lexical"])),
            ("tui", Row(f"`xsearch tui` to the first results ({size})", [sys.executable, "-c", TUI, index, QUERY])),
        ) if key in only]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "docs"
        folder.mkdir()
        shutil.copy(ROOT / "data" / "sample" / "photosynthesis" / "de.txt", folder)
        target = work / "my-index"  # the name the README's example uses

        def fresh() -> None:
            shutil.rmtree(target, ignore_errors=True)

        rows += [row for key, row in (
            ("index", Row("`xsearch index` of one file into a new index",
                          [*xsearch, "index", str(folder), "--index", str(target), "-q"], fresh)),
            ("python", Row("README's Python example (new index, 3 texts, 1 search)",
                           [sys.executable, "-c", readme_example()], fresh, work)),
        ) if key in only]
        timed(rows, args.runs)

    bare = statistics.median(rows[0].seconds)
    print(f"\n{os.cpu_count()} cores, median of {args.runs} cold processes (taken in turns), default backend\n")
    print("| process | seconds | × bare imports |\n|---|---|---|")
    for row in rows:
        seconds = statistics.median(row.seconds)
        print(f"| {row.name} | {seconds:.2f} | {seconds / bare:.1f} |")


if __name__ == "__main__":
    main()
