"""Languages, path glob, mode, rerank, feedback, grouping and k, edited together and applied at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioSet
from textual.widgets.selection_list import Selection

from ...config import MAX_K
from ..options import MODE_ORDER, SearchOptions
from ..widgets.toggles import Check, CheckList, Radio


class FiltersScreen(ModalScreen[SearchOptions | None]):
    """Returns the new :class:`SearchOptions`, or ``None`` when cancelled.

    The languages list has the focus first; on a short terminal the dialog scrolls.
    """

    AUTO_FOCUS = "#langs"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "apply", "Apply")]

    def __init__(self, options: SearchOptions, languages: Mapping[str, int]) -> None:
        super().__init__()
        self.options = options
        self.languages = dict(languages)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="filters"):
            yield Label("[b]Filters[/]  [dim]ctrl+s applies, escape cancels[/]")
            with Horizontal():
                with Vertical(id="filters-langs"):
                    yield Label("Languages [dim](none ticked: all)[/]")
                    yield CheckList(
                        *(Selection(f"{lang}  [dim]{n:,} chunks[/]", lang, lang in self.options.langs)
                          for lang, n in self.languages.items()),
                        id="langs",
                    )
                with Vertical(id="filters-side"):
                    yield Label("Mode")
                    with RadioSet(id="mode", compact=True):
                        for mode in MODE_ORDER:
                            yield Radio(mode, value=mode == self.options.mode, name=mode, compact=True)
                    yield Check("Rerank", self.options.rerank, id="rerank", compact=True)
                    yield Check("Feedback", self.options.feedback, id="feedback", compact=True)
                    yield Check("Group translations", self.options.group_translations, id="group-translations",
                                compact=True)
                    with Horizontal(classes="row"):
                        yield Label(f"Results k [dim](1–{MAX_K})[/] ")
                        yield Input(str(self.options.k), type="integer", id="k", compact=True)
            yield Label("Path glob [dim](e.g. */notes/*.md)[/]")
            yield Input(self.options.path, placeholder="all files", id="path", compact=True)
            with Horizontal(id="filters-buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Cancel", id="cancel")

    def _collect(self) -> SearchOptions | None:
        k_text = self.query_one("#k", Input).value.strip()
        k = int(k_text) if k_text.isdigit() else 0
        if not 1 <= k <= MAX_K:
            self.notify(f"k must be between 1 and {MAX_K}", severity="error")
            return None
        pressed = self.query_one("#mode", RadioSet).pressed_button
        return SearchOptions(
            k=k,
            mode=pressed.name if pressed is not None and pressed.name else self.options.mode,
            rerank=self.query_one("#rerank", Check).value,
            feedback=self.query_one("#feedback", Check).value,
            group_translations=self.query_one("#group-translations", Check).value,
            langs=tuple(self.query_one("#langs", CheckList).selected),
            path=self.query_one("#path", Input).value.strip(),
        )

    def action_apply(self) -> None:
        """Close with the edited options."""
        options = self._collect()
        if options is not None:
            self.dismiss(options)

    def action_cancel(self) -> None:
        """Close without changes."""
        self.dismiss(None)

    @on(Button.Pressed, "#apply")
    @on(Input.Submitted)
    def _apply(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()
