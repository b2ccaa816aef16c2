"""The xsearch terminal UI: search as you type, preview, filters and indexing in the background.

All searching and indexing goes through :class:`~xsearch.index.Index`; this module only
schedules that work off the UI thread and renders what comes back.
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input
from textual.worker import get_current_worker

from ..errors import XsearchError
from ..index import DB_NAME, Index
from ..pipeline import IndexProgress, IndexReport
from ..present import source_line
from ..types import Hit
from .options import SearchOptions
from .screens import (
    AddFolderScreen,
    FiltersScreen,
    HelpScreen,
    IndexingScreen,
    IndexJob,
)
from .widgets import FilterBar, Preview, ResultList, StatusBar

DEBOUNCE_S = 0.25
"""Quiet time after the last keystroke before searching."""
THEMES = ("textual-dark", "textual-light")


def _while_running(handler: Any) -> Any:
    """Drop a message handled after the app began to shut down (a search or an indexing run
    finishing as the user quits): the widgets it would update are already gone."""

    @functools.wraps(handler)
    def guarded(self: App, *args: Any) -> None:
        if self.is_running:
            handler(self, *args)

    return guarded


class XsearchApp(App[None]):
    """Search an xsearch index from the terminal."""

    CSS_PATH = "app.tcss"
    TITLE = "xsearch"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+l", "filters", "Filters"),
        Binding("ctrl+g", "cycle_mode", "Mode"),
        Binding("ctrl+r", "toggle_rerank", "Rerank"),
        Binding("ctrl+n", "add_folder", "Add folder"),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("slash,escape", "focus_query", "Query", show=False),
        Binding("down", "focus_results", "Results", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class SearchDone(Message):
        """A search finished; ``hits`` are for ``query`` under ``options``."""

        def __init__(self, query: str, options: SearchOptions, hits: list[Hit], ms: float) -> None:
            super().__init__()
            self.query, self.options, self.hits, self.ms = query, options, hits, ms

    class SearchFailed(Message):
        """A search raised an error the user should see."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class IndexReady(Message):
        """The index was opened (or created) and its encoder loaded."""

        def __init__(self, index: Index | None, error: str | None = None) -> None:
            super().__init__()
            self.index, self.error = index, error

    class IndexingProgress(Message):
        """Progress of the background indexing run."""

        def __init__(self, job: IndexJob, progress: IndexProgress) -> None:
            super().__init__()
            self.job, self.progress = job, progress

    class IndexingDone(Message):
        """The background indexing run ended (``report``) or failed (``error``)."""

        def __init__(self, job: IndexJob, report: IndexReport | None, error: str | None = None) -> None:
            super().__init__()
            self.job, self.report, self.error = job, report, error

    def __init__(self, index_path: Path, *, options: SearchOptions | None = None, backend: str | None = None) -> None:
        super().__init__()
        self.index_path = Path(index_path)
        self.backend = backend
        self.index: Index | None = None
        self.options = options or SearchOptions()
        self.job: IndexJob | None = None
        self.last_query = ""
        self._debounce: Timer | None = None
        self._search_lock = threading.Lock()

    # layout ---------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Input(placeholder="Ask in any language…", id="query")
        yield FilterBar(id="filter-bar")
        with Horizontal(id="body"):
            with Vertical(id="results-pane"):
                yield ResultList(id="results")
            yield Preview(id="preview")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(FilterBar).show(self.options)
        self.query_one(StatusBar).index_name = self.index_path.name
        self.query_one(Preview).clear("Type a question in any language.")
        self.query_one("#query", Input).focus()
        if (self.index_path / DB_NAME).is_file():
            self.query_one(StatusBar).activity = "loading the model…"
            self.open_index()
        else:
            self.query_one(Preview).clear(f"No index at {self.index_path} yet: press ctrl+n to add a folder.")

    @work(thread=True, exclusive=True, group="open")
    def open_index(self) -> None:
        """Open the index and load its model off the UI thread."""
        try:
            index = Index.open(self.index_path, backend=self.backend)
            index.warm()
        except XsearchError as exc:
            self.post_message(self.IndexReady(None, str(exc)))
            return
        self.post_message(self.IndexReady(index))

    @on(IndexReady)
    @_while_running
    def _index_ready(self, message: IndexReady) -> None:
        status = self.query_one(StatusBar)
        status.activity = ""
        if message.error is not None:
            self.query_one(Preview).clear(f"[red]{message.error}[/]")
            return
        if self.index is not None and self.index is not message.index:
            self.index.close()
        self.index = message.index
        status.info = self.index.info() if self.index else None
        self._search_now()

    # searching ------------------------------------------------------------
    @on(Input.Changed, "#query")
    def _query_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self._search_now)

    @on(Input.Submitted, "#query")
    def _query_submitted(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._search_now()

    def _search_now(self) -> None:
        query = self.query_one("#query", Input).value.strip()
        if self.index is None:
            return
        if not query:
            self.workers.cancel_group(self, "search")
            self.last_query = ""
            self.query_one(ResultList).show([])
            self.query_one(Preview).clear("Type a question in any language.")
            return
        self.search(self.index, query, self.options)

    @work(thread=True, exclusive=True, group="search")
    def search(self, index: Index, query: str, options: SearchOptions) -> None:
        """Run one search; a newer one cancels it, and a cancelled search shows nothing."""
        worker = get_current_worker()
        with self._search_lock:  # one search at a time: a stale one must not slow the new one down
            if worker.is_cancelled:
                return
            started = time.perf_counter()
            try:
                hits = index.search(query, **options.search_kwargs())
            except XsearchError as exc:
                self.post_message(self.SearchFailed(str(exc)))
                return
        if not worker.is_cancelled:
            self.post_message(self.SearchDone(query, options, hits, (time.perf_counter() - started) * 1000))

    @on(SearchDone)
    @_while_running
    def _search_done(self, message: SearchDone) -> None:
        self.last_query = message.query
        self.query_one(StatusBar).latency_ms = message.ms
        results = self.query_one(ResultList)
        results.show(message.hits)
        if not message.hits:
            self.query_one(Preview).clear("No passages match.")

    @on(SearchFailed)
    def _search_failed(self, message: SearchFailed) -> None:
        self.notify(message.error, title="search failed", severity="error")

    @on(ResultList.OptionHighlighted, "#results")
    @_while_running
    def _hit_highlighted(self) -> None:
        hit = self.query_one(ResultList).current
        if hit is not None and self.index is not None:
            self.query_one(Preview).show(hit, self.index.context(hit.chunk_id))

    @on(ResultList.OptionSelected, "#results")
    def _hit_selected(self) -> None:
        self.query_one(Preview).focus()

    def _set_options(self, options: SearchOptions | None) -> None:
        if options is None or options == self.options:
            return
        self.options = options
        self.query_one(FilterBar).show(options)
        self._search_now()

    # actions --------------------------------------------------------------
    def action_focus_query(self) -> None:
        """Put the cursor in the query box."""
        self.query_one("#query", Input).focus()

    def action_focus_results(self) -> None:
        """Move from the query box to the results."""
        results = self.query_one(ResultList)
        if results.hits:
            results.focus()

    def action_help(self) -> None:
        """Show every key binding."""
        sections = [("Anywhere", self.BINDINGS), ("Results", ResultList.BINDINGS),
                    ("Query box", []), ("Indexing screen", IndexingScreen.BINDINGS)]
        self.push_screen(HelpScreen(sections))

    def action_filters(self) -> None:
        """Edit languages, path glob, mode, rerank, feedback, grouping and k."""
        languages = self.index.languages() if self.index is not None else {}
        self.push_screen(FiltersScreen(self.options, languages), self._set_options)

    def action_cycle_mode(self) -> None:
        """Dense, hybrid, lexical, dense, …"""
        self._set_options(replace(self.options, mode=self.options.next_mode()))

    def action_toggle_rerank(self) -> None:
        """Late-interaction rerank (and its highlights) on or off."""
        self._set_options(replace(self.options, rerank=not self.options.rerank))

    def action_toggle_theme(self) -> None:
        """Switch between the dark and the light theme."""
        self.theme = THEMES[1] if self.theme == THEMES[0] else THEMES[0]

    def action_open_hit(self) -> None:
        """Open the highlighted hit's file in $EDITOR (or $PAGER) at the passage's line."""
        hit = self.query_one(ResultList).current
        if hit is None:
            return
        command = os.environ.get("EDITOR") or os.environ.get("PAGER") or "less"
        argv = [*shlex.split(command), f"+{source_line(hit.path, hit.text, hit.record)}", hit.path]
        try:
            with self.suspend():
                subprocess.run(argv, check=False)
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error")
        except OSError as exc:
            self.notify(f"cannot run {command}: {exc.strerror or exc}", severity="error")

    def action_copy_hit(self) -> None:
        """Copy the highlighted passage to the clipboard."""
        hit = self.query_one(ResultList).current
        if hit is not None:
            self.copy_to_clipboard(hit.text)
            self.notify(f"copied {len(hit.text):,} characters")

    # indexing -------------------------------------------------------------
    def action_add_folder(self) -> None:
        """Add a folder to the index in the background (or show the run in progress)."""
        if self.job is not None and self.job.running:
            self.push_screen(IndexingScreen(self.job))
        else:
            self.push_screen(AddFolderScreen(), self.start_indexing)

    def start_indexing(self, folder: Path | None) -> None:
        """Index ``folder`` in a background worker and show its progress."""
        if folder is None:
            return
        self.job = IndexJob(folder)
        self.query_one(StatusBar).activity = self.job.summary()
        self.index_folder(self.job, self.index)
        self.push_screen(IndexingScreen(self.job))

    @work(thread=True, exclusive=True, group="index")
    def index_folder(self, job: IndexJob, reader: Index | None) -> None:
        """Add ``job.folder`` through a writer of its own; searches keep using the reader."""
        try:
            encoder = reader.encoder if reader is not None else None
            if (self.index_path / DB_NAME).is_file():
                writer = Index.open(self.index_path, encoder=encoder)
            else:
                writer = Index.create(self.index_path, encoder=encoder, backend=self.backend)
            with writer:
                report = writer.add_paths([job.folder], cancel=job.cancel,
                                          progress=lambda p: self.post_message(self.IndexingProgress(job, p)))
        except XsearchError as exc:
            self.post_message(self.IndexingDone(job, None, str(exc)))
            return
        self.post_message(self.IndexingDone(job, report))

    def _indexing_screen(self, job: IndexJob) -> IndexingScreen | None:
        screen = self.screen
        return screen if isinstance(screen, IndexingScreen) and screen.job is job else None

    @on(IndexingProgress)
    @_while_running
    def _indexing_progress(self, message: IndexingProgress) -> None:
        message.job.record(message.progress)
        self.query_one(StatusBar).activity = message.job.summary()
        if screen := self._indexing_screen(message.job):
            screen.refresh_job()

    @on(IndexingDone)
    @_while_running
    def _indexing_done(self, message: IndexingDone) -> None:
        job = message.job
        job.report, job.error = message.report, message.error
        self.query_one(StatusBar).activity = job.summary()
        if screen := self._indexing_screen(job):
            screen.refresh_job()
        elif job.error is not None:
            self.notify(job.error, title="indexing failed", severity="error")
        elif job.report is not None:
            self.notify(f"{job.report.files_added + job.report.files_updated:,} files, "
                        f"{job.report.chunks_added:,} chunks added", title=job.summary())
        if self.index is None and (self.index_path / DB_NAME).is_file():
            self.open_index()
        elif self.index is not None:
            self.query_one(StatusBar).info = self.index.info()
            self._search_now()

    def on_unmount(self) -> None:
        if self.job is not None:
            self.job.cancel.set()
