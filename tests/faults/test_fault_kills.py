"""``kill -9`` of a real ``xsearch index`` at the first commit, in the middle of a run and while
files are removed (by a run over the folder, ``xsearch rm`` or ``Index.remove``): every time the
index still opens, answers, passes SQLite's integrity check, its vector index holds exactly the
stored chunks, and the next run ends with exactly the chunks a clean build has, none lost and
none doubled."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from faultkit import check_survived, chunk_multiset, committed, kill_when, make_docs, start, xsearch

from xsearch import Index

FILES = 140
"""Three groups of files (64, 64, 12): a run commits twice before its last group."""
GROUP = 64


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, encoder) -> tuple[Path, Counter[tuple[str, str]]]:
    """A folder of notes and the chunks a clean, uninterrupted build of it holds."""
    root = tmp_path_factory.mktemp("kills")
    docs = make_docs(root / "docs", FILES)
    with Index.create(root / "clean", encoder=encoder) as index:
        index.add_paths([docs])
    return docs, chunk_multiset(root / "clean", docs)


def _rerun_matches(docs: Path, index: Path, expected: Counter[tuple[str, str]]) -> None:
    result = xsearch("index", docs, "--index", index, "-q")
    assert result.returncode == 0, result.stderr
    assert chunk_multiset(index, docs) == expected


def test_kill_at_the_first_commit(corpus: tuple[Path, Counter], tmp_path: Path, encoder) -> None:
    docs, expected = corpus
    index = tmp_path / "idx"
    proc = start("index", docs, "--index", index, "-q")
    assert kill_when(proc, lambda: committed(index)[1] > 0), "the run ended before it was killed"
    assert committed(index)[1] == GROUP  # the first group, whole
    assert check_survived(index, encoder) == "ok"
    _rerun_matches(docs, index, expected)
    assert check_survived(index, encoder) == "ok"


def test_kill_mid_run(corpus: tuple[Path, Counter], tmp_path: Path, encoder) -> None:
    docs, expected = corpus
    rng = random.Random(5)
    index = tmp_path / "idx"
    for _ in range(2):  # the second kill hits a run resuming the first one's work
        proc = start("index", docs, "--index", index, "-q")
        before = max(committed(index)[0], 0)
        kill_when(proc, lambda: committed(index)[0] > before, rng.uniform(0.0, 0.6))
        assert committed(index)[1] % GROUP == 0 or committed(index)[1] == FILES
        assert check_survived(index, encoder) == "ok"
    _rerun_matches(docs, index, expected)


@pytest.fixture
def built(corpus: tuple[Path, Counter], tmp_path: Path, encoder) -> tuple[Path, Path, Counter]:
    """A private copy of the corpus with a complete index of it."""
    docs_src, _ = corpus
    docs = tmp_path / "docs"
    shutil.copytree(docs_src, docs)
    index = tmp_path / "idx"
    with Index.create(index, encoder=encoder) as opened:
        opened.add_paths([docs])
    return docs, index, chunk_multiset(index, docs)


def test_kill_while_a_run_removes_deleted_files(built: tuple[Path, Path, Counter], encoder) -> None:
    docs, index, full = built
    rng = random.Random(11)
    gone = sorted(docs.iterdir())[: FILES * 2 // 3]
    for file in gone:
        file.unlink()
    expected = Counter({key: n for key, n in full.items() if docs / key[0] not in gone})
    for delay in (rng.uniform(0.0, 0.4), 0.0):
        proc = start("index", docs, "--index", index, "-q")
        before = committed(index)[0]
        kill_when(proc, lambda: committed(index)[0] != before, delay)
        assert committed(index)[1] in (sum(full.values()), sum(expected.values()))  # all removed or none
        assert check_survived(index, encoder) == "ok"
    _rerun_matches(docs, index, expected)


REMOVER = """
import sys
from xsearch import Index
with Index.open(sys.argv[1]) as index:
    index.remove(paths=sys.argv[2:])
"""


@pytest.mark.parametrize("how", ["xsearch rm", "Index.remove"])
def test_kill_during_removal(built: tuple[Path, Path, Counter], encoder, how: str) -> None:
    docs, index, full = built
    removed = [str(path) for path in sorted(docs.iterdir())[:20]]
    for delay in (0.0, random.Random(how).uniform(0.0, 0.3)):
        if how == "xsearch rm":
            proc = start("rm", *removed, "--index", index)
        else:
            proc = subprocess.Popen([sys.executable, "-c", REMOVER, str(index), *removed],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = committed(index)[0]
        kill_when(proc, lambda: committed(index)[0] != before, delay)
        assert committed(index)[1] in (sum(full.values()) - len(removed), sum(full.values()))
        assert check_survived(index, encoder) == "ok"
        _rerun_matches(docs, index, full)
