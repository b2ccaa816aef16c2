"""Widgets of the main screen, one module per screen area."""

from .bars import FilterBar, StatusBar
from .preview import Preview
from .results import ResultList

__all__ = ["FilterBar", "Preview", "ResultList", "StatusBar"]
