"""Adding a folder: choosing it, then watching (or hiding) the background indexing run."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, ProgressBar, Static

from ...pipeline import IndexProgress, IndexReport
from ..widgets.toggles import Check

MAX_SKIPPED_SHOWN = 50


@dataclass
class IndexJob:
    """One indexing run started from the UI; updated on the UI thread as progress arrives."""

    folder: Path
    follow: bool = False
    """Follow symlinks inside the folder."""
    resync: bool = False
    """Index every root of the index again (``folder`` is the index) rather than ``folder``."""
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: IndexProgress | None = None
    embed_started: float | None = None
    updated: float | None = None
    report: IndexReport | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        """Neither finished nor failed."""
        return self.report is None and self.error is None

    def record(self, progress: IndexProgress, now: float | None = None) -> None:
        """Take a progress report (``now`` from :func:`time.monotonic`)."""
        now = time.monotonic() if now is None else now
        if progress.phase == "embed" and self.embed_started is None:
            self.embed_started = now
        self.progress, self.updated = progress, now

    def rate(self) -> float | None:
        """Chunks per second since embedding began."""
        p = self.progress
        if p is None or self.embed_started is None or self.updated is None or self.updated <= self.embed_started:
            return None
        return p.chunks_done / (self.updated - self.embed_started)

    def eta(self) -> float | None:
        """Seconds left, from the share of files done so far."""
        p = self.progress
        if p is None or self.embed_started is None or self.updated is None or not p.files_done:
            return None
        spent = self.updated - self.embed_started
        return spent * (p.files_total - p.files_done) / p.files_done

    def summary(self) -> str:
        """One line for the status bar."""
        if self.error is not None:
            return "indexing failed"
        if self.report is not None:
            return "indexing cancelled" if self.report.cancelled else "indexing done"
        p = self.progress
        if p is not None and p.phase == "load":
            return "indexing: loading model"
        if p is None or p.phase == "scan" or not p.files_total:
            return "indexing: scanning"
        return f"indexing {p.files_done / p.files_total:.0%}"


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


@dataclass(frozen=True)
class AddRequest:
    """A folder (or file) to add, as the add-folder dialog returns it."""

    folder: Path
    follow: bool = False
    """Follow symlinks inside the folder."""


class AddFolderScreen(ModalScreen[AddRequest | None]):
    """Asks for a folder (or file) to add and whether to follow its symlinks; returns an
    :class:`AddRequest` with the resolved path, or ``None``."""

    AUTO_FOCUS = "#folder"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="add-folder"):
            yield Label("[b]Add a folder to the index[/]  [dim]enter starts, escape cancels[/]")
            yield Input(placeholder="~/Documents/notes", id="folder")
            yield Check("Follow symlinks inside the folder", id="follow", compact=True)
            yield Label("", id="folder-error")

    @on(Input.Submitted, "#folder")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        path = Path(text).expanduser()
        if not text:
            error = "type a path"
        elif not path.exists():
            error = f"{text}: no such file or folder"
        else:
            self.dismiss(AddRequest(path.resolve(), self.query_one("#follow", Check).value))
            return
        self.query_one("#folder-error", Label).update(f"[red]{escape(error)}[/]")

    def action_cancel(self) -> None:
        """Close without adding anything."""
        self.dismiss(None)


class IndexingScreen(ModalScreen[None]):
    """Progress of an :class:`IndexJob` (files, chunks, chunks/s, time left), then its summary.

    Hiding the screen leaves the run going; the index stays searchable meanwhile. Once the
    run ends, its cancel key and button are gone.
    """

    AUTO_FOCUS = "#hide"

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Hide"), Binding("c", "cancel_job", "Cancel indexing")]

    def __init__(self, job: IndexJob) -> None:
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        with Vertical(id="indexing"):
            title = "every folder again" if self.job.resync else escape(str(self.job.folder))
            yield Label(f"[b]Indexing[/] {title}", id="indexing-title")
            yield ProgressBar(total=None, show_eta=False, id="indexing-bar")
            yield Static(id="indexing-stats")
            with VerticalScroll(id="indexing-summary"):
                yield Static(id="indexing-report")
            with Horizontal(id="indexing-buttons"):
                yield Button("Hide", id="hide")
                yield Button("Cancel indexing", variant="error", id="cancel")

    def on_mount(self) -> None:
        self.refresh_job()

    def refresh_job(self) -> None:
        """Redraw from the job's current state (the app calls this on every progress report)."""
        job, p = self.job, self.job.progress
        bar = self.query_one("#indexing-bar", ProgressBar)
        if p is not None and p.phase not in ("scan", "load"):
            bar.update(total=max(p.files_total, 1), progress=p.files_done if p.files_total else 1)
        stats = []
        if p is None or p.phase == "scan":
            stats.append("scanning files…")
        elif p.phase == "load":
            stats.append("loading the model…")
            if p.files_total:
                stats.append(f"files to read [b]{p.files_total:,}[/]")
        else:
            stats.append(f"files [b]{p.files_done:,}[/] of {p.files_total:,}")
            stats.append(f"chunks [b]{p.chunks_done:,}[/]")
            rate, eta = job.rate(), job.eta()
            if rate is not None:
                stats.append(f"[b]{rate:,.1f}[/] chunks/s")
            if eta is not None and job.running:
                stats.append(f"time left [b]{_clock(eta)}[/]")
        self.query_one("#indexing-stats", Static).update("  ·  ".join(stats))
        self.query_one("#indexing-report", Static).update(self._report())
        cancel = self.query_one("#cancel", Button)
        cancel.display = job.running
        cancel.disabled = job.cancel.is_set()
        self.query_one("#hide", Button).label = "Hide" if job.running else "Close"
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The cancel key exists only while the run does."""
        return self.job.running if action == "cancel_job" else True

    def _report(self) -> str:
        job = self.job
        if job.error is not None:
            return f"[red]failed:[/] {escape(job.error)}\nThe index keeps everything committed before the failure."
        report = job.report
        if report is None:
            note = "\n[yellow]cancelling after the current file…[/]" if job.cancel.is_set() else ""
            return "[dim]escape hides this screen; indexing goes on and the index stays searchable.[/]" + note
        head = "[yellow]cancelled[/]: what was committed stays; add the folder again to finish." if report.cancelled \
            else f"[green]done[/] in {report.seconds:.1f} s."
        files = (f"files added {report.files_added:,}, updated {report.files_updated:,}, "
                 f"removed {report.files_removed:,}, unchanged {report.files_unchanged:,}")
        lines = [head, files, f"documents {report.documents_added:,}, chunks {report.chunks_added:,}"]
        if report.skipped:
            lines.append(f"\n[b]skipped {len(report.skipped):,}[/]")
            lines += [f"  {escape(s.path)}: {escape(s.reason)}" for s in report.skipped[:MAX_SKIPPED_SHOWN]]
            if len(report.skipped) > MAX_SKIPPED_SHOWN:
                lines.append(f"  … and {len(report.skipped) - MAX_SKIPPED_SHOWN:,} more")
        return "\n".join(lines)

    def action_cancel_job(self) -> None:
        """Ask the run to stop after the current file."""
        if self.job.running:
            self.job.cancel.set()
            self.refresh_job()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel_job()

    @on(Button.Pressed, "#hide")
    def _hide(self) -> None:
        self.dismiss(None)
