"""The terminal UI driven through Textual's Pilot with the real default model, and in a real terminal."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input, SelectionList, Static, Switch  # noqa: E402

from xsearch import Index, pipeline  # noqa: E402
from xsearch.pipeline import IndexProgress  # noqa: E402
from xsearch.types import Hit, Translation  # noqa: E402
from xsearch.tui.app import XsearchApp  # noqa: E402
from xsearch.tui.screens import FiltersScreen, HelpScreen, IndexingScreen, IndexJob  # noqa: E402
from xsearch.tui.widgets import FilterBar, Preview, ResultList, StatusBar  # noqa: E402
from xsearch.tui.widgets.results import hit_prompt  # noqa: E402

from conftest import ROOT, SAMPLE  # noqa: E402

SIZE = (100, 30)
QUESTION = "how do plants turn light into energy"


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout: float = 120) -> None:
    """Let the app run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not reach the expected state in time")
        await pilot.pause(0.05)


async def ready_with_results(pilot: Pilot, query: str = QUESTION) -> ResultList:
    app = pilot.app
    assert isinstance(app, XsearchApp)
    await wait_for(pilot, lambda: app.index is not None)
    await pilot.press(*query)
    results = app.query_one(ResultList)
    await wait_for(pilot, lambda: app.last_query == query and results.hits)
    await pilot.pause()  # let the preview follow the first hit
    return results


def body_text(app: XsearchApp) -> str:
    return str(app.query_one("#preview-body", Static).render())


@pytest.fixture
def index_path(sample_index: Index) -> Path:
    return sample_index.path


async def test_typing_a_question_shows_passages_in_many_languages(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        results = await ready_with_results(pilot)
        langs = [hit.lang for hit in results.hits]
        assert {"de", "ja"} <= set(langs) and len(set(langs)) >= 4
        assert "/photosynthesis/" in results.hits[0].path
        assert any(hit.highlights for hit in results.hits)
        status = app.query_one(StatusBar)
        assert status.info is not None and status.info.documents > 30 and status.latency_ms is not None
        # the preview follows the cursor
        assert results.hits[0].text in body_text(app)
        await pilot.press("down")  # from the query box into the results
        assert app.focused is results
        await pilot.press("down", "down")
        assert results.highlighted == 2
        assert results.hits[2].text in body_text(app)
        head = str(app.query_one("#preview-head", Static).render())
        assert Path(results.hits[2].path).name in head and results.hits[2].lang in head
        await pilot.press("y")
        assert app.clipboard == results.hits[2].text


async def test_preview_shows_neighbouring_chunks(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        results = await ready_with_results(pilot)
        hit = next(h for h in results.hits if app.index.context(h.chunk_id)[0].start < h.start)
        before = app.index.context(hit.chunk_id)[0]
        results.highlighted = results.hits.index(hit)
        await pilot.pause()
        text = body_text(app)
        assert 0 <= text.index(before.text[:40]) < text.index(hit.text[:40])


async def test_a_new_keystroke_cancels_the_search_in_flight(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.index is not None)
        query = app.query_one("#query", Input)
        query.value = "volcano"
        await pilot.press("enter")  # searches at once
        await pilot.press(*" eruptions")  # typed while that search may still run
        assert query.value == "volcano eruptions"
        await wait_for(pilot, lambda: app.last_query == "volcano eruptions")
        assert "volcanoes" in app.query_one(ResultList).hits[0].path


async def test_filter_to_one_language_and_toggle_rerank(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        results = await ready_with_results(pilot)
        await pilot.press("ctrl+l")
        assert isinstance(app.screen, FiltersScreen)
        app.screen.query_one(SelectionList).select("ja")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.options.langs == ("ja",) and results.hits
                       and all(h.lang == "ja" for h in results.hits))
        assert "languages ja" in str(app.query_one(FilterBar).render())

        assert any(h.highlights for h in results.hits)
        before = results.hits
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: results.hits != before)
        assert not app.options.rerank and "rerank off" in str(app.query_one(FilterBar).render())
        assert all(h.lang == "ja" and not h.highlights for h in results.hits)

        await pilot.press("ctrl+g")
        assert app.options.mode == "hybrid"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_feedback_off_and_grouping_by_translation(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        results = await ready_with_results(pilot)
        assert app.options.feedback and not app.options.group_translations
        assert "feedback on" in str(app.query_one(FilterBar).render())
        assert not any(h.translations for h in results.hits)
        await pilot.press("ctrl+l")
        assert isinstance(app.screen, FiltersScreen)
        app.screen.query_one("#feedback", Switch).toggle()
        app.screen.query_one("#group-translations", Switch).toggle()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.options.group_translations and any(h.translations for h in results.hits))
        assert not app.options.feedback
        bar = str(app.query_one(FilterBar).render())
        assert "feedback off" in bar and "grouped by translation" in bar
        expected = app.index.search(QUESTION, **app.options.search_kwargs())
        assert [h.chunk_id for h in results.hits] == [h.chunk_id for h in expected]
        for hit in results.hits:
            langs = [t.lang for t in hit.translations]
            assert hit.lang not in langs and len(langs) == len(set(langs))

        await pilot.press("down")
        results.highlighted = rank = next(i for i, h in enumerate(results.hits) if h.translations)
        await pilot.pause()
        hit = results.hits[rank]
        header = results.get_option_at_index(rank).prompt.plain.splitlines()[0]
        assert f" {hit.lang}   {hit.translations[0].lang} " in header
        head = str(app.query_one("#preview-head", Static).render())
        assert "also in: " + " ".join(f"{t.lang} {t.score:.3f}" for t in hit.translations) in head


def test_translation_badges_keep_a_row_header_on_one_line() -> None:
    langs = ("de", "fr", "ja", "zh", "ar", "hi", "ru", "es", "ko", "pt")
    hit = Hit(chunk_id=1, score=0.9, text="Light becomes sugar.", path="/docs/photosynthesis/en.md", lang="en",
              start=0, end=20, translations=tuple(Translation(n, lang, f"/docs/{lang}.md", score=0.5)
                                                  for n, lang in enumerate(langs, 2)))
    header = hit_prompt(1, hit, width=60).plain.splitlines()[0]  # the results pane of a 100-column terminal
    assert len(header) <= 60 and " en   de  fr  ja " in header
    shown = [lang for lang in langs if f" {lang} " in header]
    assert shown == list(langs[: len(shown)]) and 3 <= len(shown) < len(langs)
    assert f" +{len(langs) - len(shown)} en.md  " in header
    wide = hit_prompt(1, hit, width=160).plain.splitlines()[0]
    assert all(f" {lang} " in wide for lang in langs) and "+" not in wide


def write_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "falter.txt").write_text(
        "Der Glasflügelfalter hat durchsichtige Flügel. Seine Flügel tragen kaum Schuppen, "
        "deshalb sieht man durch sie hindurch wie durch Glas.", encoding="utf-8")
    (folder / "mariposa.md").write_text(
        "# La mariposa de alas de cristal\n\nLa mariposa de alas de cristal vive en América Central. "
        "Sus alas transparentes la esconden de los pájaros.", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    return folder


async def test_indexing_from_the_ui_creates_the_index_and_makes_it_searchable(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "new")
    app = XsearchApp(tmp_path / "idx")
    async with app.run_test(size=SIZE) as pilot:
        assert app.index is None
        await pilot.press("ctrl+n")
        await pilot.press(*str(folder), "enter")
        assert isinstance(app.screen, IndexingScreen)
        job = app.job
        await wait_for(pilot, lambda: not job.running)
        assert job.error is None and job.report.files_added == 2 and not job.report.cancelled
        assert [Path(s.path).name for s in job.report.skipped] == ["broken.pdf"]
        report = str(app.screen.query_one("#indexing-report", Static).render())
        assert "broken.pdf" in report and "files added 2" in report
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.index is not None)
        results = await ready_with_results(pilot, "butterfly with transparent wings")
        assert {Path(h.path).name for h in results.hits} == {"falter.txt", "mariposa.md"}


async def test_search_stays_live_while_indexing_and_cancel_keeps_the_index(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    index_dir = tmp_path / "idx"
    with Index.create(index_dir) as index:
        index.add_paths([write_folder(tmp_path / "first")])
        before = index.info()
    big = tmp_path / "big"
    copies = 3
    for n in range(copies):
        shutil.copytree(SAMPLE, big / f"copy{n}")
    monkeypatch.setattr(pipeline, "GROUP_FILES", 4)  # small commits: a cancel lands within a few files
    release = threading.Event()  # the run waits at its first commit until the UI has searched and cancelled
    commit = pipeline._Commits.__call__

    def held_commit(self, item):
        release.wait(timeout=120)
        return commit(self, item)

    monkeypatch.setattr(pipeline._Commits, "__call__", held_commit)
    app = XsearchApp(index_dir)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.index is not None)
        app.start_indexing(big)
        await pilot.pause()
        assert isinstance(app.screen, IndexingScreen)
        await pilot.press("escape")  # hide: indexing goes on, searching works meanwhile
        results = await ready_with_results(pilot, "glass wings")
        assert results.hits and app.job.running
        assert "indexing" in str(app.query_one(StatusBar).render())
        await pilot.press("ctrl+n")  # shows the run in progress again
        assert isinstance(app.screen, IndexingScreen)
        await pilot.press("c")
        release.set()
        await wait_for(pilot, lambda: not app.job.running)
        assert app.job.report is not None and app.job.report.cancelled
        assert "cancelled" in str(app.screen.query_one("#indexing-report", Static).render())
    with Index.open(index_dir) as index:  # intact: what was committed stays, the rest comes with the next run
        index.store.check()
        committed = index.info().files
        assert before.files <= committed < before.files + copies * 39
        monkeypatch.undo()
        hits = index.search("mariposa de alas de cristal", k=1)
        assert hits and hits[0].path.endswith("mariposa.md")
        report = index.add_paths([big])
        assert report.files_unchanged == committed - before.files and not report.cancelled
        assert index.info().files == before.files + report.files_seen


# snapshots ------------------------------------------------------------------

@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths shown relative to the repository, as they are in the stored snapshots."""
    monkeypatch.chdir(ROOT)


def pinned_hits(index: Index, words: tuple[str, ...] = ("light", "energy", "plants")) -> list[Hit]:
    """The photosynthesis passages in a fixed order, with fixed scores and highlights.

    Scores and the tail of a real result list move in the last digits with the thread count
    and the CPU's kernels; the snapshots pin the layout, the other tests check the ranking.
    """
    ids = [row[0] for row in index.store.db.execute(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE d.path LIKE '%/photosynthesis/%' ORDER BY d.path, d.record, c.ord")]
    rows = index.store.chunk_rows(ids)
    pattern = re.compile("|".join(words), re.IGNORECASE)
    return [Hit(chunk_id=row.id, score=round(3.0 - 0.1 * n, 3), text=row.text, path=row.path, lang=row.lang,
                start=row.start, end=row.end, id=row.doc_key, title=row.title, record=row.record,
                metadata=row.metadata, highlights=tuple(m.span() for m in pattern.finditer(row.text)))
            for n, row in enumerate(rows[i] for i in ids[:20])]


def steady_cursor(pilot: Pilot) -> None:
    """A blinking cursor is drawn or not by the clock: keep it on for the snapshots."""
    pilot.app.query_one("#query", Input).cursor_blink = False


async def _searched(pilot: Pilot) -> None:
    steady_cursor(pilot)
    await ready_with_results(pilot)
    app = pilot.app
    assert isinstance(app, XsearchApp) and app.index is not None
    app.query_one(ResultList).show(pinned_hits(app.index))
    app.query_one(StatusBar).latency_ms = 42.0  # the one figure that changes from run to run
    await pilot.pause()


def test_snapshot_main_screen(snap_compare, index_path: Path, in_repo: None) -> None:
    assert snap_compare(XsearchApp(index_path), terminal_size=SIZE, run_before=_searched)


def test_snapshot_preview(snap_compare, index_path: Path, in_repo: None) -> None:
    async def run_before(pilot: Pilot) -> None:
        await _searched(pilot)
        await pilot.press("down", "down", "enter")
        assert isinstance(pilot.app.focused, Preview)

    assert snap_compare(XsearchApp(index_path), terminal_size=SIZE, run_before=run_before)


def test_snapshot_help(snap_compare, index_path: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await wait_for(pilot, lambda: pilot.app.index is not None)
        await pilot.press("f1")

    assert snap_compare(XsearchApp(index_path), terminal_size=SIZE, run_before=run_before)


def test_snapshot_indexing(snap_compare, index_path: Path) -> None:
    job = IndexJob(Path("docs/new"), started=0.0)
    job.record(IndexProgress("embed", 40, 0, 0), now=1.0)
    job.record(IndexProgress("embed", 40, 12, 150), now=11.0)

    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await wait_for(pilot, lambda: pilot.app.index is not None)
        pilot.app.push_screen(IndexingScreen(job))
        await pilot.pause()

    assert snap_compare(XsearchApp(index_path), terminal_size=SIZE, run_before=run_before)


# a real terminal --------------------------------------------------------------

@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_real_terminal_search_and_open_in_editor(index_path: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("xsearch")
    editor = tmp_path / "editor.sh"
    opened = tmp_path / "opened.txt"
    editor.write_text(f'#!/bin/sh\necho "$@" > {opened}\n', encoding="utf-8")
    editor.chmod(0o755)
    session = f"xsearch-test-{os.getpid()}"
    # a tmux server keeps its own environment: hand the variables over on the command line, and
    # drop any COLUMNS/LINES of this process, which would override the terminal's real size
    env = {name: os.environ[name] for name in ("XSEARCH_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
           if name in os.environ}
    command = " ".join(shlex.quote(part) for part in
                       ["env", "-u", "COLUMNS", "-u", "LINES", f"EDITOR={editor}", "TERM=xterm-256color", *(f"{k}={v}" for k, v in env.items()),
                        str(exe), "tui", "--index", str(index_path)])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-c", str(ROOT), command],
                   check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout

    def wait_screen(condition: Callable[[str], bool], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = screen()
            if condition(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"terminal never showed the expected text:\n{screen()}")

    try:
        wait_screen(lambda s: "multilingual-e5-small" in s)
        subprocess.run(["tmux", "send-keys", "-t", session, "-l", QUESTION], check=True)
        text = wait_screen(lambda s: " ms" in s.splitlines()[-2] and " de " in s and " ja " in s)
        assert "Pflanzen" in text and "光合成" in text
        subprocess.run(["tmux", "send-keys", "-t", session, "Down"], check=True)
        wait_screen(lambda s: "o Open" in s.splitlines()[-1])  # the results have the focus
        subprocess.run(["tmux", "send-keys", "-t", session, "o"], check=True)
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        line, path = opened.read_text(encoding="utf-8").split()
        assert line.startswith("+") and int(line[1:]) >= 1 and Path(path).is_file()
        assert str(SAMPLE) in path
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


async def test_results_arriving_after_quit_are_dropped(tmp_path: Path) -> None:
    app = XsearchApp(tmp_path / "none")
    async with app.run_test(size=SIZE):
        assert app.is_running
    # a search or indexing run that finishes while the app shuts down finds its widgets gone
    assert not app.is_running
    app._search_done(XsearchApp.SearchDone("q", app.options, [], 1.0))
    app._hit_highlighted()
    app._indexing_progress(XsearchApp.IndexingProgress(IndexJob(tmp_path), IndexProgress("embed", 2, 1, 5)))
