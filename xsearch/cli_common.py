"""What the ``xsearch`` commands share: the consoles they print to and their common options.

Kept apart from :mod:`xsearch.cli` so that every module of commands can import it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .config import BACKENDS

if TYPE_CHECKING:
    from rich.console import Console


def print_error(message: str) -> None:
    """The one way a command reports what stopped it: ``error: …`` on one line of stderr."""
    text = " ".join(message.split())
    click.secho("error: ", fg="red", bold=True, err=True, nl=False)
    click.echo(text[:1].lower() + text[1:] if text[1:2].islower() else text, err=True)


def stderr_console() -> Console:
    """Where progress, notices and warnings go."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    """Where results go."""
    from rich.console import Console

    # Piped output is for scripts and pagers: never break a line inside a path or a word.
    return Console(highlight=False, soft_wrap=not sys.stdout.isatty())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
backend_option = click.option("--backend", type=click.Choice(BACKENDS), envvar="XSEARCH_BACKEND", default=None,
                              help="Run the encoder with OpenVINO or ONNX Runtime (int8, built once from the local "
                                   "model) or torch (fp32) [default: $XSEARCH_BACKEND, else openvino].")
