"""Search filters: which passages a query may return, decided before the top-k is cut.

A filter is a dict; every entry must hold (they are AND-ed):

- ``{"lang": "de"}`` or ``{"lang": ["de", "ja"]}``: the passage's language is one of these;
- ``{"path": "*.md"}`` or ``{"path": ["notes/*", "/srv/docs/*"]}``: the document is a file
  whose absolute path matches one of these shell-style patterns (``*`` also matches ``/``,
  case-sensitive); a pattern not starting with ``/`` may match the end of the path. Texts
  (documents added without a file) never match a path filter;
- ``{"field": value}``: the document's metadata field equals ``value`` (a string, number or
  boolean);
- ``{"field": {"in": [v1, v2]}}``: the metadata field equals one of the values.

``lang`` and ``path`` are reserved; ``"metadata.lang"`` names a metadata field called
``lang``. A filter names at most :data:`MAX_FILTER_FIELDS` metadata fields and holds at most
:data:`MAX_FILTER_VALUES` values in all (languages, patterns and field values together), so any
filter that parses also runs. :meth:`Filters.parse` checks a filter and raises
:class:`UsageError` with the reason; :meth:`Filters.where` turns it into SQL over
``chunks c JOIN documents d``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..store.db import TEXT_SOURCE

METADATA_PREFIX = "metadata."
Scalar = str | int | float | bool
MAX_FILTER_FIELDS = 64
"""Most metadata fields one filter may name."""
MAX_FILTER_VALUES = 1024
"""Most values one filter may hold in all: languages, path patterns and metadata values."""


@dataclass(frozen=True)
class Filters:
    """A checked filter (see the module docstring)."""

    langs: tuple[str, ...] | None = None
    """Allowed passage languages, or None for any."""
    paths: tuple[str, ...] = ()
    """Path patterns, any of which the document's path must match; empty for any."""
    metadata: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()
    """``(field, allowed values)`` pairs."""

    @classmethod
    def parse(cls, filters: Mapping[str, Any] | None, *, langs: Sequence[str] | None = None) -> Filters | None:
        """Check ``filters`` (and the older ``langs`` argument); None when nothing is filtered."""
        if filters is None:
            filters = {}
        if not isinstance(filters, Mapping):
            raise UsageError(f"filters must be a dict such as {{'lang': ['de']}}, not {type(filters).__name__}")
        allowed_langs = None
        paths: tuple[str, ...] = ()
        metadata: list[tuple[str, tuple[Scalar, ...]]] = []
        for key, value in filters.items():
            if not isinstance(key, str) or not key or not _is_unicode(key):
                raise UsageError(f"filter names must be non-empty strings, not {_shown(key)}")
            if key == "lang":
                allowed_langs = _strings(key, value)
            elif key == "path":
                paths = _strings(key, value)
            else:
                field = key.removeprefix(METADATA_PREFIX)
                if not field or '"' in field or "\x00" in field:
                    raise UsageError(f"bad metadata field name {_shown(key)} in filters")
                if len(metadata) == MAX_FILTER_FIELDS:
                    raise UsageError(f"filters name more than {MAX_FILTER_FIELDS} metadata fields")
                metadata.append((field, _values(key, value)))
        n_values = len(allowed_langs or ()) + len(paths) + sum(len(values) for _, values in metadata)
        if n_values > MAX_FILTER_VALUES:
            raise UsageError(f"filters hold {n_values} values; at most {MAX_FILTER_VALUES}")
        if langs:
            wanted = tuple(dict.fromkeys(langs))
            allowed_langs = wanted if allowed_langs is None else tuple(x for x in allowed_langs if x in wanted)
        if allowed_langs is None and not paths and not metadata:
            return None
        return cls(langs=allowed_langs, paths=paths, metadata=tuple(metadata))

    def where(self) -> tuple[str, list[Any]]:
        """An SQL condition over ``chunks c JOIN documents d``, and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.langs is not None:
            clauses.append(f"c.lang IN ({_marks(self.langs)})" if self.langs else "0")
            params += self.langs
        if self.paths:
            globs = [g for p in self.paths for g in ((p,) if p.startswith("/") else (p, "*/" + p))]
            clauses.append(f"(d.path NOT GLOB ? AND {_any_of(['d.path GLOB ?'] * len(globs))})")
            params += [TEXT_SOURCE + "*", *globs]
        for field, values in self.metadata:
            # metadata that is not valid JSON (NaN written by an older version) matches nothing
            clauses.append(f"(json_valid(d.metadata) AND json_extract(d.metadata, ?) IN ({_marks(values)}))")
            params += [f'$."{field}"', *values]
        return " AND ".join(clauses), params


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _any_of(conditions: Sequence[str]) -> str:
    """``conditions`` OR-ed as a balanced tree: SQLite limits how deep an expression nests."""
    if len(conditions) == 1:
        return conditions[0]
    half = len(conditions) // 2
    return f"({_any_of(conditions[:half])} OR {_any_of(conditions[half:])})"


def _shown(value: Any) -> str:
    """``value`` as an error message shows it: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_unicode(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8: JSON may escape a lone surrogate, no text holds one."""
    return _SURROGATE.search(text) is None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _strings(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) and x and _is_unicode(x) for x in items):
        raise UsageError(f"filter {_shown(key)} takes a string or a list of strings, not {_shown(value)}")
    if not items:
        raise UsageError(f"filter {_shown(key)} needs at least one value")
    return tuple(dict.fromkeys(items))


def _values(key: str, value: Any) -> tuple[Scalar, ...]:
    if isinstance(value, Mapping):
        if set(value) != {"in"}:
            raise UsageError(f"filter {_shown(key)}: the only operator is 'in', as in {{'in': [...]}}; "
                             f"got {_shown(list(value))}")
        items = value["in"]
        if not isinstance(items, (list, tuple)) or not items:
            raise UsageError(f"filter {_shown(key)}: 'in' takes a non-empty list of values, not {_shown(items)}")
        for item in items:
            _check_scalar(key, item)
        return tuple(items)
    if isinstance(value, (list, tuple)):
        raise UsageError(f"filter {_shown(key)}: to match any of several values write {{'in': {_shown(list(value))}}}")
    _check_scalar(key, value)
    return (value,)


def _check_scalar(key: str, value: Any) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise UsageError(f"filter {_shown(key)}: values must be strings, numbers or booleans, not {_shown(value)}")
    if isinstance(value, str) and not _is_unicode(value):
        raise UsageError(f"filter {_shown(key)}: {_shown(value)} is not valid Unicode (it holds a lone surrogate)")
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise UsageError(f"filter {_shown(key)}: {_shown(value)} is out of range (64-bit integers only)")


_INT64 = (-(2**63), 2**63 - 1)
