"""Adapters that plug an :class:`xsearch.Index` into other frameworks (optional extras)."""
