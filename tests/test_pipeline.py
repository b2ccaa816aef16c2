"""The indexing run's threads, with the real model: reading ahead of the encoder and committing
behind it store what a run in one thread stores; cancelling, failing stages and progress; the
token codec a new index takes; the progress display's end while a child holds its stderr."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from xsearch import Index, pipeline
from xsearch.pipeline import IndexProgress, consumed_behind, prefetched
from xsearch.token_codec import MAX_TRAIN_TOKENS, TokenCodec, training_sample

MODES = {"serial": (0, 0), "ahead": (3, 0), "pipelined": (3, 1)}
"""Groups read ahead and committed behind the encoder (``prefetch``, ``behind``)."""


def _run(index: Index, encoder, folder: Path, mode: str, **kwargs) -> pipeline.IndexReport:
    prefetch, behind = MODES[mode]
    target = pipeline.Target(index.store, index.config, lambda: encoder)
    return pipeline.index_paths(target, [folder], prefetch=prefetch, behind=behind, **kwargs)


def _stored(index: Index) -> tuple[list[tuple], np.ndarray, list[tuple], list[np.ndarray]]:
    """Chunk rows (ids, documents, texts, spans, languages), their vectors, and token rows with
    their decoded token vectors, in chunk id order."""
    rows = list(index.store.db.execute(
        'SELECT c.id, d.path, d.record, d.lang, c.ord, c.text, c.start, c."end", c.lang, c.n_tokens '
        "FROM chunks c JOIN documents d ON d.id = c.doc_id ORDER BY c.id"))
    vectors = index.store.all_vectors()
    assert vectors.ids.tolist() == [r[0] for r in rows]
    tokens = list(index.store.db.execute("SELECT chunk_id, n, offsets FROM token_vectors ORDER BY chunk_id"))
    codec = index.store.token_codec()
    decoded = [codec.decode(codes, n) for n, codes in
               index.store.db.execute("SELECT n, codes FROM token_vectors ORDER BY chunk_id")]
    return rows, vectors.vectors, tokens, decoded


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in ("xsearch-prefetch", "xsearch-commit")}


def test_threads_store_what_one_thread_stores(sample_copy: Path, tmp_path: Path, encoder,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading ahead and committing behind change nothing: the same chunks, ids, spans, vectors
    and token vectors as one step after the other in one thread."""
    monkeypatch.setattr(pipeline, "GROUP_FILES", 5)  # several groups, so every thread has work queued
    (sample_copy / "broken.pdf").write_bytes(b"%PDF-1.4 not a pdf")
    results = {}
    for mode in MODES:
        with Index.create(tmp_path / mode, encoder=encoder) as index:
            report = _run(index, encoder, sample_copy, mode)
            results[mode] = (report, _stored(index))
    serial, (rows, vectors, tokens, decoded) = results["serial"]
    assert serial.files_added >= 36 and [Path(s.path).name for s in serial.skipped] == ["broken.pdf"]
    assert len(rows) == serial.chunks_added and len(tokens) == len(rows)
    for mode in ("ahead", "pipelined"):
        report, (other_rows, other_vectors, other_tokens, other_decoded) = results[mode]
        assert (report.files_added, report.chunks_added, report.skipped) == \
            (serial.files_added, serial.chunks_added, serial.skipped)
        assert other_rows == rows and other_tokens == tokens
        assert np.allclose(other_vectors, vectors, atol=1e-3)
        assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(other_decoded, decoded, strict=True))
    assert not _threads()


def test_progress_reports_phases_in_order(sample_copy: Path, tmp_path: Path, encoder,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "GROUP_FILES", 10)
    with Index.create(tmp_path / "idx", encoder=encoder):
        pass
    seen: list[IndexProgress] = []
    with Index.open(tmp_path / "idx") as index:  # the encoder loads in the run
        report = index.add_paths([sample_copy], progress=seen.append)
        assert index._encoder is not None
    phases = [p.phase for p in seen]
    assert phases[:3] == ["scan", "load", "embed"] and phases[-1] == "done"
    assert set(phases[3:-1]) == {"embed"} and len(phases) >= 3 + 4  # one report per committed group
    embedding = seen[2:]
    assert all(p.files_total == report.files_added for p in embedding)
    done = [p.files_done for p in embedding]
    chunks = [p.chunks_done for p in embedding]
    assert done == sorted(done) and chunks == sorted(chunks)
    assert (done[-1], chunks[-1]) == (report.files_added, report.chunks_added)
    assert set(report.stages) == {*pipeline.STAGES, "vector index", "links"}
    assert all(seconds >= 0 for seconds in report.stages.values()) and report.stages["embed"] > 0

    seen.clear()
    with Index.open(tmp_path / "idx") as index:  # nothing new: no model to load
        index.add_paths([sample_copy], progress=seen.append)
    assert [p.phase for p in seen] == ["scan", "embed", "done"]


def test_cancel_keeps_the_groups_committed(sample_copy: Path, tmp_path: Path, encoder,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "GROUP_FILES", 3)
    cancel = threading.Event()

    def cancel_after_first_group(progress: IndexProgress) -> None:
        if progress.phase == "embed" and progress.files_done:
            cancel.set()

    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        report = _run(index, encoder, sample_copy, "pipelined", progress=cancel_after_first_group, cancel=cancel)
        assert report.cancelled and 0 < report.files_added < 30  # stopped within a few groups of 3
        index.store.check()
        info = index.info()
        assert (info.files, info.chunks) == (report.files_added, report.chunks_added)
        rest = index.add_paths([sample_copy])
        assert rest.files_unchanged == report.files_added and not rest.cancelled
        full = index.info()
    with Index.create(tmp_path / "fresh", encoder=encoder) as fresh:
        fresh.add_paths([sample_copy])
        assert (fresh.info().files, fresh.info().chunks) == (full.files, full.chunks)
    assert not _threads()


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("stage", ["read", "embed", "write", "progress"])
def test_a_failing_stage_raises_and_keeps_earlier_groups(stage: str, sample_copy: Path, tmp_path: Path, encoder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever thread runs the stage, its exception reaches the caller; the groups committed
    before it stay, and no thread is left running."""
    monkeypatch.setattr(pipeline, "GROUP_FILES", 4)
    calls = {"n": 0}

    def third_time(function):
        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise Boom(stage)
            return function(*args, **kwargs)
        return failing

    def progress(report: IndexProgress) -> None:  # fails at the second commit's report, in the committing thread
        if stage == "progress" and report.files_done >= 8:
            raise Boom(stage)

    if stage == "read":
        monkeypatch.setattr(pipeline, "extract", third_time(pipeline.extract))
    elif stage == "embed":
        monkeypatch.setattr(pipeline, "embed_group", third_time(pipeline.embed_group))
    elif stage == "write":
        monkeypatch.setattr(pipeline._Commits, "_new_documents", third_time(pipeline._Commits._new_documents))
    with Index.create(tmp_path / "idx", encoder=encoder) as index:
        with pytest.raises(Boom, match=stage):
            _run(index, encoder, sample_copy, "pipelined", progress=progress)
        assert not _threads()
        index.store.check()
        committed = index.info().files
        assert committed < 39 and (committed > 0 or stage == "read")
        monkeypatch.undo()
        report = index.add_paths([sample_copy])
        assert report.files_unchanged == committed and index.info().files == committed + report.files_added


def test_prefetched_keeps_order_raises_and_stops() -> None:
    stop = threading.Event()
    assert list(prefetched(iter(range(100)), 2, stop)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad file")

    got = []
    with pytest.raises(ValueError, match="bad file"):
        for item in prefetched(failing(), 2, stop):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():
        for n in range(10**9):
            produced.append(n)
            yield n

    for item in prefetched(endless(), 2, stop):
        if item == 5:
            stop.set()
    assert len(produced) < 20  # the producer stopped within a few items of the stop


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_consumed_behind_keeps_order_and_raises(depth: int) -> None:
    got: list[int] = []
    with consumed_behind(got.append, depth) as hand:
        for n in range(50):
            hand(n)
    assert got == list(range(50))

    def fails_at_three(n: int) -> None:
        if n == 3:
            raise ValueError("bad group")
        got.append(n)

    got.clear()
    with pytest.raises(ValueError, match="bad group"):
        with consumed_behind(fails_at_three, depth) as hand:
            for n in range(50):
                hand(n)
    assert got == [0, 1, 2]  # nothing after the failure

    if not depth:
        return
    started, release = threading.Event(), threading.Event()

    def slow(n: int) -> None:
        started.set()
        release.wait(timeout=10)
        got.append(n)

    got.clear()
    with pytest.raises(KeyboardInterrupt):
        with consumed_behind(slow, depth) as hand:
            hand(0)
            hand(1)
            started.wait(timeout=10)
            threading.Timer(0.2, release.set).start()
            raise KeyboardInterrupt
    assert got == [0]  # the item in progress was finished, the one waiting dropped
    assert not _threads()


def test_a_small_first_write_takes_the_model_codec_and_a_large_one_trains_its_own(tmp_path: Path,
                                                                                  encoder) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "note.txt").write_text("Glaciers carve valleys and carry boulders far from the mountains.",
                                    encoding="utf-8")
    model_codec = encoder.token_codec().to_bytes()
    with Index.create(tmp_path / "small-idx", encoder=encoder) as index:
        _run(index, encoder, small, "pipelined")
        assert index.store.token_codec().to_bytes() == model_codec  # a few tokens: no codec of its own
    large = tmp_path / "large"
    for topic in ("moon_landing", "photosynthesis"):
        shutil.copytree(SAMPLE / topic, large / topic)
    with Index.create(tmp_path / "large-idx", encoder=encoder) as index:
        _run(index, encoder, large, "pipelined")
        tokens = sum(n for (n,) in index.store.db.execute("SELECT n FROM token_vectors"))
        assert tokens >= pipeline.MODEL_CODEC_BELOW  # in one group: the first write
        codec = index.store.token_codec()
        assert codec.kind == "pq" and codec.to_bytes() != model_codec


def test_a_large_file_is_embedded_in_slices_and_committed_in_one_transaction(tmp_path: Path, encoder,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of many slices stores what one encoder call over all of its chunks stores: the same
    chunks, spans and vectors, bit for bit, all in one generation. A new index whose first write
    is larger than the codec's sample trains its codec on the tokens embedded first."""
    folder = tmp_path / "docs"
    folder.mkdir()
    texts = [path.read_text(encoding="utf-8") for path in sorted(SAMPLE.rglob("*")) if path.suffix in (".txt", ".md")]
    (folder / "long.txt").write_text("\n\n".join(texts * 4), encoding="utf-8")  # about 200 chunks, 7 batches
    monkeypatch.setattr(pipeline, "SLICE_CHUNKS", 10**6)  # the whole group at once
    with Index.create(tmp_path / "whole", encoder=encoder) as index:
        _run(index, encoder, folder, "serial")
        rows, vectors, tokens, _ = _stored(index)
        whole_codec = index.store.token_codec().to_bytes()
    slices: list[int] = []
    commit = pipeline._Commits.__call__

    def counted(self, item):
        slices.append(len(item.positions))
        return commit(self, item)

    monkeypatch.setattr(pipeline, "SLICE_CHUNKS", 1)
    monkeypatch.setattr(pipeline, "CODEC_SAMPLE_BYTES", 2 * 2**20)
    monkeypatch.setattr(pipeline._Commits, "__call__", counted)
    with Index.create(tmp_path / "sliced", encoder=encoder) as index:
        report = _run(index, encoder, folder, "pipelined")
        sliced_rows, sliced_vectors, sliced_tokens, decoded = _stored(index)
        generations = [g for (g,) in index.store.db.execute("SELECT DISTINCT gen FROM chunks")]
        codec = index.store.token_codec()
    assert report.files_added == 1 and len(slices) >= 2 and sum(slices) == report.chunks_added == len(rows)
    assert len(generations) == 1  # one transaction
    assert sliced_rows == rows and sliced_tokens == tokens and np.array_equal(sliced_vectors, vectors)
    assert codec.kind == "pq" and codec.to_bytes() != whole_codec  # trained on the first 2 MB of tokens
    assert sum(len(t) for t in decoded) == sum(n for _, n, _ in tokens)


def test_the_codec_sample_taken_from_slices_trains_the_codec_of_their_stack() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((n, 16)).astype(np.float32) for n in (9_000, 1, 0, 12_000)]
    sample = training_sample(parts)
    assert sample.shape == (MAX_TRAIN_TOKENS, 16)
    stacked = TokenCodec.train(np.concatenate(parts), "pq", m=4)
    assert TokenCodec.train(sample, "pq", m=4).to_bytes() == stacked.to_bytes()
    assert np.array_equal(training_sample(parts[:2]), np.concatenate(parts[:2]))  # small: every row


DISPLAY_WITH_A_CHILD = """
import subprocess, sys, time
from xsearch.cli import _stderr_above_display

with _stderr_above_display(drain_seconds=0.5) as console:
    child = subprocess.Popen([sys.executable, "-c",
                              "import os, time; os.write(2, b'from the child\\\\n'); time.sleep(60)"])
    time.sleep(0.5)
    console.print('drawn by the display')
    started = time.perf_counter()
print(time.perf_counter() - started, flush=True)
child.kill()
"""


def test_the_progress_display_ends_while_a_child_holds_its_stderr_pipe() -> None:
    # the child inherits file descriptor 2 (the display's pipe) and keeps it open for a minute
    result = subprocess.run([sys.executable, "-c", DISPLAY_WITH_A_CHILD], capture_output=True, text=True,
                            timeout=30)
    assert float(result.stdout) < 10, result  # the display waited 0.5 s for the pipe, not the child's minute
    assert sorted(result.stderr.splitlines()) == ["drawn by the display", "from the child"]
