"""The app's own actions in the command palette (ctrl+p), beside Textual's system commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS = (
    ("Search mode: next", "cycle_mode", "dense, hybrid, lexical in turn"),
    ("Rerank on/off", "toggle_rerank", "late-interaction rerank and its highlights"),
    ("Filters", "filters", "languages, path glob, mode, rerank, feedback, grouping, k"),
    ("Add folder", "add_folder", "index a folder in the background"),
    ("Index folders", "index_panel", "the folders indexed, re-sync, remove, watch"),
    ("Watch folders on/off", "toggle_watch", "keep the index current as files change"),
    ("Theme: light/dark", "toggle_theme", "switch between the light and the dark theme"),
    ("Open hit", "open_hit", "the highlighted hit's file in $EDITOR at the passage"),
    ("Copy hit", "copy_hit", "the highlighted passage to the clipboard"),
    ("Keys", "help", "every key binding"),
)
"""Name, app action and help line of each command."""


class XsearchCommands(Provider):
    """Offers :data:`COMMANDS`, each running the app action of the same name."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        for name, action, help_text in COMMANDS:
            yield name, partial(self.app.run_action, action), help_text

    async def discover(self) -> Hits:
        for name, run, help_text in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, run, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
