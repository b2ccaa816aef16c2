"""Screens pushed over the main one: help, filters, adding a folder and indexing progress."""

from .filters import FiltersScreen
from .help import HelpScreen
from .indexing import AddFolderScreen, IndexingScreen, IndexJob

__all__ = ["AddFolderScreen", "FiltersScreen", "HelpScreen", "IndexJob", "IndexingScreen"]
