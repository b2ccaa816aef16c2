"""Helpers of the fault suite: run the real ``xsearch`` command and judge how it failed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXE = Path(sys.executable).with_name("xsearch")
COMMAND = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "xsearch.cli"]
TOPICS = ["volcanic eruptions and magma", "baking sourdough bread", "the history of coffee houses",
          "vaccines and the immune system", "the Apollo Moon landing", "photosynthesis in green leaves"]


def xsearch(*args: str | bytes | os.PathLike[str], stdin: bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command with ``args`` (bytes pass through as they are)."""
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, "PYTHONFAULTHANDLER": ""})


def start(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start the command without waiting (to kill it)."""
    return subprocess.Popen([*COMMAND, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[bytes], exit_code: int) -> str:
    """The one ``error:`` line of a failed command, after checking its exit code."""
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert result.returncode == exit_code, (result.returncode, stderr)
    return lines[0]


def make_docs(folder: Path, n: int = 12) -> Path:
    """A small folder of English notes, one topic each (cycled)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        (folder / f"note-{i:03d}.txt").write_text(
            f"Note {i} is about {topic}. " + " ".join(f"Sentence {j} adds detail on {topic}." for j in range(6)),
            encoding="utf-8")
    return folder


def chunk_texts(index: Path) -> list[tuple[str, str]]:
    """Every stored chunk as (document path, text), sorted: equal for equal indexes."""
    conn = sqlite3.connect(f"file:{index / 'xsearch.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT d.path, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id").fetchall()
    finally:
        conn.close()
    return sorted(rows)


def integrity(index: Path) -> str:
    conn = sqlite3.connect(f"file:{index / 'xsearch.db'}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# Kills: poll a running index from outside, then check what a kill left -------------------

MEMORY_CAP = 2 * 1024**3
"""Most resident memory one command may use on hostile input (peak RSS, in bytes)."""


@dataclass(frozen=True)
class Measured:
    """A finished command with its peak resident memory (from ``wait4``)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    peak_rss: int


def measured(*args: str | bytes | os.PathLike[str], stdin: bytes | None = None, timeout: float = 120,
             env: dict[str, str] | None = None) -> Measured:
    """Run the command like :func:`xsearch`, killing it after ``timeout`` s (the caller sees
    returncode -9 then), and measure its peak RSS. OpenVINO and numpy reserve far more address
    space than they touch, so resident memory, not an address-space limit, is what is capped.

    The peak is the child's own high-water mark (``VmHWM``), read while it runs: the
    ``ru_maxrss`` that ``wait4`` reports starts from the parent's resident size at the fork,
    so a large test process would be charged to every command it runs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*COMMAND, *args], stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=err,
                                env={**os.environ, "PYTHONFAULTHANDLER": "", **(env or {})})
        if stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        peak = 0
        try:
            while True:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    break
                peak = max(peak, _high_water_mark(proc.pid))
                time.sleep(0.02)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read(), err.read(), peak)


def _high_water_mark(pid: int) -> int:
    """Peak resident bytes of the running process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def committed(index: Path) -> tuple[int, int]:
    """(generation, chunks) of the index as another process sees it now; (-1, -1) while there
    is no database to read."""
    if not (index / "xsearch.db").is_file():
        return -1, -1
    try:
        conn = sqlite3.connect(f"file:{index / 'xsearch.db'}?mode=ro", uri=True, timeout=5)
        try:
            gen = conn.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1, -1
    return (int(gen[0]) if gen else -1), chunks


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay: float = 0.0,
              timeout: float = 120) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after ``ready()`` first holds (polled every few ms).
    Returns whether it was still running when killed."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline and not ready():
        time.sleep(0.005)
    if delay:
        time.sleep(delay)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def chunk_multiset(index: Path, root: Path | None = None) -> Counter[tuple[str, str]]:
    """Every stored chunk as (document path, text), paths relative to ``root`` if given, with
    multiplicity: two builds of the same files are equal, and a lost or doubled chunk shows."""
    rows = chunk_texts(index)
    if root is not None:
        prefix = str(root) + os.sep
        rows = [(path[len(prefix):] if path.startswith(prefix) else path, text) for path, text in rows]
    return Counter(rows)


def ann_ids(ann: Any) -> set[int] | None:
    """The ids a FAISS vector index holds, when it keeps them in an id map (exact indexes)."""
    import faiss

    inner = getattr(ann, "_index", None)
    id_map = getattr(inner, "id_map", None)
    if id_map is None:
        return None
    return {int(i) for i in faiss.vector_to_array(id_map)}


def check_survived(index: Path, encoder: Any = None, query: str = "volcanic magma") -> str:
    """What a kill left at ``index`` is usable: ``"absent"`` when no index was made (the command
    says so on one line, exit 4), else ``"ok"`` after checking that ``info`` works, SQLite's
    integrity check passes, the vector index holds exactly the stored chunks (and no saved file
    is ahead of the database), and a search answers only with stored chunks."""
    from xsearch import Index

    info = xsearch("info", "--json", "--index", index, timeout=120)
    if info.returncode != 0:
        one_line_error(info, 4)
        return "absent"
    stats = json.loads(info.stdout)
    assert integrity(index) == "ok"
    with Index.open(index, encoder=encoder) as opened:
        ids = {int(r[0]) for r in opened.store.db.execute("SELECT id FROM chunks")}
        generation = opened.store.generation
        assert stats["chunks"] == len(ids) and stats["generation"] == generation, (stats, len(ids), generation)
        ann = opened.vectors.sync(save=False)
        assert len(ann) == len(ids), (len(ann), len(ids))
        held = ann_ids(ann)
        assert held is None or held == ids
        for file in index.glob("ann-*.faiss"):
            saved = int(file.name[4:-6])
            assert saved <= generation, (file.name, generation)
        if generation in (files := {int(f.name[4:-6]): f for f in index.glob("ann-*.faiss")}):
            assert len(type(ann).load(files[generation])) == len(ids)
        hits = opened.search(query, k=5)
        assert len(hits) == min(5, len(ids)) and all(hit.chunk_id in ids for hit in hits)
    return "ok"
