"""One exception tree for everything xsearch raises on purpose.

Every error carries a message a user can act on; the CLI prints it on one line
and exits with the error's ``exit_code``.
"""

from __future__ import annotations


class XsearchError(Exception):
    """Base class of every error xsearch raises deliberately."""

    exit_code = 1


class UsageError(XsearchError):
    """The caller asked for something that cannot work (bad path, bad option)."""

    exit_code = 2


class UnknownLanguageError(UsageError):
    """A search asked for a language the index holds no passages in (or no language at all)."""

    def __init__(self, message: str, languages: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.languages = languages
        """The languages the index does hold."""


class ExtractionError(XsearchError):
    """A file could not be turned into text; the file is skipped, not fatal."""


class ModelError(XsearchError):
    """A model is missing, cannot be built, or does not fit the index."""

    exit_code = 3


class UnknownModelError(ModelError):
    """No model goes by this name: not in the registry, imported, cached or a local folder."""


class IndexNotFoundError(XsearchError):
    """The directory holds no xsearch index."""

    exit_code = 4


class IndexCorruptError(XsearchError):
    """An index file exists but cannot be read back."""

    exit_code = 5


class IndexMismatchError(XsearchError):
    """The index was built with other settings (model, pooling) than requested."""

    exit_code = 6


class IndexLockedError(XsearchError):
    """Another process is writing to the index."""

    exit_code = 7


class EngineJobError(XsearchError):
    """A job on another engine (Apache Spark) failed; the index is as it was before it."""

    exit_code = 8


class IndexReadOnlyError(UsageError):
    """The index may be searched but not written (a read-only folder, file or mount)."""
