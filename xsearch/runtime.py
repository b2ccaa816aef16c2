"""How xsearch meets the machine it runs on: process defaults and third-party runtimes.

- :func:`configure_process`: environment defaults for the whole process, set by the entry
  points (the CLI, the terminal UI, the HTTP service), never on import.
- :func:`faiss`: FAISS, imported once with xsearch's thread policy; every FAISS user goes
  through it.
- :func:`blas`: the process's BLAS libraries, found once, for limiting their threads.
- :func:`sha256_file`: a file's content hash, read in pieces.
- :func:`cache_dir`: where derived files (models, compiled encoders) are kept.

Nothing heavy is imported until one of these functions is called.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    from threadpoolctl import ThreadpoolController

BLAS_THREAD_TIMEOUT = "4"
"""``OPENBLAS_THREAD_TIMEOUT`` set by :func:`configure_process` unless the user set one."""


HEAP_MMAP_THRESHOLD = 128 * 1024
"""Blocks of memory this large or larger are mapped on their own and given back when freed
(see :func:`steady_heap`)."""
_M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the threshold (``malloc.h``)."""

def configure_process() -> None:
    """Set xsearch's environment defaults for this process; an explicit setting wins.

    numpy's OpenBLAS keeps idle worker threads spinning for about 0.1 s after each product; on a
    laptop's few cores they slow down the encoder's next query (5.7 ms instead of 7-8 ms per
    query on two cores, benchmarks/bench_query.py). OpenBLAS reads the timeout when numpy loads
    it, so this takes effect only when called before numpy is imported, as the entry points do.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)


def cache_dir() -> Path:
    """Where xsearch keeps what it builds or derives once (models, compiled encoders, the language
    model's arrays): ``$XSEARCH_CACHE_DIR`` or the user cache dir."""
    env = os.environ.get("XSEARCH_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xsearch"))


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@functools.cache
def faiss() -> ModuleType:
    """The ``faiss`` module, imported on first use, with one OpenMP thread per available core.

    OpenMP threads spin while they wait. When the cores are busy with other work
    too, that made training 6x slower (28 s against 4.5 s for 20k vectors on two
    loaded cores); waiting passively costs nothing measurable on idle cores. FAISS's
    bundled libgomp reads the policy once, when faiss loads it, so it is set for the
    import only, and an OMP_WAIT_POLICY the user set wins.
    """
    unset = "OMP_WAIT_POLICY" not in os.environ
    if unset:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import faiss as library
    finally:
        if unset:
            del os.environ["OMP_WAIT_POLICY"]
    library.omp_set_num_threads(cpu_count())
    return library


@functools.cache
def blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (finding them costs milliseconds per query)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """Send what native code prints to standard output to standard error meanwhile.

    Some FAISS routines ``printf`` progress unconditionally; on standard output that would mix
    with a command's results (``--json``). The C library's buffer is flushed before file
    descriptor 1 is restored, so nothing printed inside arrives after it.
    """
    import ctypes  # only here: not on every command's start

    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def steady_heap() -> None:
    """Keep glibc's mmap threshold at :data:`HEAP_MMAP_THRESHOLD` (elsewhere: nothing).

    glibc raises the threshold to the largest mapped block freed so far (up to 32 MB), so that
    after the first hidden states are freed, a run's token vectors and hidden states, made and
    freed by several threads, pile up in per-thread heaps that do not shrink. Fixed, each goes
    back when freed: a 600 KB file peaked at 1.6 GB instead of 2.1 GB, in the same time."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: not on every command's start

    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
    except (OSError, AttributeError):  # a C library without mallopt (musl)
        pass
