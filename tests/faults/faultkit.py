"""Helpers of the fault suite: run the real ``xsearch`` command and judge how it failed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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
