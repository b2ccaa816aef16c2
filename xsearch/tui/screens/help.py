"""Every key binding, read from the bindings themselves so the list cannot drift."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

QUERY_KEYS = (("enter", "search now"), ("ctrl+u, ctrl+k", "clear before / after the cursor"))
RESULT_KEYS = (("up, down", "move through the results"), ("pageup, pagedown", "a page at a time"),
               ("enter, tab", "to the preview"))


class HelpScreen(ModalScreen[None]):
    """The key bindings of the app and its widgets, in sections."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, sections: Iterable[tuple[str, Iterable[Binding]]]) -> None:
        super().__init__()
        self.sections = [(title, list(bindings)) for title, bindings in sections]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[b]xsearch keys[/]  [dim]escape closes[/]", id="help-title")
            yield Static(self._table())

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        extra = {"Query box": QUERY_KEYS, "Results": RESULT_KEYS}
        for title, bindings in self.sections:
            table.add_row(f"[b u]{title}[/]", "")
            for binding in bindings:
                keys = ", ".join(self.app.get_key_display(Binding(key, binding.action))
                                  for key in binding.key.split(","))
                table.add_row(keys, binding.description or binding.action)
            for keys, what in extra.get(title, ()):
                table.add_row(keys, what)
            table.add_row("", "")
        return table
