"""Readers in threads and in other processes search while a real ``xsearch index`` writes: none
errors, each sees only whole committed groups of files, every hit is a committed chunk; a second
writer is refused with exit code 7 on one line and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from faultkit import check_survived, chunk_multiset, committed, make_docs, one_line_error, start, xsearch

from xsearch import Index

FILES = 200
GROUP = 64
WHOLE_GROUPS = {*range(0, FILES, GROUP), FILES}
"""File counts a reader may see: the run commits 64 files at a time."""
QUERIES = ["volcanic magma", "sourdough bread", "the Moon landing", "Impfstoffe und Immunsystem"]

READER = """
import json, sys, time
from pathlib import Path
from xsearch import Index
index, stop = Index.open(sys.argv[1]), Path(sys.argv[2])
queries = json.loads(sys.argv[3])
n = 0
while not stop.exists():
    info = index.info()
    hits = index.search(queries[n % len(queries)], k=5)
    print(json.dumps({"files": info.files, "documents": info.documents, "chunks": info.chunks,
                      "hits": [[hit.path, hit.text] for hit in hits]}), flush=True)
    n += 1
"""


def _record(info, hits) -> dict:
    return {"files": info.files, "documents": info.documents, "chunks": info.chunks,
            "hits": [[hit.path, hit.text] for hit in hits]}


def test_readers_see_only_committed_groups_while_a_writer_runs(tmp_path: Path, encoder) -> None:
    docs = make_docs(tmp_path / "docs", FILES)
    index_path = tmp_path / "idx"
    stop = tmp_path / "stop"
    writer = start("index", docs, "--index", index_path, "-q")
    deadline = time.monotonic() + 120
    while committed(index_path)[0] < 0 and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(index_path), str(stop), json.dumps(QUERIES)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]

    seen: list[tuple[str, dict]] = []
    errors: list[str] = []
    index = Index.open(index_path, encoder=encoder)

    def read(name: str) -> None:
        n = 0
        try:
            while not stop.exists():
                info = index.info()
                seen.append((name, _record(info, index.search(QUERIES[n % len(QUERIES)], k=5))))
                n += 1
        except BaseException:  # noqa: BLE001 - reported by the test below
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=read, args=(f"thread{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    while committed(index_path)[1] <= 0 and writer.poll() is None:
        time.sleep(0.01)
    second = xsearch("index", docs, "--index", index_path, "-q")
    assert writer.wait(timeout=600) == 0
    stop.touch()
    for thread in threads:
        thread.join(timeout=120)
    index.close()
    for n, proc in enumerate(readers):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        seen += [(f"process{n}", json.loads(line)) for line in out.decode().splitlines()]

    assert not errors, errors[0]
    assert "another xsearch process is writing" in one_line_error(second, 7)
    final = chunk_multiset(index_path)
    assert sum(final.values()) == FILES
    for name in {who for who, _ in seen}:
        counts = [record["files"] for who, record in seen if who == name]
        assert counts == sorted(counts), name  # never backwards
    for _, record in seen:
        assert record["files"] in WHOLE_GROUPS and record["documents"] == record["chunks"] == record["files"], record
        assert min(5, record["chunks"]) <= len(record["hits"]) <= 5  # searched a moment after info
        assert all((path, text) in final for path, text in record["hits"]), record["hits"]
    during = {record["files"] for _, record in seen} - {FILES}
    assert during, "no read happened while the writer ran"
    assert {who for who, _ in seen} >= {"thread0", "process0", "process1"}
    assert check_survived(index_path, encoder) == "ok"
