"""One indexing run on Apache Spark: scan on the driver, embed in Spark tasks, load on the driver.

1. The driver discovers and hashes the files and compares them with the index
   (:func:`~xsearch.pipeline.scan_files`); unchanged files never reach the cluster.
2. The files to read are split into partitions; each task runs
   :func:`~xsearch.spark.tasks.embed_partition` over its files and Spark writes what it returns
   as Parquet parts in a staging folder (inside the index directory, or under ``staging``, which
   a cluster's executors must be able to write). Spark's output committer makes only the
   output of each task's committed attempt visible, so a retried task adds nothing twice.
3. The driver reads the parts in partition order and stores them in one transaction
   (:func:`~xsearch.store.bulk.bulk_write`), chunk ids given in that order after the highest
   id the index ever gave. Until that commit the index is as it was; a failed or cancelled
   job leaves it untouched. The staging folder is removed either way.

4. A first build too large for an exact vector index (:func:`~xsearch.ann.sizing.choose_factory`
   says IVF) builds it in shards on the cluster (:func:`build_sharded`): trained on the driver,
   filled by one task per part with the ids the load gave, merged on disk and renamed into place
   after the commit (until then a reader replays the change log, which is as correct).

The facade then brings the vector index up to date from the database (a Flat index is
rebuilt, an IVF one gets the change log added) and links translations, as after a local run.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ann import DEFAULT_BACKEND
from ..ann.sizing import choose_factory
from ..embed.centering import prepare
from ..errors import EngineJobError, UsageError
from ..pipeline import IndexProgress, IndexReport, StageTimer, Target, scan_files
from ..runtime import cache_dir
from ..store.bulk import BulkChunk, BulkDocument, BulkWriter, bulk_write
from ..store.db import TOKEN_CODEC, FileState, Store
from ..types import LanguageMeans, Skipped
from ..vectors import ANN_PREFIX, VectorIndex

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
TASKS_PER_CORE = 4
"""Partitions per core of the cluster when ``partitions`` is not given: enough for the progress
bar to move and for a slow task not to hold up the end, few enough that each task embeds
groups of a useful size."""
JOB_GROUP = "xsearch-index"
"""Spark job group of the embedding job (what the progress thread follows and a cancel stops)."""
STAGING_PREFIX = "spark-staging-"
EXECUTOR_ENV = ("XSEARCH_CACHE_DIR", "XSEARCH_BACKEND", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Environment variables handed on to the executors, so that they find the same model builds."""
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
"""Spark's own logging: errors only, no console progress bar."""
POLL_SECONDS = 0.5
TASKS_GONE_SECONDS = 30.0
"""Longest wait for a cancelled or failed job's tasks to end before its staging folder goes."""
MESSAGE_CHARS = 300
"""Longest part of a Spark error message an error line quotes (the rest is in the driver log)."""
TRAIN_SAMPLE = 100_000
"""Stored vectors the sharded vector index is trained on (at most; FAISS samples them again)."""
SAMPLE_SEED = 1234


def require_spark() -> None:
    """Raise :class:`UsageError` unless pyspark, pyarrow, pandas and Java are there."""
    try:
        import pandas  # noqa: F401  # pyspark's Arrow functions need it
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"--engine spark needs {exc.name or 'pyspark'}: pip install 'xsearch[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") is None and not (java_home and (Path(java_home) / "bin" / "java").exists()):
        raise UsageError("--engine spark needs Java 17 or newer (no `java` on PATH or in $JAVA_HOME)")


@contextmanager
def spark_session(master: str | None = None) -> Iterator[SparkSession]:
    """The active Spark session if there is one (left running), else a new one on ``master``
    (``local[*]`` by default), stopped on leaving."""
    require_spark()
    from pyspark.sql import SparkSession

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    quiet = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
    builder = (SparkSession.builder.master(master or DEFAULT_MASTER).appName("xsearch index")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.executor.extraJavaOptions", quiet))
    for name in EXECUTOR_ENV:
        if name in os.environ:
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    # How pyspark starts the driver's JVM and, on this machine, the executors' Python (this one):
    # read from the environment, set only while the session starts (a user's own settings win).
    launch = {"PYSPARK_SUBMIT_ARGS": f'--driver-java-options "{quiet}" pyspark-shell'}
    if (master or DEFAULT_MASTER).startswith("local"):
        launch["PYSPARK_PYTHON"] = sys.executable
    with _environment({name: value for name, value in launch.items() if name not in os.environ}), \
            _jvm_output_to_log():
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # pyspark's own errors (no Java gateway, bad master) carry no common base
            raise EngineJobError(f"cannot start Spark on {master or DEFAULT_MASTER}: {_first_line(exc)}") from exc
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then remove them again."""
    os.environ.update(values)
    try:
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)


def index_paths(target: Target, paths: Sequence[str | os.PathLike[str]], *, folder: Path,
                include: Sequence[str] = (), exclude: Sequence[str] = (), max_file_bytes: int | None = None,
                follow: bool = False, progress: Callable[[IndexProgress], None] | None = None,
                cancel: threading.Event | None = None, backend: str | None = None, master: str | None = None,
                partitions: int | None = None, staging: str | os.PathLike[str] | None = None) -> IndexReport:
    """Bring ``target`` (the index in ``folder``) up to date with the files under ``paths``,
    embedding on Spark (see the module docstring); options as
    :func:`xsearch.pipeline.index_paths`.

    ``master`` is the Spark master URL (``local[*]`` when None; an active session is used as
    it is), ``partitions`` the number of tasks, ``staging`` a folder the executors and the
    driver share, for the parts (by default the index directory). ``report.stages`` holds
    ``scan``, ``model`` (the driver's encoder, for the token codec, and the tasks' getting
    theirs: loaded once per Python worker), ``spark`` (the job, start of the session included),
    ``load`` (the bulk load), ``shards`` (a first build too large for an exact vector index: see
    :func:`build_sharded`) and the tasks' ``read``, ``language``, ``chunk``, ``embed`` and
    ``write`` (content tokens and their compression), summed over tasks.
    """
    if partitions is not None and partitions < 1:
        raise UsageError(f"--partitions must be at least 1, not {partitions}")
    started = time.perf_counter()
    timer = StageTimer()
    notify = progress or (lambda _p: None)
    store = target.store
    with timer.stage("scan"):
        found = scan_files(store, paths, include=include, exclude=exclude, max_file_bytes=max_file_bytes,
                           follow=follow, listed=lambda n: notify(IndexProgress("scan", n, 0, 0)))
    report = IndexReport(files_seen=found.seen, files_unchanged=found.unchanged, files_removed=len(found.removed),
                         skipped=tuple(found.skipped))
    if not found.todo:
        with timer.stage("load"):
            if found.touched:
                store.touch_files(found.touched)
            if found.removed:
                store.replace_files(found.removed, [])
        notify(IndexProgress("done", 0, 0, 0))
        return _finished(report, started, timer)
    require_spark()
    notify(IndexProgress("load", len(found.todo), 0, 0))
    with timer.stage("model"):
        codec = _token_codec(target)
    from .tasks import TaskSettings

    settings = TaskSettings(target.config, backend, None if codec is None else codec.to_bytes())
    stage_dir = Path(staging) if staging is not None else folder
    parts = stage_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    empty_before = store.counts()["chunks"] == 0
    try:
        with ExitStack() as session:
            with timer.stage("spark"):  # starting the session, and the job
                spark = session.enter_context(spark_session(master))
                finished = _run_job(spark, found.todo, settings, parts / "parts", partitions=partitions,
                                    notify=notify, cancel=cancel)
            if not finished:
                notify(IndexProgress("done", len(found.todo), 0, 0))
                return _finished(replace(report, cancelled=True, files_removed=0), started, timer)
            with timer.stage("load"):
                loaded = _load(store, parts / "parts", found.removed, found.touched, codec, found.known)
            factory = choose_factory(store.counts()["chunks"], store.dim)
            if empty_before and factory != "Flat":  # a first build too large for an exact index: in shards
                with timer.stage("shards"):
                    build_sharded(spark, store, folder, target.config.scoring, loaded.parts, factory, parts / "shards")
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    notify(IndexProgress("done", len(found.todo), len(found.todo), loaded.chunks))
    stages = timer.seconds()
    for name, seconds in loaded.task_seconds.items():
        stages[name] = stages.get(name, 0.0) + seconds
    return _finished(replace(report, files_added=loaded.added, files_updated=loaded.updated,
                                    documents_added=loaded.documents, chunks_added=loaded.chunks,
                                    skipped=tuple(found.skipped) + tuple(loaded.skipped)), started, timer, stages)


def _finished(report: IndexReport, started: float, timer: StageTimer,
              stages: dict[str, float] | None = None) -> IndexReport:
    return replace(report, seconds=time.perf_counter() - started, stages=stages or timer.seconds())


def _token_codec(target: Target):  # noqa: ANN202 - TokenCodec | None
    """The codec the tasks compress token vectors with: the index's, else the model's."""
    if not target.config.token_vectors:
        return None
    codec = target.store.token_codec()
    if codec is not None:
        return codec
    codec = target.encoder().token_codec()
    wanted = target.store.get_setting("token_codec", TOKEN_CODEC)
    if codec.kind != wanted:
        raise UsageError(f"this index stores token vectors with a {wanted!r} codec, which its first write trains: "
                         "index a first folder without --engine spark")
    return codec


def _run_job(spark: SparkSession, todo: Sequence[tuple[Any, str]], settings: Any, out: Path, *,
             partitions: int | None, notify: Callable[[IndexProgress], None],
             cancel: threading.Event | None) -> bool:
    """Embed the files of ``todo`` on Spark into Parquet parts in ``out``; False if cancelled."""
    from .tasks import INPUT_DDL, embed_partition, spark_ddl

    rows = [(os.fsencode(source.path), digest, source.mtime, source.size) for source, digest in todo]
    sc = spark.sparkContext
    slices = min(len(rows), partitions or sc.defaultParallelism * TASKS_PER_CORE)
    files, chunks = sc.accumulator(0), sc.accumulator(0)

    def counted(n_files: int, n_chunks: int) -> None:
        files.add(n_files)
        chunks.add(n_chunks)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return embed_partition(batches, settings, counted)

    frame = spark.createDataFrame(sc.parallelize(rows, slices), INPUT_DDL)
    stop = threading.Event()
    watcher = threading.Thread(target=_follow, args=(spark, len(rows), files, chunks, notify, cancel, stop),
                               name="xsearch-spark-progress", daemon=True)
    sc.setJobGroup(JOB_GROUP, "xsearch index: embed files", interruptOnCancel=True)
    watcher.start()
    try:
        frame.mapInArrow(run, spark_ddl()).write.parquet(str(out))
    except Exception as exc:  # py4j and pyspark errors: the job failed or was cancelled
        _wait_for_tasks(sc)  # tasks still being killed may yet write to the staging folder
        if cancel is not None and cancel.is_set():
            return False
        raise EngineJobError(f"the Spark job failed, the index is unchanged: {_first_line(exc)}") from exc
    finally:
        stop.set()
        watcher.join()
    notify(IndexProgress("embed", len(rows), files.value, chunks.value))
    if not (out / "_SUCCESS").exists():
        raise EngineJobError(f"the Spark job wrote no complete output to {out}; the index is unchanged")
    return True


def _wait_for_tasks(sc: Any, timeout: float = TASKS_GONE_SECONDS) -> None:
    """Wait until no stage of the session has a task running (a cancelled or failed job's tasks
    end asynchronously), for at most ``timeout`` seconds."""
    tracker = sc.statusTracker()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stages = [tracker.getStageInfo(stage) for stage in tracker.getActiveStageIds()]
        if not any(info is not None and info.numActiveTasks for info in stages):
            return
        time.sleep(POLL_SECONDS / 5)


def build_sharded(spark: SparkSession, store: Store, folder: Path, scoring: str, parts: Sequence[Part],
                  factory: str, shards: Path) -> Path:
    """Build the vector index of the index in ``folder`` (at the store's generation) from the
    chunks of ``parts``, which must be every chunk it holds: an IVF index of ``factory`` trained
    on the driver (:func:`~xsearch.ann.shards.train_empty`, on a seeded sample of the stored
    vectors), filled in one Spark task per part (:func:`~xsearch.spark.tasks.write_part_shard`)
    into shard files under ``shards``, merged on disk into the index's vector index file,
    which is memory-mapped when loaded. Returns that file."""
    from ..ann.shards import merge_shards, train_empty
    from .tasks import write_part_shard

    gen = store.generation
    means = store.language_means()
    parts = [part for part in parts if part.chunks]
    first = min(part.first_id for part in parts)
    total = sum(part.chunks for part in parts)
    picked = np.random.default_rng(SAMPLE_SEED).choice(total, min(total, TRAIN_SAMPLE), replace=False)
    sample = store.vectors_of(first + np.sort(picked))
    trained = train_empty(prepare(sample.vectors, sample.langs, scoring, means), factory)
    shards.mkdir(parents=True, exist_ok=True)
    jobs = [(str(part.path), part.first_id, str(shards / f"shard-{n:05d}.faiss")) for n, part in enumerate(parts)]
    sc = spark.sparkContext
    shipped = sc.broadcast(trained)

    def fill(job: tuple[str, int, str]) -> int:
        return write_part_shard(*job, shipped.value, scoring, means)

    sc.setJobGroup(JOB_GROUP, "xsearch index: vector index shards", interruptOnCancel=True)
    try:
        sc.parallelize(jobs, len(jobs)).map(fill).collect()
    except Exception as exc:  # py4j and pyspark errors
        raise EngineJobError(f"the Spark job building the vector index failed: {_first_line(exc)}; the index "
                            "is complete and rebuilds its vector index when next opened for a search") from exc
    finally:
        shipped.unpersist()
    out = folder / f"{ANN_PREFIX}{gen}.{DEFAULT_BACKEND}"
    merge_shards(trained, [job[2] for job in jobs], out)
    VectorIndex(folder, store, scoring).adopt(gen, factory)
    return out


def _follow(spark: SparkSession, files_total: int, files: Any, chunks: Any, notify: Callable[[IndexProgress], None],
            cancel: threading.Event | None, stop: threading.Event) -> None:
    """Report the job's progress while it runs (files and chunks of the finished tasks, read
    whenever the job's stages finish another task); cancel the job when ``cancel`` is set."""
    sc = spark.sparkContext
    tracker = sc.statusTracker()
    last: tuple[int, ...] | None = None
    notify(IndexProgress("embed", files_total, 0, 0))
    while not stop.wait(POLL_SECONDS):
        if cancel is not None and cancel.is_set():
            sc.cancelJobGroup(JOB_GROUP)
            return
        done = 0
        for job in tracker.getJobIdsForGroup(JOB_GROUP):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info is not None else ():
                stage_info = tracker.getStageInfo(stage)
                done += stage_info.numCompletedTasks if stage_info is not None else 0
        state = (done, files.value, chunks.value)
        if state != last:
            last = state
            notify(IndexProgress("embed", files_total, files.value, chunks.value))


@dataclass(frozen=True)
class Part:
    """One Parquet part of the job's output, and the chunk ids its chunks were stored under."""

    path: Path
    first_id: int
    chunks: int


class _Loaded:
    """What the bulk load stored."""

    def __init__(self) -> None:
        self.added = self.updated = self.documents = self.chunks = 0
        self.skipped: list[Skipped] = []
        self.task_seconds: dict[str, float] = {}
        self.parts: list[Part] = []


def _load(store: Any, parts: Path, removed: list[str], touched: list[FileState], codec: Any,
          known: dict[str, FileState]) -> _Loaded:
    """Store the parts in ``parts`` in one transaction (see :func:`~xsearch.store.bulk.bulk_write`)."""
    import pyarrow.parquet as pq

    from .tasks import LanguageSums

    files = sorted(parts.glob("part-*.parquet"), key=lambda f: int(f.name.split("-")[1]))  # partition order
    loaded = _Loaded()
    stored: list[str] = []
    means, token_means = LanguageSums(), LanguageSums()
    counts = []
    for file in files:  # first the small rows: which files have documents, skips, sums, timings
        kinds = pq.read_table(file, columns=["kind"]).column("kind").to_pylist()
        counts.append(kinds.count("chunk"))
        table = pq.read_table(file, columns=["kind", "path", "text", "n_chars", "vector", "token_count",
                                             "token_codes", "seconds"], filters=[("kind", "!=", "chunk")])
        for row in table.to_pylist():
            kind = row["kind"]
            if kind == "doc":
                if not stored or stored[-1] != row["path"]:
                    stored.append(row["path"])
            elif kind == "skip":
                loaded.skipped.append(Skipped(row["path"], row["text"]))
            elif kind == "stats":
                means.add(row["path"], row["n_chars"], _float64s(row["vector"]))
                token_means.add(row["path"], row["token_count"], _float64s(row["token_codes"]))
            elif kind == "time":
                loaded.task_seconds[row["path"]] = loaded.task_seconds.get(row["path"], 0.0) + row["seconds"]
    loaded.updated = sum(path in known for path in stored)
    loaded.added = len(stored) - loaded.updated
    with bulk_write(store, removed=removed, touched=touched, replaced=stored, codec=codec) as writer:
        writer.add_sums(LanguageMeans(means.sums, means.counts), LanguageMeans(token_means.sums, token_means.counts))
        for file, n in zip(files, counts):
            loaded.parts.append(Part(file, writer.next_chunk, n))
            _store_part(writer, pq.ParquetFile(file))
    loaded.documents, loaded.chunks = writer.documents, writer.chunks
    return loaded


def _float64s(blob: bytes | None) -> np.ndarray | None:
    """A stats row's sum, as the float64 vector it was written from."""
    return None if blob is None else np.frombuffer(blob, dtype=np.float64)


def _store_part(writer: BulkWriter, part: Any) -> None:
    """Write the documents and chunks of one part, in its order (a document's chunks follow it)."""
    doc: BulkDocument | None = None
    chunks: list[BulkChunk] = []
    last_file = None
    for batch in part.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            kind = row["kind"]
            if kind == "chunk":
                chunks.append(BulkChunk(row["text"], row["start"], row["end"], row["lang"], row["n_tokens"],
                                        row["vector"], row["token_count"], row["token_offsets"], row["token_codes"]))
            elif kind == "doc":
                if doc is not None:
                    writer.add_document(doc, chunks)
                doc, chunks = BulkDocument(row["path"], row["record"], row["title"], row["lang"], row["metadata"],
                                           row["n_chars"]), []
                if row["path"] != last_file:
                    writer.add_file(FileState(row["path"], row["hash"], row["mtime"], row["size"]))
                    last_file = row["path"]
    if doc is not None:
        writer.add_document(doc, chunks)


def _first_line(exc: BaseException) -> str:
    """The first meaningful line of a (possibly Java) error message, without py4j's call header
    and Java package names (``ParentNotDirectoryException: Parent path is not a directory: …``),
    and where the whole log is."""
    lines = [line.strip().removeprefix(": ") for line in str(exc).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("at ", "An error occurred while calling"))]
    line = lines[0] if lines else type(exc).__name__
    line = re.sub(r"^(?:[a-z_$][\w$]*\.)+(?=[A-Z])", "", line)  # org.apache.hadoop.fs.X: … → X: …
    if len(line) > MESSAGE_CHARS:
        line = line[: MESSAGE_CHARS - 1] + "…"
    return f"{line} (Spark's log: {driver_log()})"


def driver_log() -> Path:
    """The file the Spark driver (the JVM) and its Python workers write their own log to."""
    return cache_dir() / "spark" / "driver.log"


@contextmanager
def _jvm_output_to_log() -> Iterator[None]:
    """Start the JVM (and so its Python workers, its children) with the driver log as its
    standard output and error: Java's start-up warnings and Spark's errors go there, not
    between a command's progress bar and its results."""
    log = driver_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as file:
        try:
            os.dup2(file.fileno(), 1)
            os.dup2(file.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
