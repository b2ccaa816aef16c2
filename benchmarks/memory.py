"""Resident memory of this process, now and at its peak, for the benchmarks' tables."""

from __future__ import annotations

import resource


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
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
