"""Resident memory of this process, now and at its peak, for the benchmarks' tables; and, run
as a script, the peak of ``xsearch index`` over each folder given, in a fresh index:

    python benchmarks/memory.py FOLDER [FOLDER ...]

prints one row per folder: chunks, seconds, chunks/s and peak RSS (the command's own
``VmHWM``, read while it runs).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(field: str, pid: int | str = "self") -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def rss_mb() -> float | None:
    """This process's resident set size now, in MB (None where /proc is not there)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB since it started (or last exec'd).

    ``getrusage``'s ``ru_maxrss`` survives ``exec`` on Linux, so a child process started by a
    big parent would report the parent's peak; ``VmHWM`` in ``/proc/self/status`` belongs to the
    process's own address space.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux; other systems differ


def index_peak(folder: Path, index: Path) -> tuple[dict, float]:
    """Run ``xsearch index folder --index index --json``: its report and its peak RSS in MB."""
    command = [sys.executable, "-m", "xsearch.cli", "index", str(folder), "--index", str(index), "--json"]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _status_mb("VmHWM", proc.pid) or 0.0)
            time.sleep(0.02)
        if proc.returncode:
            raise SystemExit(f"xsearch index {folder} exited with {proc.returncode}")
        out.seek(0)
        return json.loads(out.read()), peak


def main() -> None:
    print("| folder | chunks | seconds | chunks/s | peak RSS (MB) |\n|---|---:|---:|---:|---:|")
    for folder in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            report, peak = index_peak(Path(folder), Path(tmp) / "index")
        chunks, seconds = report["chunks_added"], report["seconds"]
        name = os.path.basename(folder.rstrip(os.sep))
        print(f"| {name} | {chunks} | {seconds:.1f} | {chunks / seconds:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
