"""The long kill loop: random SIGKILLs of real indexing processes in every phase, each followed by
the checks of ``tests/faults/test_fault_kills.py``.

    python benchmarks/faults.py                 # at least 10 minutes and at least 100 kills
    python benchmarks/faults.py --minutes 1 --runs 10

Work goes in chains. A chain starts a new index and kills its first run either at a random
moment of its creation or at its first commit; then kills one to three more processes, each in
a random phase: a run resuming the work (mid-run, after a group committed), a run removing files
deleted from the folder, ``xsearch rm`` of some files, ``Index.remove`` and ``Index.add_texts``
through the Python API. After every kill: the index opens (or the command says on one line, exit 4,
that none was made), ``info`` works, SQLite's integrity check passes, the vector index holds
exactly the stored chunks and no saved file is ahead of the database, and a search answers with
stored chunks only. A chain ends with runs that see the work through, whose chunks must equal,
as a multiset of (path, text), those of a clean build of the same files and texts. Prints a
table of probe / kills / failed and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from faultkit import check_survived, chunk_multiset, committed, make_docs, start, xsearch  # noqa: E402

from xsearch import Index  # noqa: E402

FILES = 140
"""Three groups of files (64, 64, 12)."""
GROUP = 64
TEXTS = [f"Text {n} of the API: {topic}." for n, topic in
         enumerate(["Lava cools into basalt.", "Der Sauerteig braucht Zeit.", "Le café est né au Yémen.",
                    "月面着陸は1969年だった。", "Las vacunas entrenan al sistema inmune."] * 20)]
IDS = [f"t{n}" for n in range(len(TEXTS))]

REMOVER = """
import sys
from xsearch import Index
with Index.open(sys.argv[1]) as index:
    index.remove(paths=sys.argv[2:])
"""
ADDER = """
import json, sys
from xsearch import Index
texts, ids = json.loads(sys.argv[2])
with Index.open(sys.argv[1]) as index:
    index.add_texts(texts, ids=ids)
"""

PROBES = ("creation", "first commit", "mid-run", "remove deleted files", "xsearch rm", "api remove", "api add_texts")


class Chain:
    """One index and its folder of documents, through a series of kills."""

    def __init__(self, root: Path, source: Path, rng: random.Random) -> None:
        self.docs = root / "docs"
        shutil.copytree(source, self.docs)
        self.index = root / "idx"
        self.rng = rng
        self.deleted: set[str] = set()
        self.texts = False

    def python(self, script: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", script, str(self.index), *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self, proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay: float,
             timeout: float = 180) -> bool:
        """SIGKILL ``proc`` ``delay`` s after ``ready()``; whether it was still running."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.005)
        time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return alive

    def run(self, probe: str) -> bool:
        """Start the process of ``probe`` and kill it; whether the kill hit a running process."""
        rng, index = self.rng, self.index
        gen = committed(index)[0]
        if probe == "creation":
            proc = start("index", self.docs, "--index", index, "-q")
            return self.kill(proc, lambda: True, rng.uniform(0.0, 4.0))
        if probe == "first commit":
            proc = start("index", self.docs, "--index", index, "-q")
            return self.kill(proc, lambda: committed(index)[1] > 0, rng.uniform(0.0, 0.05))
        if probe == "mid-run":
            proc = start("index", self.docs, "--index", index, "-q")
            return self.kill(proc, lambda: committed(index)[0] > gen, rng.uniform(0.0, 1.0))
        if probe == "remove deleted files":
            present = sorted(p for p in self.docs.iterdir())
            for path in rng.sample(present, k=min(len(present) - 1, rng.randint(10, 60))):
                path.unlink()
                self.deleted.add(path.name)
            proc = start("index", self.docs, "--index", index, "-q")
            return self.kill(proc, lambda: True, rng.uniform(0.5, 3.0))
        if probe == "xsearch rm":
            present = sorted(str(p) for p in self.docs.iterdir())
            proc = start("rm", *rng.sample(present, k=min(len(present), rng.randint(5, 40))), "--index", index)
            return self.kill(proc, lambda: True, rng.uniform(0.0, 0.4))
        if probe == "api remove":
            present = sorted(str(p) for p in self.docs.iterdir())
            proc = self.python(REMOVER, *rng.sample(present, k=min(len(present), rng.randint(5, 40))))
            return self.kill(proc, lambda: True, rng.uniform(0.0, 0.4))
        if probe == "api add_texts":
            import json

            self.texts = True
            proc = self.python(ADDER, json.dumps([TEXTS, IDS]))
            return self.kill(proc, lambda: True, rng.uniform(0.3, 3.0))
        raise ValueError(probe)

    def finish(self) -> None:
        """See the work through: index the folder, and add the texts again if they were added."""
        result = xsearch("index", self.docs, "--index", self.index, "-q")
        if result.returncode != 0:
            raise AssertionError(f"the re-run failed: {result.stderr.decode(errors='replace')}")
        if self.texts:
            proc = self.python(ADDER, __import__("json").dumps([TEXTS, IDS]))
            if proc.wait() != 0:
                raise AssertionError("adding the texts again failed")


def clean_build(root: Path, docs: Path, encoder: object) -> tuple[Counter, Counter]:
    """The chunks of a clean build: of the files (paths relative to ``docs``) and of the texts."""
    with Index.create(root / "clean", encoder=encoder) as index:
        index.add_paths([docs])
        files = chunk_multiset(root / "clean", docs)
        index.add_texts(TEXTS, ids=IDS)
    texts = chunk_multiset(root / "clean", docs) - files
    return files, texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run at least this long [10]")
    parser.add_argument("--runs", type=int, default=100, help="and kill at least this many processes [100]")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from xsearch.embed.encoder import Encoder

    rng = random.Random(args.seed)
    encoder = Encoder.load("multilingual-e5-small")
    kills: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    failures: list[str] = []
    chains = chain_failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="xsearch-faults-") as tmp:
        work = Path(tmp)
        source = make_docs(work / "source", FILES)
        files_expected, texts_expected = clean_build(work, source, encoder)
        while time.monotonic() - started < args.minutes * 60 or sum(kills.values()) < args.runs:
            chains += 1
            chain = Chain(work / f"chain{chains}", source, rng)
            probes = [rng.choice(PROBES[:2])] + rng.choices(PROBES[2:], k=rng.randint(1, 3))
            for probe in probes:
                if not chain.run(probe):
                    missed[probe] += 1
                    continue
                kills[probe] += 1
                try:
                    check_survived(chain.index, encoder)
                except Exception as exc:  # noqa: BLE001 - counted and reported below
                    failed[probe] += 1
                    failures.append(f"chain {chains}, {probe}: {''.join(traceback.format_exception_only(exc)).strip()}")
            try:
                chain.finish()
                expected = Counter({k: n for k, n in files_expected.items() if k[0] not in chain.deleted})
                if chain.texts:
                    expected += texts_expected
                got = chunk_multiset(chain.index, chain.docs)
                if got != expected:
                    raise AssertionError(f"re-run differs from a clean build: {len(got - expected)} extra, "
                                         f"{len(expected - got)} missing chunks")
                check_survived(chain.index, encoder)
            except Exception as exc:  # noqa: BLE001 - counted and reported below
                chain_failures += 1
                failures.append(f"chain {chains}, re-run: {''.join(traceback.format_exception_only(exc)).strip()}")
            shutil.rmtree(work / f"chain{chains}", ignore_errors=True)
            elapsed = time.monotonic() - started
            print(f"[{elapsed / 60:5.1f} min] chain {chains}: {' → '.join(probes)}; "
                  f"{sum(kills.values())} kills, {sum(failed.values()) + chain_failures} failed", file=sys.stderr)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{sum(kills.values())} kills in {chains} chains, {minutes:.1f} minutes (seed {args.seed})\n")
    print("| probe | kills | failed |")
    print("|---|---|---|")
    for probe in PROBES:
        print(f"| {probe} | {kills[probe]} | {failed[probe]} |")
    print(f"| re-run equals a clean build (per chain) | {chains} | {chain_failures} |")
    print(f"| **all** | **{sum(kills.values())}** | **{sum(failed.values()) + chain_failures}** |")
    if sum(missed.values()):
        print(f"\n(processes that ended before their kill, not counted: {dict(missed)})")
    for line in failures[:20]:
        print("FAILED", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
