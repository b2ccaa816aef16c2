"""The xsearch terminal UI: search as you type, preview, filters and indexing in the background.

All searching and indexing goes through :class:`~xsearch.index.Index`; this module only
schedules that work off the UI thread and renders what comes back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
import os
import shlex
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input
from textual.worker import get_current_worker

from ..errors import UsageError, XsearchError
from ..index import DB_NAME, Index, IndexInfo
from ..pipeline import IndexProgress, IndexReport
from ..present import source_line
from ..types import Hit
from .commands import XsearchCommands
from .options import SearchOptions
from .screens import (
    AddFolderScreen,
    AddRequest,
    FiltersScreen,
    HelpScreen,
    IndexingScreen,
    IndexJob,
    IndexPanel,
)
from .widgets import FilterBar, Preview, ResultList, StatusBar

DEBOUNCE_S = 0.25
"""Quiet time after the last keystroke before searching."""
WARM_UP_WAIT_S = 30.0
"""Longest the model's warm-up waits for the first search (typed while the model loaded) to end."""
THEMES = ("textual-dark", "textual-light")
T = TypeVar("T")


class _Abandoned(Exception):
    """The app quit while :func:`abandonable` work was still running."""


def abandonable(work: Callable[[], T], quitting: threading.Event) -> T:
    """``work()``, run in a daemon thread that the calling worker waits for until ``quitting``
    is set: then it raises :class:`_Abandoned` and the work is left to end with the process.

    Only for work that writes nothing (loading the model, warming it up, a search): Textual
    joins its worker threads on exit, so waiting for these would hold quitting up by seconds.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to the waiting worker, which raises it
            future.set_exception(exc)

    threading.Thread(target=run, name="xsearch-read", daemon=True).start()
    while True:
        try:
            return future.result(timeout=0.05)
        except FutureTimeout:
            if quitting.is_set():
                raise _Abandoned from None


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
    COMMANDS = App.COMMANDS | {XsearchCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        # the footer shows the bindings in this order: the first ones fit 80 columns
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "add_folder", "Add folder"),
        Binding("ctrl+o", "index_panel", "Index"),
        Binding("ctrl+l", "filters", "Filters"),
        Binding("f1,question_mark", "help", "Help"),
        Binding("ctrl+g", "cycle_mode", "Mode", show=False),
        Binding("ctrl+r", "toggle_rerank", "Rerank", show=False),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
        Binding("slash,escape", "focus_query", "Query", show=False),
        Binding("down", "focus_results", "Results", show=False),
    ]

    class SearchDone(Message):
        """A search finished; ``hits`` are for ``query`` under ``options``."""

        def __init__(self, query: str, options: SearchOptions, hits: list[Hit], ms: float) -> None:
            super().__init__()
            self.query, self.options, self.hits, self.ms = query, options, hits, ms

    class SearchFailed(Message):
        """A search raised an error the user should see; ``usage``: one about what was asked
        (a filtered language the index no longer holds), shown in the status bar."""

        def __init__(self, error: str, *, usage: bool = False) -> None:
            super().__init__()
            self.error, self.usage = error, usage

    class IndexOpened(Message):
        """The index was opened; its model is loading. ``languages``: its chunks per language."""

        def __init__(self, languages: dict[str, int]) -> None:
            super().__init__()
            self.languages = languages

    class EncoderLoaded(Message):
        """The index's model is loaded: it can be searched while it warms up."""

        def __init__(self, index: Index) -> None:
            super().__init__()
            self.index = index

    class IndexReady(Message):
        """The index was opened, its model loaded and warmed up (``info`` describes it), or
        opening it failed (``error``)."""

        def __init__(self, info: IndexInfo | None, error: str | None = None) -> None:
            super().__init__()
            self.info, self.error = info, error

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

    class RootsChanged(Message):
        """A folder was removed from the index (``error`` if that failed), or a watch run
        brought the index up to date (``report``)."""

        def __init__(self, error: str | None = None, report: IndexReport | None = None) -> None:
            super().__init__()
            self.error, self.report = error, report

    class Watching(Message):
        """The watch that ``stop`` ends began over ``folders`` folders, or (``None``) it ended,
        with ``error`` if it failed."""

        def __init__(self, stop: threading.Event, folders: int | None, error: str | None = None) -> None:
            super().__init__()
            self.stop, self.folders, self.error = stop, folders, error

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
        self._watch_stop: threading.Event | None = None
        self._quitting = threading.Event()
        """Set to end the watch; ``None`` while nothing is watched."""
        self._searched = threading.Event()
        """Set once a search has run on a loaded model, or there was none to run: the warm-up,
        which would slow a search down on a few cores, waits for it."""

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
            self.open_index()
        else:
            self.query_one(Preview).clear(f"No index at {self.index_path} yet: press ctrl+n to add a folder.")

    def open_index(self) -> None:
        """Open the index in the background; the status bar says the model is loading."""
        status = self.query_one(StatusBar)
        status.opening = True
        if self.job is None or not self.job.running:
            status.activity = "loading model"
        self._open_index()

    @work(thread=True, exclusive=True, group="open")
    def _open_index(self) -> None:
        """Open the index off the UI thread: its size shows at once, searches run as soon as its
        model is loaded, and the warm-up and the full description of the index come after."""
        index: Index | None = None
        searchable = False
        try:
            index = opened = abandonable(lambda: Index.open(self.index_path, backend=self.backend), self._quitting)
            self.post_message(self.IndexOpened(index.languages()))
            abandonable(lambda: opened.encoder, self._quitting)  # the property loads the model
            self.post_message(self.EncoderLoaded(index))
            searchable = True
            self._searched.wait(WARM_UP_WAIT_S)  # the query typed meanwhile goes first
            if self._quitting.is_set():
                return
            abandonable(index.warm, self._quitting)
            self.post_message(self.IndexReady(index.info()))
        except _Abandoned:
            return
        except XsearchError as exc:
            if index is not None and not searchable:
                index.close()
            self.post_message(self.IndexReady(None, str(exc)))

    @on(IndexOpened)
    @_while_running
    def _index_opened(self, message: IndexOpened) -> None:
        self.query_one(StatusBar).languages = message.languages

    @on(EncoderLoaded)
    @_while_running
    def _encoder_loaded(self, message: EncoderLoaded) -> None:
        if self.job is None or not self.job.running:
            self.query_one(StatusBar).activity = ""
        if self.index is not None and self.index is not message.index:
            self.index.close()
        self.index = message.index
        self._search_now()  # the query typed meanwhile

    @on(IndexReady)
    @_while_running
    def _index_ready(self, message: IndexReady) -> None:
        status = self.query_one(StatusBar)
        status.opening = False
        if self.job is None or not self.job.running:
            status.activity = ""
        if message.error is not None:
            self.query_one(Preview).clear(f"[red]{escape(message.error)}[/]")
            return
        status.info = message.info

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
            self._searched.set()
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
                hits = abandonable(lambda: index.search(query, **options.search_kwargs()), self._quitting)
            except _Abandoned:
                return
            except XsearchError as exc:
                self.post_message(self.SearchFailed(str(exc), usage=isinstance(exc, UsageError)))
                return
            finally:
                self._searched.set()
        if not worker.is_cancelled:
            self.post_message(self.SearchDone(query, options, hits, (time.perf_counter() - started) * 1000))

    @on(SearchDone)
    @_while_running
    def _search_done(self, message: SearchDone) -> None:
        self.last_query = message.query
        status = self.query_one(StatusBar)
        status.latency_ms, status.error = message.ms, ""
        results = self.query_one(ResultList)
        results.show(message.hits)
        if not message.hits:
            self.query_one(Preview).clear("No passages match.")

    @on(SearchFailed)
    @_while_running
    def _search_failed(self, message: SearchFailed) -> None:
        if message.usage:
            self.query_one(StatusBar).error = message.error
        else:
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
                    ("Query box", []), ("Indexing screen", IndexingScreen.BINDINGS),
                    ("Index folders", IndexPanel.BINDINGS)]
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

    def start_indexing(self, request: AddRequest | Path | None) -> None:
        """Index a folder (an :class:`AddRequest`, or a path) in a background worker and show its progress."""
        if request is None:
            return
        request = request if isinstance(request, AddRequest) else AddRequest(request)
        self._start_job(IndexJob(request.folder, follow=request.follow))

    def _start_job(self, job: IndexJob) -> None:
        self.job = job
        self.query_one(StatusBar).activity = self.job.summary()
        self.index_folder(self.job, self.index)
        self.push_screen(IndexingScreen(self.job))

    @work(thread=True, exclusive=True, group="index")
    def index_folder(self, job: IndexJob, reader: Index | None) -> None:
        """Add ``job.folder`` through a writer of its own; searches keep using the reader."""
        try:
            encoder = reader.encoder if reader is not None else None
            if (self.index_path / DB_NAME).is_file():
                writer = Index.open(self.index_path, encoder=encoder)  # the run loads a model it lacks
            else:
                if encoder is None:  # a new index loads its model first: the run's "load" phase, before the scan
                    self.post_message(self.IndexingProgress(job, IndexProgress("load", 0, 0, 0)))
                writer = Index.create(self.index_path, encoder=encoder, backend=self.backend)
            with writer:
                def progress(p: IndexProgress) -> None:
                    self.post_message(self.IndexingProgress(job, p))

                if job.resync:
                    report = writer.sync(cancel=job.cancel, progress=progress).report
                else:
                    report = writer.add_paths([job.folder], follow=job.follow, cancel=job.cancel, progress=progress)
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
            self._index_changed()

    def _index_changed(self) -> None:
        """The index was written: show its new size, search again and refresh the index panel."""
        if self.index is not None:
            self.query_one(StatusBar).info = self.index.info()
            self._search_now()
        if isinstance(self.screen, IndexPanel):
            self.screen.reload()

    # the index panel --------------------------------------------------------
    def action_index_panel(self) -> None:
        """The folders the index was built from: re-sync, remove, watch."""
        if not isinstance(self.screen, IndexPanel):
            self.push_screen(IndexPanel(self.index, watching=self._watch_stop is not None))

    def _busy(self) -> bool:
        if self.job is not None and self.job.running:
            self.notify("wait for the indexing run to end (or cancel it)", severity="warning")
            return True
        if self.index is None:
            self.notify("no index yet: ctrl+n adds a folder", severity="warning")
            return True
        return False

    @on(IndexPanel.Resync)
    def _resync(self) -> None:
        if not self._busy():
            self._start_job(IndexJob(self.index_path, resync=True))

    @on(IndexPanel.Remove)
    def _remove_root(self, message: IndexPanel.Remove) -> None:
        if not self._busy():
            self.query_one(StatusBar).activity = "removing a folder"
            self.remove_root(message.path, self.index)

    @work(thread=True, exclusive=True, group="index")
    def remove_root(self, path: str, reader: Index) -> None:
        """Remove ``path`` and its files through a writer of its own."""
        try:
            with Index.open(self.index_path, encoder=reader.encoder) as writer:
                writer.remove_paths([path])
        except XsearchError as exc:
            self.post_message(self.RootsChanged(str(exc)))
            return
        self.post_message(self.RootsChanged())

    @on(RootsChanged)
    @_while_running
    def _roots_changed(self, message: RootsChanged) -> None:
        status = self.query_one(StatusBar)
        if status.activity == "removing a folder":
            status.activity = ""
        if message.error is not None:
            self.notify(message.error, title="index", severity="error")
        self._index_changed()

    def action_toggle_watch(self) -> None:
        """Watch the index's folders for changes (or stop watching)."""
        self._set_watch(self._watch_stop is None)

    @on(IndexPanel.Watch)
    def _watch_asked(self, message: IndexPanel.Watch) -> None:
        self._set_watch(message.on)

    def _set_watch(self, on: bool) -> None:
        if on == (self._watch_stop is not None):
            return
        if not on and self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None
            self._show_watching(None)
        elif on and not self._busy():
            self._watch_stop = threading.Event()
            self._show_watching(0)
            self.watch_roots(self._watch_stop, self.index)

    def _show_watching(self, folders: int | None) -> None:
        self.query_one(StatusBar).watching = folders
        if isinstance(self.screen, IndexPanel):
            self.screen.show_watch(folders is not None)

    @work(thread=True, group="watch")
    def watch_roots(self, stop: threading.Event, reader: Index) -> None:
        """Keep the index current as files change under its roots, until ``stop`` is set."""
        try:
            with Index.open(self.index_path, encoder=reader.encoder) as writer:
                folders = sum(root.kind == "root" and root.exists for root in writer.roots())
                self.post_message(self.Watching(stop, folders))
                writer.watch(stop=stop, on_run=lambda report: self.post_message(self.RootsChanged(report=report)))
        except XsearchError as exc:
            self.post_message(self.Watching(stop, None, str(exc)))
            return
        self.post_message(self.Watching(stop, None))

    @on(Watching)
    @_while_running
    def _watching(self, message: Watching) -> None:
        if message.error is not None:
            self.notify(message.error, title="watch failed", severity="error")
        if message.stop is not self._watch_stop:
            return  # a watch already stopped
        if message.folders is None:
            self._watch_stop = None
        self._show_watching(message.folders)

    # quitting ---------------------------------------------------------------
    async def action_quit(self) -> None:
        """Stop the background work (which ends at its next check) and exit at once."""
        self._stop_background()
        self.exit()

    def _stop_background(self) -> None:
        self._quitting.set()
        self._searched.set()  # a warm-up still waiting ends at once
        self.workers.cancel_all()
        if self._debounce is not None:
            self._debounce.stop()
        if self.job is not None:
            self.job.cancel.set()
        if self._watch_stop is not None:
            self._watch_stop.set()

    def on_unmount(self) -> None:
        self._stop_background()
