"""The index panel: the folders the index was built from, with their state, and the actions on
them (re-sync all, remove one, watch for changes), which the app runs in the background."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from ...errors import XsearchError
from ...index import Index
from ...store.roots import RootInfo

STATUS_STYLES = {"ok": "green", "stale": "yellow", "missing": "red"}


def root_prompt(root: RootInfo) -> Text:
    """Two lines for one root: its state and path, then what it holds and when it was indexed."""
    name = root.path if root.kind == "root" else "texts added through the API" if root.kind == "texts" \
        else "files under no recorded folder"
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"{root.status:<7}", style=f"bold {STATUS_STYLES.get(root.status, '')}")
    out.append(f" {name}", style="bold")
    langs = ", ".join(list(root.languages)[:6]) + (" …" if len(root.languages) > 6 else "")
    facts = [_count(root.files, "file"), _count(root.chunks, "chunk"), langs or "no languages"]
    if root.indexed_at is not None:
        facts.append("indexed " + time.strftime("%Y-%m-%d %H:%M", time.localtime(root.indexed_at)))
    if root.missing_files or root.changed_files:
        facts.append(f"{root.changed_files:,} changed, {root.missing_files:,} gone")
    line = Text("        " + " · ".join(facts), style="dim")
    prompt = Text("\n").join([out, line])
    prompt.no_wrap, prompt.overflow = True, "ellipsis"
    return prompt


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; ``y`` or the Yes button confirms, ``n``/escape declines."""

    AUTO_FOCUS = "#no"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer(True)", "Yes"),
                                             Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes, remove", variant="error", id="yes")
                yield Button("No", id="no")

    def action_answer(self, answer: bool) -> None:
        """Close with ``answer``."""
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class IndexPanel(ModalScreen[None]):
    """The index's roots (from :meth:`Index.roots`, read in a worker) and their actions.

    The actions are messages the app acts on (it owns the writers and the watch), so they
    go on when the panel is closed; the app calls :meth:`reload` when the roots change.
    """

    AUTO_FOCUS = "#roots"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("s", "resync", "Re-sync all"),
        Binding("delete,d", "remove", "Remove"),
        Binding("w", "toggle_watch", "Watch on/off"),
    ]

    class Resync(Message):
        """Index every root again."""

    class Remove(Message):
        """Remove ``path`` (a root) and its files from the index."""

        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

    class Watch(Message):
        """Start (``on``) or stop watching the roots for changes."""

        def __init__(self, on: bool) -> None:
            super().__init__()
            self.on = on

    class Loaded(Message, bubble=False):
        """The roots were read (``roots``), or reading them failed (``error``)."""

        def __init__(self, roots: list[RootInfo], error: str | None = None) -> None:
            super().__init__()
            self.roots, self.error = roots, error

    def __init__(self, index: Index | None, *, watching: bool) -> None:
        super().__init__()
        self.index = index
        self.watching = watching
        self.roots: list[RootInfo] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="index-panel"):
            yield Label("[b]Index folders[/]  [dim]s re-syncs all · d removes · w watches · escape closes[/]")
            yield OptionList(id="roots")
            yield Static(id="roots-state")
            with Horizontal(id="roots-buttons"):
                yield Button("Re-sync all", id="resync")
                yield Button("Remove", variant="error", id="remove")
                yield Button(id="watch")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.show_watch(self.watching)

    def on_screen_resume(self) -> None:
        self.reload()  # on opening, and back from a run the panel started

    def reload(self) -> None:
        """Read the roots again (in a worker)."""
        self.query_one("#roots-state", Static).update("[dim]reading folders…[/]")
        if self.index is None:
            self.post_message(self.Loaded([], "no index yet: ctrl+n adds a folder"))
        else:
            self._load(self.index)

    @work(thread=True, exclusive=True, group="roots")
    def _load(self, index: Index) -> None:
        try:
            roots = index.roots()
        except XsearchError as exc:
            roots, error = [], str(exc)
        else:
            error = None
        if not get_current_worker().is_cancelled:
            self.post_message(self.Loaded(roots, error))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if not self.is_mounted:
            return
        self.roots = message.roots
        roots = self.query_one("#roots", OptionList)
        highlighted = roots.highlighted
        roots.clear_options()
        roots.add_options(Option(root_prompt(root), id=str(n)) for n, root in enumerate(self.roots))
        if self.roots:
            roots.highlighted = min(highlighted or 0, len(self.roots) - 1)
        folders = sum(root.kind == "root" for root in self.roots)
        state = message.error or f"{folders:,} folder{'' if folders == 1 else 's'}"
        self.query_one("#roots-state", Static).update(escape(state))

    def show_watch(self, watching: bool) -> None:
        """Show whether the roots are watched."""
        self.watching = watching
        self.query_one("#watch", Button).label = f"Watch: {'on' if watching else 'off'}"

    @property
    def current(self) -> RootInfo | None:
        """The root under the cursor."""
        index = self.query_one("#roots", OptionList).highlighted
        return self.roots[index] if index is not None and 0 <= index < len(self.roots) else None

    def action_resync(self) -> None:
        """Index every root again."""
        self.post_message(self.Resync())

    def action_remove(self) -> None:
        """Remove the root under the cursor, after a confirmation."""
        root = self.current
        if root is None or root.path is None:
            self.notify("choose a folder to remove", severity="warning")
            return
        path = root.path

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.post_message(self.Remove(path))

        self.app.push_screen(ConfirmScreen(f"Remove [b]{escape(path)}[/] and its {root.files:,} files "
                                           "from the index? The files on disk stay."), confirmed)

    def action_toggle_watch(self) -> None:
        """Start or stop watching the roots."""
        self.post_message(self.Watch(not self.watching))

    @on(Button.Pressed, "#resync")
    def _resync(self) -> None:
        self.action_resync()

    @on(Button.Pressed, "#remove")
    def _remove(self) -> None:
        self.action_remove()

    @on(Button.Pressed, "#watch")
    def _watch(self) -> None:
        self.action_toggle_watch()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
