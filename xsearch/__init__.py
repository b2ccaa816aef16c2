"""xsearch: multilingual semantic search that runs offline on a laptop.

>>> from xsearch import Index
>>> with Index.open_or_create("indexes/default") as index:   # doctest: +SKIP
...     index.add_paths(["data/sample"])
...     hits = index.search("wie wandeln Pflanzen Licht in Energie um?", k=5)

Names are imported lazily so that ``import xsearch`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .config import IndexConfig
    from .errors import XsearchError
    from .index import Index, IndexInfo, Removal, SyncReport
    from .pipeline import IndexReport
    from .store.roots import RootInfo
    from .types import Chunk, Document, Hit

_EXPORTS = {
    "Index": ".index",
    "IndexInfo": ".index",
    "IndexConfig": ".config",
    "IndexReport": ".pipeline",
    "Hit": ".types",
    "Document": ".types",
    "Chunk": ".types",
    "XsearchError": ".errors",
    "RootInfo": ".store.roots",
    "Removal": ".index",
    "SyncReport": ".index",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'xsearch' has no attribute {name!r}")
