"""Indexing on Apache Spark (``--engine spark``): the same index as a local run, built on a real
``local[2]`` cluster. Skipped without pyspark, pyarrow or Java.

One Spark session serves the whole module (the JVM takes seconds to start); the Python workers
it keeps load the encoder once.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark")
pytest.importorskip("pyarrow")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

from conftest import SAMPLE, run_cli  # noqa: E402

from xsearch import Index  # noqa: E402
from xsearch.errors import EngineJobError  # noqa: E402
from xsearch.spark import spark_session  # noqa: E402
from xsearch.spark.job import JOB_GROUP, STAGING_PREFIX  # noqa: E402

QUERIES = ("wie wandeln Pflanzen Licht in Energie um?", "How do plants make oxygen?")
"""The README's sample queries."""


@pytest.fixture(scope="module")
def spark(model_cache: Path):
    """A ``local[2]`` session, active for the module: ``engine="spark"`` runs on it."""
    with spark_session("local[2]") as session:
        yield session


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample corpus (the Spark-built index records its own paths)."""
    return Path(shutil.copytree(SAMPLE, tmp_path_factory.mktemp("spark") / "docs"))


@pytest.fixture(scope="module")
def spark_index(spark, corpus: Path, encoder, tmp_path_factory: pytest.TempPathFactory):
    index = Index.create(tmp_path_factory.mktemp("spark") / "index", encoder=encoder)
    report = index.add_paths([corpus], engine="spark", partitions=3)
    yield index, report
    index.close()


def _relative(hits, root: Path) -> list[tuple[str, int]]:
    return [(str(Path(h.path).resolve().relative_to(root.resolve())), h.start) for h in hits]


def test_spark_index_answers_like_a_local_one(spark_index, sample_index: Index, corpus: Path) -> None:
    index, report = spark_index
    assert (report.files_added, report.cancelled) == (index.store.counts()["files"], False)
    assert index.store.counts() == sample_index.store.counts()
    assert index.languages() == sample_index.languages()
    assert index.info().translations == sample_index.info().translations
    for query in QUERIES:
        spark_hits = _relative(index.search(query, k=10), corpus)
        local_hits = _relative(sample_index.search(query, k=10), SAMPLE)
        assert len(set(spark_hits) & set(local_hits)) / len(local_hits) >= 0.9, query
    assert not list(index.path.glob(STAGING_PREFIX + "*"))


def test_cli_reads_a_spark_built_index(spark_index) -> None:
    index, _ = spark_index
    info = run_cli("info", "--index", str(index.path), "--json")
    assert info.returncode == 0, info.stderr
    assert f'"chunks": {index.store.counts()["chunks"]}' in info.stdout
    found = run_cli("search", QUERIES[0], "--index", str(index.path), "--compact", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert "photosynthesis/" in found.stdout.splitlines()[0]


def test_a_run_with_nothing_changed_sends_nothing_to_the_cluster(spark, spark_index, corpus: Path) -> None:
    index, first = spark_index
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup(JOB_GROUP)
    generation = index.store.generation
    report = index.add_paths([corpus], engine="spark")
    assert (report.files_added, report.files_updated, report.chunks_added) == (0, 0, 0)
    assert report.files_unchanged == first.files_added
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(JOB_GROUP) == jobs
    assert index.store.generation == generation


@pytest.fixture
def small_index(spark, encoder, tmp_path: Path):
    """An index built on Spark from two topics of the sample corpus, and that folder."""
    folder = tmp_path / "docs"
    for topic in ("volcanoes", "coffee_history"):
        shutil.copytree(SAMPLE / topic, folder / topic)
    index = Index.create(tmp_path / "index", encoder=encoder)
    index.add_paths([folder], engine="spark", partitions=2)
    yield index, folder
    index.close()


def _state(index: Index) -> tuple:
    """Everything a run could change: database rows (hashed) and the files of the index folder."""
    conn = index.store.db.conn
    digest = hashlib.sha256()
    for table in ("files", "documents", "chunks", "vectors", "token_vectors", "lang_stats", "token_lang_stats",
                  "tombstones", "blobs", "settings"):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
            digest.update(repr(row).encode())
    return digest.hexdigest(), sorted(p.name for p in index.path.iterdir() if not p.name.startswith("xsearch.db-"))


def _change_and_delete(folder: Path) -> tuple[Path, Path]:
    changed, deleted = folder / "volcanoes" / "en.txt", folder / "coffee_history" / "de.md"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nThe caldera lake glows turquoise at dawn.\n",
                       encoding="utf-8")
    deleted.unlink()
    return changed, deleted


def test_changed_and_deleted_files_are_handled(small_index) -> None:
    index, folder = small_index
    before = index.store.counts()
    changed, deleted = _change_and_delete(folder)
    report = index.add_paths([folder], engine="spark")
    assert (report.files_added, report.files_updated, report.files_removed) == (0, 1, 1)
    states = index.store.file_states()
    assert str(deleted) not in states and str(changed) in states
    assert index.store.counts()["files"] == before["files"] - 1
    hits = index.search("caldera lake turquoise", k=3, mode="lexical")
    assert hits and hits[0].path == str(changed)
    # the per-language sums follow the chunks: one vector counted per chunk
    assert index.store.language_means().total == index.store.counts()["chunks"]


def _cancel_when_running(spark) -> threading.Thread:
    """Cancel the first Spark job as soon as it runs (as a stopped cluster would end it)."""
    def cancel() -> None:
        tracker = spark.sparkContext.statusTracker()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if tracker.getActiveJobsIds():
                spark.sparkContext.cancelAllJobs()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_a_failed_job_leaves_the_index_as_it_was(spark, small_index, tmp_path: Path) -> None:
    index, folder = small_index
    _change_and_delete(folder)
    before = _state(index)
    canceller = _cancel_when_running(spark)
    with pytest.raises(EngineJobError, match="index is unchanged"):
        index.add_paths([folder], engine="spark")
    canceller.join()
    assert _state(index) == before
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(EngineJobError):
        index.add_paths([folder], engine="spark", staging=blocker / "staging")
    assert _state(index) == before
    report = index.add_paths([folder], engine="spark")  # the next run does the work
    assert (report.files_updated, report.files_removed) == (1, 1)


def test_without_pyspark_the_engine_is_refused_in_one_line(tmp_path: Path) -> None:
    import subprocess

    code = ("import sys; sys.modules['pyspark'] = None; from xsearch.cli import main; "
            f"main(['index', {str(SAMPLE)!r}, '--engine', 'spark', '--index', {str(tmp_path / 'index')!r}])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --engine spark needs pyspark: pip install 'xsearch[spark]'"]
    assert not (tmp_path / "index").exists()


def test_spark_options_need_the_spark_engine(tmp_path: Path) -> None:
    done = run_cli("index", str(SAMPLE), "--index", str(tmp_path / "index"), "--master", "local[2]")
    assert done.returncode == 2
    assert "apply to --engine spark" in done.stderr


def test_a_sharded_vector_index_finds_what_the_exact_one_finds(spark, small_index, tmp_path: Path) -> None:
    """The vector index of a large first build, made in shards on Spark and merged on disk, here
    with a small IVF factory over a fresh build of the same folder."""
    from xsearch.spark.job import _load, _run_job, build_sharded
    from xsearch.pipeline import scan_files
    from xsearch.spark.tasks import TaskSettings

    exact, folder = small_index
    index = Index.create(tmp_path / "sharded", encoder=exact.encoder)
    found = scan_files(index.store, [folder])
    codec = exact.store.token_codec()
    settings = TaskSettings(index.config, None, codec.to_bytes())
    assert _run_job(spark, found.todo, settings, tmp_path / "parts", partitions=3, notify=lambda _p: None,
                    cancel=None)
    loaded = _load(index.store, tmp_path / "parts", [], [], codec, {})
    assert [part.chunks for part in loaded.parts if part.chunks]
    out = build_sharded(spark, index.store, index.path, index.config.scoring, loaded.parts, "IVF2,Flat",
                        tmp_path / "shards")
    assert out.is_file() and out.with_suffix(".ivfdata").is_file()
    reopened = Index.open(index.path)
    ann = reopened.vectors.sync(save=False)
    assert (ann.factory, len(ann)) == ("IVF2,Flat", reopened.store.counts()["chunks"])
    for query in ("volcanic eruption lava", "history of coffee"):  # no translation links here: no feedback
        got = [(h.path, h.start) for h in reopened.search(query, k=5, feedback=False)]
        want = [(h.path, h.start) for h in exact.search(query, k=5, feedback=False)]
        assert got == want, query
    reopened.close()
    index.close()


def test_a_failed_job_is_one_line_and_exit_8_on_the_command_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    index = tmp_path / "index"
    done = run_cli("index", str(SAMPLE), "--index", str(index), "--engine", "spark", "--master", "local[1]",
                   "--staging", str(blocker / "staging"), "--quiet")
    assert done.returncode == 8, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "index is unchanged" in lines[0]
    assert "Traceback" not in done.stderr
