"""Living with an index: the roots it remembers, listing them, removing paths, indexing every
root again, and watching folders (Python API, command line and HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xsearch import Index
from xsearch.errors import UsageError

from conftest import ROOT, run_cli

CAT = "The cat sleeps on the warm windowsill all afternoon."
VOLCANO = "Der Vulkan brach aus und Lava floss bis ins Tal hinunter."
BREAD = "Le pain au levain demande une longue fermentation."


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return _folder(tmp_path / "docs", {"a/cat.txt": CAT, "a/draft.md": VOLCANO, "b/bread.txt": BREAD})


def _rows(index: Index) -> dict[str | None, object]:
    return {row.path if row.kind == "root" else row.kind: row for row in index.roots()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# roots are remembered and listed ----------------------------------------------------

def test_add_paths_records_each_root_with_its_options(tmp_path: Path, docs: Path, encoder) -> None:
    link = tmp_path / "link-to-b"
    link.symlink_to(docs / "b")
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a"], include=["*.txt"])
        index.add_paths([link])
        index.add_texts([BREAD], ids=["bread-note"])
        rows = _rows(index)
    a, b = str(docs / "a"), str(docs / "b")  # a root given through a link is kept under its real path
    assert set(rows) == {a, b, "texts"}
    assert rows[a].options == {"include": ["*.txt"], "exclude": [], "follow": False, "max_file_bytes": None}
    assert (rows[a].files, rows[a].documents, rows[a].chunks, rows[a].languages) == (1, 1, 1, {"en": 1})
    assert rows[b].languages == {"fr": 1} and rows[b].status == "ok" and rows[b].indexed_at > time.time() - 60
    assert (rows["texts"].files, rows["texts"].documents, rows["texts"].path) == (1, 1, None)


def test_a_root_inside_another_with_the_same_options_is_listed_under_it(tmp_path: Path, docs: Path,
                                                                       encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a"])
        index.add_paths([docs])
        index.add_paths([docs / "b"])
        index.add_paths([docs / "b", docs])
        rows = _rows(index)
    assert list(rows) == [str(docs)] and rows[str(docs)].files == 3


def test_listing_finds_files_gone_or_changed_and_roots_gone(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a", docs / "b"])
        (docs / "a" / "cat.txt").write_text(CAT + " It purrs.", encoding="utf-8")
        (docs / "a" / "draft.md").unlink()
        shutil.rmtree(docs / "b")
        rows = _rows(index)
    a, b = rows[str(docs / "a")], rows[str(docs / "b")]
    assert (a.status, a.missing, a.changed) == ("stale", (str(docs / "a" / "draft.md"),),
                                                (str(docs / "a" / "cat.txt"),))
    assert (b.status, b.exists, b.missing_files, b.files) == ("missing", False, 1, 1)
    assert b.to_dict()["status"] == "missing" and json.dumps(b.to_dict())


def test_an_index_from_before_roots_lists_its_files_without_writing(tmp_path: Path, docs: Path, encoder) -> None:
    path = tmp_path / "idx"
    with Index.create(path, encoder=encoder) as index:
        index.add_paths([docs])
    conn = sqlite3.connect(path / "xsearch.db")
    conn.execute("DROP TABLE roots")  # as an index written before roots were kept
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _digest(path / "xsearch.db")
    with Index.open(path, readonly=True) as index:
        rows = index.roots()
        with pytest.raises(UsageError, match="records no folders"):
            index.sync()
    assert [(row.kind, row.files) for row in rows] == [("unrooted", 3)]
    assert _digest(path / "xsearch.db") == before
    with Index.open(path, encoder=encoder) as index:  # its next run records the root
        index.add_paths([docs])
        assert [row.kind for row in index.roots()] == ["root"]


def test_a_name_that_is_not_utf8_is_listed_and_removed(tmp_path: Path, encoder) -> None:
    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(os.fsencode(folder) + b"/caf\xe9.txt")
    Path(name).write_text(BREAD, encoding="utf-8")
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([folder])
        (row,) = index.roots()
        assert (row.status, row.files) == ("ok", 1)
        Path(name).unlink()
        assert _rows(index)[str(folder)].missing == (str(folder) + "/caf\\xe9.txt",)
        removal = index.remove_paths([name])
        assert removal.files == (str(folder) + "/caf\\xe9.txt",) and index.info().files == 0


# removing ---------------------------------------------------------------------------

def test_remove_paths_of_a_deleted_folder_forgets_its_root(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a", docs / "b"])
        shutil.rmtree(docs / "b")
        removal = index.remove_paths([docs / "b"])
        assert (len(removal.files), removal.documents, removal.roots) == (1, 1, (str(docs / "b"),))
        assert list(_rows(index)) == [str(docs / "a")]
        assert all("bread" not in hit.path for hit in index.search("sourdough fermentation", k=5))


def test_removing_part_of_a_root_keeps_the_root(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs])
        removal = index.remove_paths([docs / "a" / "cat.txt"])
        rows = _rows(index)
        assert removal.roots == () and rows[str(docs)].files == 2
        assert index.sync().report.files_added == 1  # still on disk: its next run brings it back


def test_remove_paths_matching_nothing_removes_nothing(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs])
        with pytest.raises(UsageError, match="not in the index: .*elsewhere"):
            index.remove_paths([docs / "a", tmp_path / "elsewhere"])
        assert index.info().files == 3


# indexing every root again ----------------------------------------------------------

def test_sync_runs_every_root_again_with_its_options(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a"], exclude=["*.md"])
        index.add_paths([docs / "b"])
        (docs / "a" / "new.txt").write_text(BREAD, encoding="utf-8")
        (docs / "a" / "other.md").write_text(VOLCANO, encoding="utf-8")  # excluded, as the root was
        (docs / "b" / "bread.txt").unlink()
        synced = index.sync()
        report = synced.report
        assert (report.files_added, report.files_removed, synced.missing) == (1, 1, ())
        assert sorted(Path(p).name for p in index.store.file_states()) == ["cat.txt", "new.txt"]


def test_sync_leaves_a_missing_root_alone_unless_pruned(tmp_path: Path, docs: Path, encoder) -> None:
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a", docs / "b"])
        shutil.rmtree(docs / "b")
        kept = index.sync()
        assert kept.missing == (str(docs / "b"),) and not kept.pruned and index.info().files == 3
        pruned = index.sync(prune=True)
        assert pruned.pruned and index.info().files == 2 and list(_rows(index)) == [str(docs / "a")]


# the command line -------------------------------------------------------------------

def test_cli_ls_rm_and_index_again(tmp_path: Path, docs: Path) -> None:
    idx = str(tmp_path / "idx")
    assert run_cli("index", str(docs / "a"), str(docs / "b"), "--index", idx, "-q").returncode == 0
    table = run_cli("ls", "--index", idx)
    assert table.returncode == 0 and "STATUS" in table.stdout and str(docs / "b") in table.stdout
    shutil.rmtree(docs / "b")
    listed = json.loads(run_cli("ls", "--index", idx, "--json").stdout)["roots"]
    assert [(row["path"], row["status"]) for row in listed] == [(str(docs / "a"), "ok"), (str(docs / "b"), "missing")]

    again = run_cli("index", "--index", idx, "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["missing_roots"] == [str(docs / "b")]
    assert "warning:" in again.stderr and "--prune" in again.stderr

    nothing = run_cli("rm", str(tmp_path / "nowhere"), "--index", idx)
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1 and nothing.stderr.startswith("error: ")
    removed = run_cli("rm", str(docs / "b"), "--index", idx, "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) | {"index": None} == {"index": None, "files": 1, "documents": 1,
                                                             "roots": [str(docs / "b")],
                                                             "removed": [str(docs / "b" / "bread.txt")]}
    assert run_cli("index", "--index", idx, "-q").returncode == 0


def test_cli_index_with_no_path_prunes_and_refuses_options(tmp_path: Path, docs: Path) -> None:
    idx = str(tmp_path / "idx")
    assert run_cli("index", str(docs / "a"), str(docs / "b"), "--index", idx, "-q").returncode == 0
    shutil.rmtree(docs / "b")
    pruned = run_cli("index", "--index", idx, "--prune")
    assert pruned.returncode == 0 and "forgot" in pruned.stderr
    assert [row["path"] for row in json.loads(run_cli("ls", "--index", idx, "--json").stdout)["roots"]] == \
        [str(docs / "a")]
    refused = run_cli("index", "--index", idx, "--include", "*.md")
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    missing = run_cli("index", "--index", str(tmp_path / "none"))
    assert missing.returncode == 4 and not (tmp_path / "none").exists()


def _indexed_names(path: Path) -> set[str]:
    if not (path / "xsearch.db").exists():
        return set()
    with Index.open(path, readonly=True) as index:
        return {Path(p).name for p in index.store.file_states()}


def _wait_for(path: Path, names: set[str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        try:
            seen = _indexed_names(path)
        except Exception:  # the index may be mid-creation: look again
            seen = set()
        if seen == names:
            return seen
        time.sleep(0.2)
    return seen


def test_cli_watch_follows_changes_and_stops_cleanly_on_ctrl_c(tmp_path: Path, docs: Path) -> None:
    idx = tmp_path / "idx"
    exe = Path(sys.executable).with_name("xsearch")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "xsearch.cli"]
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen([*command, "index", "--watch", str(docs), "--index", str(idx), "-q"],
                                stdout=out, stderr=err)
    try:
        assert _wait_for(idx, {"cat.txt", "draft.md", "bread.txt"}) == {"cat.txt", "draft.md", "bread.txt"}
        deadline = time.monotonic() + 60
        while "watching for changes" not in err_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the watcher starts just after saying so
        (docs / "b" / "new.txt").write_text("Das Brot ist frisch gebacken.", encoding="utf-8")
        (docs / "a" / "draft.md").unlink()
        assert _wait_for(idx, {"cat.txt", "bread.txt", "new.txt"}) == {"cat.txt", "bread.txt", "new.txt"}
        (docs / "a" / "cat.txt").write_text("A volcano erupted near the village.", encoding="utf-8")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with Index.open(idx, readonly=True) as index:
                hits = index.search("volcano erupted", k=1, mode="lexical")
            if hits and "volcano" in hits[0].text:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the changed file was not indexed again")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    printed, warned = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 0, warned
    assert "added" in printed and "removed" in printed and "Traceback" not in warned
    with Index.open(idx) as index:
        assert index.info().files == 3
        assert index.search("frisch gebacken", k=1, mode="lexical")[0].path.endswith("new.txt")
        assert [row.status for row in index.roots()] == ["ok"]


# HTTP -------------------------------------------------------------------------------

def test_http_roots_lists_what_ls_lists(tmp_path: Path, docs: Path, encoder) -> None:
    from fastapi.testclient import TestClient

    from xsearch.server import create_app

    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs / "a"])
        body = TestClient(create_app(index)).get("/roots").json()
        assert body == {"roots": [row.to_dict() for row in index.roots()]}
        assert body["roots"][0]["path"] == str(docs / "a") and body["roots"][0]["files"] == 2


def test_managing_an_index_is_documented() -> None:
    formats = (ROOT / "indexes" / "README.md").read_text(encoding="utf-8")
    assert "| `roots` |" in formats and "xsearch ls" in formats
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for words in ("### Managing an index", "xsearch ls", "xsearch rm", "--prune", "--watch", "GET /roots"):
        assert words in readme, words
