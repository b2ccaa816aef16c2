"""File paths as the index keeps them: symlinks (passed over unless followed, kept under the
link's path, forgotten with the link) and names that are not valid UTF-8 (kept in a reversible
text form), with the real model, through the Python API and the command line."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from xsearch import Index, pipeline
from xsearch.types import path_to_text, text_to_path

from conftest import run_cli

VOLCANO = "Mount Etna erupted again, sending lava down its eastern slope towards the villages.\n"
BREAD = "Sourdough bread rises slowly because wild yeast ferments the flour for many hours.\n"
TIDES = "The tides follow the pull of the Moon and reach their highest point twice a day.\n"


def _stored(index: Index) -> set[str]:
    return set(index.store.file_states())


def _hit_paths(index: Index, query: str) -> set[str]:
    return {hit.path for hit in index.search(query, k=20)}


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A folder ``docs`` with a file of its own, a link to a file outside it and a link to a
    folder outside it; returns (docs, the folder the links point into)."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    (outside / "far").mkdir(parents=True)
    docs.mkdir()
    (docs / "own.txt").write_text(TIDES, encoding="utf-8")
    (outside / "secret.txt").write_text(VOLCANO, encoding="utf-8")
    (outside / "far" / "bread.txt").write_text(BREAD, encoding="utf-8")
    (docs / "link.txt").symlink_to(outside / "secret.txt")
    (docs / "far").symlink_to(outside / "far", target_is_directory=True)
    return docs, outside


def test_links_are_indexed_only_when_followed_and_under_their_own_path(linked, tmp_path: Path, encoder) -> None:
    docs, outside = linked
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        report = index.add_paths([docs])
        assert (report.files_added, report.skipped) == (1, ())
        assert _stored(index) == {str(docs / "own.txt")}
        assert str(outside / "secret.txt") not in _hit_paths(index, "volcano eruption lava")

        report = index.add_paths([docs], follow=True)
        assert (report.files_added, report.files_unchanged) == (2, 1)
        through_links = {str(docs / "link.txt"), str(docs / "far" / "bread.txt")}
        assert _stored(index) == {str(docs / "own.txt")} | through_links  # never the targets' paths
        assert str(docs / "link.txt") in _hit_paths(index, "volcano eruption lava")

        report = index.add_paths([docs])  # a run that does not follow forgets what following brought
        assert (report.files_removed, report.files_unchanged) == (2, 1)
        assert _stored(index) == {str(docs / "own.txt")}
        assert not _hit_paths(index, "volcano eruption lava") & through_links


def test_deleting_a_link_removes_what_it_brought(linked, tmp_path: Path, encoder) -> None:
    docs, outside = linked
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs], follow=True)
        (docs / "link.txt").unlink()
        report = index.add_paths([docs], follow=True)
        assert (report.files_removed, report.files_unchanged, report.files_added) == (1, 2, 0)
        assert str(docs / "link.txt") not in _stored(index)
        assert str(docs / "link.txt") not in _hit_paths(index, "volcano eruption lava")
        assert (outside / "secret.txt").exists()  # the target itself is left alone


def test_a_file_reached_directly_and_through_a_link_is_indexed_once(tmp_path: Path, encoder) -> None:
    docs = tmp_path / "docs"
    (docs / "zz").mkdir(parents=True)
    (docs / "zz" / "bread.txt").write_text(BREAD, encoding="utf-8")
    (docs / "a-link.txt").symlink_to(docs / "zz" / "bread.txt")
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        report = index.add_paths([docs], follow=True)
        assert report.files_added == 1
        assert _stored(index) == {str(docs / "zz" / "bread.txt")}
        assert index.add_paths([docs]).files_unchanged == 1  # following or not, the same key


def test_the_command_line_follows_links_with_follow(linked, tmp_path: Path) -> None:
    docs, _ = linked
    (docs / "loop").symlink_to(docs, target_is_directory=True)
    index = str(tmp_path / "idx")
    result = run_cli("index", str(docs), "--index", index, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["files_added"], report["skipped"]) == (1, [])  # no loop: links were not followed

    result = run_cli("index", str(docs), "--index", index, "-L", "--json")
    report = json.loads(result.stdout)
    assert report["files_added"] == 2
    assert report["skipped"] == [{"path": str(docs / "loop"), "reason": "symlink loop"}]


@pytest.mark.parametrize("name", [b"caf\xe9.txt", b"d\xff", b"a\\b", b"caf\\xe9", b"\\\\x41\xc3", "é/ü".encode()])
def test_the_text_form_of_a_path_is_valid_unicode_and_turns_back(name: bytes) -> None:
    path = os.fsdecode(name)
    text = path_to_text(path)
    text.encode("utf-8")  # SQLite and JSON can hold it
    assert text_to_path(text) == path
    assert os.fsencode(text_to_path(text)) == name


def test_the_text_form_keeps_names_apart_and_readable() -> None:
    assert path_to_text(os.fsdecode(b"/d\xff/caf\xe9.txt")) == "/d\\xff/caf\\xe9.txt"
    assert path_to_text("/docs/café.txt") == "/docs/café.txt"  # valid UTF-8 is its own form
    assert path_to_text("/docs/caf\\xe9.txt") == "/docs/caf\\\\xe9.txt"  # the ASCII name is another


def _bytes_tree(tmp_path: Path) -> tuple[Path, str]:
    """``docs/d\\xff/caf\\xe9.txt``, named in bytes that are not UTF-8; returns (docs, the
    file's path as the operating system gives it)."""
    docs = tmp_path / "docs"
    folder = os.path.join(os.fsencode(docs), b"d\xff")
    os.makedirs(folder)
    with open(os.path.join(folder, b"caf\xe9.txt"), "w", encoding="utf-8") as handle:
        handle.write(BREAD)
    (docs / "plain.txt").write_text(TIDES, encoding="utf-8")
    return docs, os.fsdecode(os.path.join(folder, b"caf\xe9.txt"))


def test_names_that_are_not_utf8_are_indexed_kept_and_removed(tmp_path: Path, encoder) -> None:
    docs, path = _bytes_tree(tmp_path)
    text = f"{docs}/d\\xff/caf\\xe9.txt"
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        report = index.add_paths([docs])
        assert (report.files_added, report.skipped) == (2, ())
        assert _stored(index) == {text, str(docs / "plain.txt")}
        hits = [hit for hit in index.search("sourdough bread yeast", k=5) if hit.path == text]
        assert hits and hits[0].id == text

        report = index.add_paths([docs])
        assert (report.files_unchanged, report.files_added, report.files_updated) == (2, 0, 0)

        with open(path, "a", encoding="utf-8") as handle:  # read by its real name when it changes
            handle.write("Rye flour makes a denser loaf.\n")
        assert index.add_paths([docs]).files_updated == 1

        os.remove(path)
        report = index.add_paths([docs])
        assert (report.files_removed, report.files_unchanged) == (1, 1)
        assert _stored(index) == {str(docs / "plain.txt")}
        assert text not in _hit_paths(index, "sourdough bread yeast")


def test_removing_by_a_path_that_is_not_utf8(tmp_path: Path, encoder) -> None:
    docs, path = _bytes_tree(tmp_path)
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs])
        assert index.remove(paths=[os.path.dirname(path)]) == [path_to_text(path)]
        assert _stored(index) == {str(docs / "plain.txt")}


def test_the_command_line_shows_names_that_are_not_utf8_in_text_form(tmp_path: Path) -> None:
    docs, _ = _bytes_tree(tmp_path)
    with open(os.path.join(os.fsencode(docs), b"empty\xe9.txt"), "wb"):
        pass
    index = str(tmp_path / "idx")
    result = run_cli("index", str(docs), "--index", index, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files_added"] == 2
    assert report["skipped"] == [{"path": f"{docs}/empty\\xe9.txt", "reason": "empty file"}]

    result = run_cli("search", "sourdough bread yeast", "--index", index, "--json", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["path"] == f"{docs}/d\\xff/caf\\xe9.txt"
    result = run_cli("search", "sourdough bread yeast", "--index", index, "-k", "1")
    assert result.returncode == 0 and "caf\\xe9.txt" in result.stdout and "Traceback" not in result.stderr


def test_a_cancelled_run_that_committed_nothing_reports_no_removal(tmp_path: Path, encoder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gone.txt").write_text(VOLCANO, encoding="utf-8")
    (docs / "changed.txt").write_text(BREAD, encoding="utf-8")
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        index.add_paths([docs])
        (docs / "gone.txt").unlink()
        (docs / "changed.txt").write_text(TIDES, encoding="utf-8")
        cancel = threading.Event()
        cancel.set()
        target = pipeline.Target(index.store, index.config, lambda: encoder)
        report = pipeline.index_paths(target, [docs], cancel=cancel)
        assert report.cancelled and report.files_removed == 0
        assert str(docs / "gone.txt") in _stored(index)  # left for the next run, which removes it
        assert index.add_paths([docs]).files_removed == 1
