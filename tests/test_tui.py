"""The terminal UI driven through Textual's Pilot with the real default model, and in a real terminal."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("textual")

from rich.console import Console  # noqa: E402
from rich.text import Text  # noqa: E402
from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Button, Checkbox, Input, OptionList, SelectionList, Static  # noqa: E402

from xsearch import Index, pipeline  # noqa: E402
from xsearch import index as facade  # noqa: E402
from xsearch.pipeline import IndexProgress  # noqa: E402
from xsearch.types import Hit, Translation  # noqa: E402
from xsearch.tui.app import XsearchApp  # noqa: E402
from xsearch.tui.screens import (  # noqa: E402
    AddFolderScreen,
    ConfirmScreen,
    FiltersScreen,
    HelpScreen,
    IndexingScreen,
    IndexJob,
    IndexPanel,
)
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


def status_text(app: XsearchApp) -> str:
    return Text.from_markup(app.query_one(StatusBar).render()).plain


async def settled(pilot: Pilot) -> None:
    """Wait until the index is open, its model warmed up and its description shown."""
    await wait_for(pilot, lambda: pilot.app.query_one(StatusBar).info is not None)


def held(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> threading.Event:
    """Make ``owner.name`` (the real function) wait until the returned event is set."""
    release = threading.Event()
    real = getattr(owner, name)

    def waiting(*args, **kwargs):
        release.wait(timeout=120)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, waiting)
    return release


@pytest.fixture
def index_path(sample_index: Index) -> Path:
    return sample_index.path


async def test_typing_a_question_shows_passages_in_many_languages(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        results = await ready_with_results(pilot)
        await settled(pilot)
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


async def test_a_query_typed_while_the_model_loads_runs_once_the_encoder_is_loaded(
        index_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Index.open(index_path) as index:
        languages = index.languages()
    size = f"{sum(languages.values()):,} chunks in {len(languages)} languages"
    loading = held(monkeypatch, facade, "_load_encoder")
    warming = held(monkeypatch, Index, "warm")
    app = XsearchApp(index_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: f"loading model · {size}" in status_text(app), timeout=30)
            assert "no index yet" not in status_text(app)
            app.query_one("#query", Input).value = QUESTION
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.index is None and app.last_query == ""
            loading.set()
            results = app.query_one(ResultList)
            # runs before the warm-up (and the full description of the index) has finished
            await wait_for(pilot, lambda: app.last_query == QUESTION and results.hits, timeout=60)
            assert "/photosynthesis/" in results.hits[0].path
            assert app.query_one(StatusBar).info is None and size in status_text(app)
            assert "loading model" not in status_text(app)
            warming.set()
            await settled(pilot)
            assert f"{sum(languages.values()):,} chunks" in status_text(app)
    finally:
        loading.set()
        warming.set()


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
        app.screen.query_one("#feedback", Checkbox).toggle()
        app.screen.query_one("#group-translations", Checkbox).toggle()
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


async def test_indexing_progress_says_when_the_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = IndexJob(tmp_path)
    job.record(IndexProgress("load", 3, 0, 0))  # the run's phase before embedding, in an existing index
    assert job.summary() == "indexing: loading model"
    folder = write_folder(tmp_path / "new")
    loading = held(monkeypatch, facade, "_load_encoder")
    app = XsearchApp(tmp_path / "idx")
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.start_indexing(folder)  # a new index: the model loads first
            await pilot.pause()
            assert isinstance(app.screen, IndexingScreen)
            stats = app.screen.query_one("#indexing-stats", Static)
            await wait_for(pilot, lambda: "loading the model" in str(stats.render()), timeout=30)
            assert "indexing: loading model" in status_text(app)
            loading.set()
            await wait_for(pilot, lambda: not app.job.running)
            assert app.job.error is None and app.job.report.files_added == 2
            assert "loading the model" not in str(stats.render())
    finally:
        loading.set()


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


def screen_text(pilot: Pilot) -> str:
    """The plain text of every line of the current screen."""
    app = pilot.app
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def test_dialogs_focus_their_first_control_and_show_states_in_text(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.index is not None)
        await pilot.press("ctrl+l")
        langs = app.screen.query_one("#langs", SelectionList)
        assert app.focused is langs
        await pilot.press("space")  # ticks the first language without a tab first
        first = langs.get_option_at_index(0).value
        assert langs.selected == [first]
        text = screen_text(pilot)
        assert f"[x] {first} " in text and "[ ] " in text
        assert "(•) dense" in text and "( ) hybrid" in text and "[x] Rerank" in text
        await pilot.press("escape")
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, AddFolderScreen) and app.focused is app.screen.query_one("#folder")
        assert "[ ] Follow symlinks" in screen_text(pilot)
        await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen) and app.focused is app.screen.query_one("#help")
        await pilot.press("escape")
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, IndexPanel) and app.focused is app.screen.query_one("#roots")
        await wait_for(pilot, lambda: "ok " in screen_text(pilot))
        assert "Watch: off" in screen_text(pilot)


async def test_everything_fits_80_by_24(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready_with_results(pilot)
        await settled(pilot)
        text = screen_text(pilot)
        assert "^n Add folder" in text and "^o Index" in text and "^q Quit" in text
        status = text.splitlines()[-2]
        assert re.search(r"\d ms\b", status) and "chunks" in status
        await pilot.press("ctrl+l")
        text = screen_text(pilot)
        assert "[x] Rerank" in text and "Results k" in text and "Apply" in text


async def test_a_search_for_a_language_the_index_lacks_says_so_in_the_status_bar(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready_with_results(pilot)
        app._set_options(replace(app.options, langs=("xx",)))
        await wait_for(pilot, lambda: app.query_one(StatusBar).error)
        assert "xx" in status_text(app) and app.is_running
        app._set_options(replace(app.options, langs=()))
        await wait_for(pilot, lambda: not app.query_one(StatusBar).error)
        assert " ms" in status_text(app)


async def test_the_command_palette_runs_the_apps_actions(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.index is not None)
        await pilot.press("ctrl+p")
        await pilot.press(*"rerank")
        await wait_for(pilot, lambda: "Rerank on/off" in screen_text(pilot), timeout=10)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.options.rerank, timeout=10)
        await pilot.press("ctrl+p")
        await pilot.press(*"index folders", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IndexPanel), timeout=10)


async def test_cancel_indexing_goes_once_the_run_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_folder(tmp_path / "new")
    loading = held(monkeypatch, facade, "_load_encoder")
    app = XsearchApp(tmp_path / "idx")
    async with app.run_test(size=SIZE) as pilot:
        app.start_indexing(folder)
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, IndexingScreen) and "c" in screen.active_bindings
        assert "Cancel indexing" in screen_text(pilot)
        loading.set()
        await wait_for(pilot, lambda: not app.job.running)
        await pilot.pause()
        assert "c" not in screen.active_bindings and not screen.query_one("#cancel", Button).display
        assert "Cancel indexing" not in screen_text(pilot)


async def test_adding_a_folder_can_follow_symlinks(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "new")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.txt").write_text("Ein verlinkter Text über Schmetterlinge.", encoding="utf-8")
    (folder / "link").symlink_to(elsewhere, target_is_directory=True)
    app = XsearchApp(tmp_path / "idx")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await pilot.press(*str(folder))
        app.screen.query_one("#follow", Checkbox).toggle()
        await pilot.press("enter")
        assert app.job.follow
        await wait_for(pilot, lambda: not app.job.running)
        assert app.job.error is None and app.job.report.files_added == 3


async def test_index_panel_resyncs_removes_and_watches_folders(tmp_path: Path) -> None:
    first, second = write_folder(tmp_path / "first"), tmp_path / "second"
    second.mkdir()
    (second / "note.txt").write_text("Volcanoes erupt when magma rises to the surface.", encoding="utf-8")
    index_dir = tmp_path / "idx"
    with Index.create(index_dir) as index:
        index.add_paths([first])
        index.add_paths([second])
    app = XsearchApp(index_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("ctrl+o")
        panel = app.screen
        assert isinstance(panel, IndexPanel)
        await wait_for(pilot, lambda: len(panel.roots) == 2)
        assert [root.status for root in panel.roots] == ["ok", "ok"]
        (first / "falter.txt").write_text("Der Falter ist weg.", encoding="utf-8")
        panel.reload()
        await wait_for(pilot, lambda: panel.roots[0].status == "stale")

        await pilot.press("s")  # re-sync every folder
        assert isinstance(app.screen, IndexingScreen) and app.job.resync
        await wait_for(pilot, lambda: not app.job.running)
        assert app.job.error is None and app.job.report.files_updated == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: [root.status for root in panel.roots] == ["ok", "ok"])

        panel.query_one("#roots", OptionList).highlighted = 1
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(panel.roots) == 1)
        assert panel.roots[0].path == str(first.resolve())
        assert app.query_one(StatusBar).info.files == 2

        await pilot.press("w")
        await wait_for(pilot, lambda: "watching 1 folder" in status_text(app))
        assert "Watch: on" in screen_text(pilot)
        (first / "neu.txt").write_text("Ein neuer Text über Glasflügelfalter.", encoding="utf-8")
        await wait_for(pilot, lambda: app.query_one(StatusBar).info.files == 3, timeout=60)
        await pilot.press("w")
        await wait_for(pilot, lambda: "watching" not in status_text(app))
        await pilot.press("w")  # on again, and left on: quitting stops it
        await wait_for(pilot, lambda: "watching 1 folder" in status_text(app))
        started = time.monotonic()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=10)
    assert time.monotonic() - started < 2


async def test_quit_is_prompt_while_the_model_warms_up(index_path: Path) -> None:
    app = XsearchApp(index_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.index is not None)  # the warm-up starts now
        started = time.monotonic()
        await pilot.press("ctrl+q")
    assert time.monotonic() - started < 2 and not app.is_running


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
    await settled(pilot)
    app = pilot.app
    assert isinstance(app, XsearchApp) and app.index is not None
    app.query_one(ResultList).show(pinned_hits(app.index))
    app.query_one(StatusBar).latency_ms = 42.0  # the one figure that changes from run to run
    await pilot.pause()


SNAPSHOT_SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 35)], ids=["80x24", "120x35"])


@SNAPSHOT_SIZES
def test_snapshot_main_screen(snap_compare, index_path: Path, in_repo: None, size: tuple[int, int]) -> None:
    assert snap_compare(XsearchApp(index_path), terminal_size=size, run_before=_searched)


def _dialog(*keys: str) -> Callable[[Pilot], object]:
    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await settled(pilot)
        await pilot.press(*keys)
        await pilot.pause(0.3)
        if isinstance(pilot.app.screen, AddFolderScreen):
            pilot.app.screen.query_one("#folder", Input).cursor_blink = False

    return run_before


@SNAPSHOT_SIZES
@pytest.mark.parametrize("keys", [("ctrl+l",), ("ctrl+n",)], ids=["filters", "add_folder"])
def test_snapshot_dialog(snap_compare, index_path: Path, size: tuple[int, int], keys: tuple[str, ...]) -> None:
    assert snap_compare(XsearchApp(index_path), terminal_size=size, run_before=_dialog(*keys))


@SNAPSHOT_SIZES
def test_snapshot_index_panel(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    """A small index of its own, so the panel's paths and dates are the same on every run."""
    index_dir = tmp_path / "idx"
    with Index.create(index_dir) as index:
        index.add_texts(["Der Glasflügelfalter hat durchsichtige Flügel."])

    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await settled(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: pilot.app.screen.roots)

    assert snap_compare(XsearchApp(index_dir), terminal_size=size, run_before=run_before)


def test_snapshot_preview(snap_compare, index_path: Path, in_repo: None) -> None:
    async def run_before(pilot: Pilot) -> None:
        await _searched(pilot)
        await pilot.press("down", "down", "enter")
        assert isinstance(pilot.app.focused, Preview)

    assert snap_compare(XsearchApp(index_path), terminal_size=SIZE, run_before=run_before)


@SNAPSHOT_SIZES
def test_snapshot_help(snap_compare, index_path: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await settled(pilot)
        await pilot.press("f1")

    assert snap_compare(XsearchApp(index_path), terminal_size=size, run_before=run_before)


@SNAPSHOT_SIZES
def test_snapshot_indexing(snap_compare, index_path: Path, size: tuple[int, int]) -> None:
    job = IndexJob(Path("docs/new"), started=0.0)
    job.record(IndexProgress("embed", 40, 0, 0), now=1.0)
    job.record(IndexProgress("embed", 40, 12, 150), now=11.0)

    async def run_before(pilot: Pilot) -> None:
        steady_cursor(pilot)
        await settled(pilot)
        pilot.app.push_screen(IndexingScreen(job))
        await pilot.pause()

    assert snap_compare(XsearchApp(index_path), terminal_size=size, run_before=run_before)


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
        return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, encoding="utf-8").stdout

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
