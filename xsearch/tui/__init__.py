"""The terminal UI: a Textual app over the :class:`~xsearch.index.Index` facade.

Textual is imported only when the UI starts, so the CLI stays quick.
"""

from __future__ import annotations

from pathlib import Path


def run(index_path: Path, *, backend: str | None = None) -> None:
    """Open the terminal UI on the index at ``index_path`` (created by the first folder added).

    ``backend`` says how the encoder runs (see :data:`xsearch.config.BACKENDS`).
    """
    from ..runtime import configure_process

    configure_process()  # before the app's imports load numpy
    from .app import XsearchApp

    XsearchApp(index_path, backend=backend).run()


__all__ = ["run"]
