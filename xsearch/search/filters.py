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
``lang``. :meth:`Filters.parse` checks a filter and raises :class:`UsageError` with the
reason; :meth:`Filters.where` turns it into SQL over ``chunks c JOIN documents d``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..store.db import TEXT_SOURCE

METADATA_PREFIX = "metadata."
Scalar = str | int | float | bool


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
            if not isinstance(key, str) or not key:
                raise UsageError(f"filter names must be non-empty strings, not {key!r}")
            if key == "lang":
                allowed_langs = _strings(key, value)
            elif key == "path":
                paths = _strings(key, value)
            else:
                field = key.removeprefix(METADATA_PREFIX)
                if not field or '"' in field:
                    raise UsageError(f"bad metadata field name {key!r} in filters")
                metadata.append((field, _values(key, value)))
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
            clauses.append(f"(d.path NOT GLOB ? AND ({' OR '.join(['d.path GLOB ?'] * len(globs))}))")
            params += [TEXT_SOURCE + "*", *globs]
        for field, values in self.metadata:
            clauses.append(f"json_extract(d.metadata, ?) IN ({_marks(values)})")
            params += [f'$."{field}"', *values]
        return " AND ".join(clauses), params


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _strings(key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) and x for x in items):
        raise UsageError(f"filter {key!r} takes a string or a list of strings, not {value!r}")
    if not items:
        raise UsageError(f"filter {key!r} needs at least one value")
    return tuple(dict.fromkeys(items))


def _values(key: str, value: Any) -> tuple[Scalar, ...]:
    if isinstance(value, Mapping):
        if set(value) != {"in"}:
            raise UsageError(f"filter {key!r}: the only operator is 'in', as in {{'in': [...]}}; got {sorted(value)}")
        items = value["in"]
        if not isinstance(items, (list, tuple)) or not items:
            raise UsageError(f"filter {key!r}: 'in' takes a non-empty list of values, not {items!r}")
        for item in items:
            _check_scalar(key, item)
        return tuple(items)
    if isinstance(value, (list, tuple)):
        raise UsageError(f"filter {key!r}: to match any of several values write {{'in': {list(value)!r}}}")
    _check_scalar(key, value)
    return (value,)


def _check_scalar(key: str, value: Any) -> None:
    if not isinstance(value, (str, int, float, bool)):
        raise UsageError(f"filter {key!r}: values must be strings, numbers or booleans, not {value!r}")
