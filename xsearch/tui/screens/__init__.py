"""Screens pushed over the main one: help, filters, adding a folder, indexing progress and the index panel."""

from .filters import FiltersScreen
from .help import HelpScreen
from .indexing import AddFolderScreen, AddRequest, IndexingScreen, IndexJob
from .roots import ConfirmScreen, IndexPanel

__all__ = ["AddFolderScreen", "AddRequest", "ConfirmScreen", "FiltersScreen", "HelpScreen", "IndexJob",
           "IndexPanel", "IndexingScreen"]
