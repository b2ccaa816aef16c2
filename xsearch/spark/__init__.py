"""Indexing on Apache Spark: the stages of a local run, with the reading, chunking and embedding
spread over a cluster's tasks and the result bulk-loaded into a normal index.

Only this package imports pyspark (an optional extra: ``pip install 'xsearch[spark]'``, with
Java 17). :func:`index_paths` is what ``Index.add_paths(..., engine="spark")`` runs.
"""

from __future__ import annotations

from .job import DEFAULT_MASTER, index_paths, require_spark, spark_session

__all__ = ["DEFAULT_MASTER", "index_paths", "require_spark", "spark_session"]
