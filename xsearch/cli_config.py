"""The user's config file for the ``xsearch`` command: defaults for the index, backend, ``k`` and mode.

The file is ``config.toml`` in the user's config folder (``~/.config/xsearch/config.toml`` on
Linux, as :mod:`platformdirs` gives it), or the file ``$XSEARCH_CONFIG`` names::

    index = "~/indexes/notes"   # the index commands use without --index
    backend = "onnx"            # openvino, onnx or torch
    k = 5                       # hits per search
    mode = "hybrid"             # dense, lexical or hybrid

Every key is optional. An environment variable (``$XSEARCH_INDEX``, ``$XSEARCH_BACKEND``,
``$XSEARCH_K``, ``$XSEARCH_MODE``) overrides the file, and a flag overrides both. A file that
cannot be read, an unknown key or a bad value is a :class:`~xsearch.errors.UsageError` naming
the file and the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .config import BACKENDS, MAX_K, MODES
from .errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "XSEARCH_CONFIG"
CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class CliConfig:
    """What the config file sets; None where it says nothing."""

    index: str | None = None
    """The index directory of commands given no ``--index`` (``~`` is expanded)."""
    backend: str | None = None
    """How the encoder runs: one of :data:`~xsearch.config.BACKENDS`."""
    k: int | None = None
    """Hits per search, from 1 to :data:`~xsearch.config.MAX_K`."""
    mode: str | None = None
    """The search mode: one of :data:`~xsearch.config.MODES`."""

    def option_defaults(self) -> dict[str, Any]:
        """The values set, by the name of the command option they are the default of."""
        names = {"index": "index_dir", "backend": "backend", "k": "k", "mode": "mode"}
        return {names[f.name]: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def config_path() -> Path:
    """``$XSEARCH_CONFIG``, else ``config.toml`` in the user's config folder for xsearch."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("xsearch", appauthor=False)) / CONFIG_NAME


def load_config(path: Path | None = None) -> CliConfig:
    """The config at ``path`` (default :func:`config_path`); empty when there is no file at the
    default place, an error when ``$XSEARCH_CONFIG`` names a file that is not there."""
    path = path or config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if os.environ.get(CONFIG_ENV):
            raise UsageError(f"config file {path} (${CONFIG_ENV}) does not exist") from None
        return CliConfig()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
    return parse_config(table, path)


def parse_config(table: Mapping[str, Any], path: Path) -> CliConfig:
    """Check the keys and values of a config file's table."""
    known = [f.name for f in fields(CliConfig)]
    for key in table:
        if key not in known:
            raise UsageError(f"config file {path}: unknown key {key!r} (known keys: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key, value in table.items():
        values[key] = _checked(key, value, path)
    return CliConfig(**values)


def _checked(key: str, value: Any, path: Path) -> Any:
    def bad(wanted: str) -> UsageError:
        return UsageError(f"config file {path}: {key} = {value!r} is not {wanted}")

    if key == "index":
        if not isinstance(value, str) or not value.strip():
            raise bad("a folder path (a string)")
        return str(Path(value).expanduser())
    if key == "k":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
            raise bad(f"a whole number from 1 to {MAX_K}")
        return value
    choices = {"backend": BACKENDS, "mode": MODES}[key]
    if value not in choices:
        raise bad("one of " + ", ".join(choices))
    return value
