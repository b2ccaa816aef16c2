"""The ``xsearch`` command through its real entry point, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

HIT_KEYS = {"path", "lang", "score", "text", "start", "end", "chunk_id"}


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_help_is_instant_and_imports_no_ml() -> None:
    code = "import sys, xsearch.cli; print(any(m in sys.modules for m in ('torch', 'faiss', 'transformers', 'numpy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    result = run_cli("--help")
    assert result.returncode == 0 and "index" in result.stdout and "search" in result.stdout


@pytest.mark.parametrize("preset,expected", [(None, "4"), ("12", "12")])
def test_the_command_configures_the_process(tmp_path: Path, preset: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = ("import os, sys\nfrom xsearch.cli import main\ntry:\n    main(['info', '--index', sys.argv[1]])\n"
            "except SystemExit:\n    print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == expected


def test_index_search_info_flow(sample_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    result = run_cli("index", str(sample_copy), "--index", str(index), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files_added"] >= 36 and report["chunks_added"] > 0 and report["skipped"] == []

    result = run_cli("search", "wie wandeln Pflanzen Licht in Energie um?", "--index", str(index), "-k", "15", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 15 and all(HIT_KEYS <= set(hit) for hit in hits)
    photo_langs = {h["lang"] for h in hits if "/photosynthesis/" in h["path"]}
    assert {"en", "ja", "ar", "es"} <= photo_langs
    text = Path(hits[0]["path"]).read_text(encoding="utf-8")
    assert hits[0]["end"] > hits[0]["start"] and len(text) >= hits[0]["end"]

    result = run_cli("search", "volcano eruption magma", "--index", str(index), "-k", "3")
    assert result.returncode == 0 and " 1. " in result.stdout and "volcanoes" in result.stdout

    queries = tmp_path / "queries.txt"
    queries.write_text("Apollo 11 Moon landing\n\nsourdough bread\nвакцина иммунитет\n", encoding="utf-8")
    result = run_cli("search", "--queries", str(queries), "--index", str(index), "-k", "2", "--json")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3
    batches = [json.loads(line) for line in lines]
    assert "/moon_landing/" in batches[0][0]["path"] and "/sourdough_bread/" in batches[1][0]["path"]
    assert "/vaccines/" in batches[2][0]["path"]

    result = run_cli("info", "--index", str(index), "--json")
    info = json.loads(result.stdout)
    assert info["documents"] >= 36 and info["model"] == "multilingual-e5-small" and info["index_type"] == "Flat"
    assert info["bytes_on_disk"] > 0 and len(info["languages"]) >= 8

    started = time.perf_counter()
    result = run_cli("index", str(sample_copy), "--index", str(index), "--json")
    report = json.loads(result.stdout)
    assert report["chunks_added"] == 0 and report["files_unchanged"] >= 36
    assert time.perf_counter() - started < 60  # a sanity bound only; speed is measured in benchmarks/


def test_bad_input_is_skipped_and_counted(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Photosynthesis turns light into sugar in the leaves of plants.\n", encoding="utf-8")
    (docs / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "huge.txt").write_text("big " * 2000, encoding="utf-8")
    (docs / "bad-utf8.txt").write_bytes("Grüße aus Köln ".encode() + b"\xff\xfe\xc3\x28 broken")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage without end")
    (docs / "loop").mkdir()
    os.symlink(docs, docs / "loop" / "again")
    result = run_cli("index", str(docs), "--index", str(tmp_path / "idx"), "--max-file-size", "4KB", "--follow",
                     "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert {"binary.bin", "empty.txt", "huge.txt", "bad-utf8.txt", "broken.pdf"} <= set(reasons), reasons
    assert any("loop" in reason for reason in reasons.values()), reasons
    assert report["files_added"] == 1

    result = run_cli("index", str(docs), "--index", str(tmp_path / "idx"), "--max-file-size", "4KB")
    assert result.returncode == 0 and "skipped" in result.stderr and "Traceback" not in result.stderr


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    result = run_cli("index", str(tmp_path / "nope"), "--index", str(tmp_path / "idx"))
    assert result.returncode == 2 and "no such file" in _one_line_error(result)

    (tmp_path / "plain").mkdir()
    result = run_cli("search", "hello", "--index", str(tmp_path / "plain"))
    assert result.returncode == 4 and "not an xsearch index" in _one_line_error(result)

    result = run_cli("info", "--index", str(tmp_path / "missing"))
    assert result.returncode == 4
    _one_line_error(result)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "xsearch.db").write_bytes(b"garbage" * 1000)
    result = run_cli("search", "hello", "--index", str(broken))
    assert result.returncode == 5
    _one_line_error(result)


def test_model_mismatch_is_refused(sample_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert run_cli("index", str(sample_copy / "coffee_history"), "--index", str(index), "-q").returncode == 0
    result = run_cli("search", "coffee", "--index", str(index), "--model", "LaBSE")
    assert result.returncode == 6 and "multilingual-e5-small" in _one_line_error(result)
    result = run_cli("index", str(sample_copy / "coffee_history"), "--index", str(index), "--pooling", "cls")
    assert result.returncode == 6
    _one_line_error(result)


def _generation(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
        finally:
            conn.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


def test_killed_index_run_leaves_a_searchable_index(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = ["volcanic eruptions and magma", "baking sourdough bread", "the history of coffee houses",
              "vaccines and the immune system", "the Apollo Moon landing", "photosynthesis in green leaves"]
    for n in range(240):
        topic = topics[n % len(topics)]
        (docs / f"note-{n:03d}.txt").write_text(
            f"Note {n} is about {topic}. " + " ".join(f"Sentence {i} of note {n} adds detail on {topic}." for i in range(12)),
            encoding="utf-8")
    index = tmp_path / "idx"
    exe = Path(sys.executable).with_name("xsearch")
    proc = subprocess.Popen([str(exe), "index", str(docs), "--index", str(index), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and _generation(index / "xsearch.db") < 1 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _generation(index / "xsearch.db") >= 1

    result = run_cli("info", "--index", str(index), "--json")
    assert result.returncode == 0, result.stderr
    partial = json.loads(result.stdout)
    assert 0 < partial["documents"] < 240
    result = run_cli("search", "magma", "--index", str(index), "-k", "5", "--json")
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 5

    result = run_cli("index", str(docs), "--index", str(index), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files_added"] == 240 - partial["documents"]
    info = json.loads(run_cli("info", "--index", str(index), "--json").stdout)
    assert info["documents"] == 240


def _run_in_terminal(*args: str, timeout: float = 300) -> str:
    """Run the ``xsearch`` entry point on a pseudo-terminal (stdin, stdout and stderr) and return
    everything it drew there, progress bar frames included."""
    import pty

    leader, follower = pty.openpty()
    exe = Path(sys.executable).with_name("xsearch")
    proc = subprocess.Popen([str(exe), *args], stdin=follower, stdout=follower, stderr=follower,
                            env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})
    os.close(follower)
    drawn = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal is gone with the process
            break
        if not data:
            break
        drawn.append(data)
    proc.wait(timeout=30)
    os.close(leader)
    return b"".join(drawn).decode("utf-8", "replace")


def test_index_progress_shows_each_phase(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "glaciers.txt").write_text(" ".join(f"Sentence {n} tells how glaciers carve valleys and carry boulders."
                                                for n in range(60)), encoding="utf-8")
    drawn = _run_in_terminal("index", str(docs), "--index", str(tmp_path / "idx"))
    assert "loading model" in drawn and "indexing" in drawn, drawn
    assert drawn.index("loading model") < drawn.index("indexing") < drawn.rindex("1 new, 0 changed")
    assert "WARNING clustering" not in drawn  # FAISS's notes on small training samples stay out of the bar


def test_native_stderr_is_printed_above_the_progress_bar() -> None:
    code = ("import os\nfrom xsearch.cli import _stderr_above_display\n"
            "with _stderr_above_display() as console:\n"
            "    os.write(2, b'WARNING clustering 800 points to 256 centroids: please provide at least 9984 training "
            "points\\n')\n"
            "    os.write(2, b'a note from a native library\\n')\n"
            "    console.print('drawn by the display')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # the forwarded line and the display's own may come in either order
    assert sorted(result.stderr.splitlines()) == ["a note from a native library", "drawn by the display"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("readable text about bread", encoding="utf-8")
    secret = docs / "secret.txt"
    secret.write_text("hidden", encoding="utf-8")
    secret.chmod(0)
    result = run_cli("index", str(docs), "--index", str(tmp_path / "idx"), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and [Path(s["path"]).name for s in report["skipped"]] == ["secret.txt"]


def test_readme_quickstart_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "xsearch index data/sample" in readme and "python -m pytest" in readme


# translation-aware ranking and readable scores ---------------------------------

PLANTS_DE = "wie wandeln Pflanzen Licht in Energie um?"


def _search_json(index: Path, *options: str) -> list[dict]:
    result = run_cli("search", PLANTS_DE, "--index", str(index), "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_search_groups_translations_and_explains(sample_index) -> None:
    hits = _search_json(sample_index.path, "-k", "5", "--group-by", "translation", "--explain")
    assert hits and "/photosynthesis/" in hits[0]["path"]
    assert any(hit.get("translations") for hit in hits)
    seen = set()
    for hit in hits:
        assert hit["chunk_id"] not in seen  # each passage once
        seen.add(hit["chunk_id"])
        versions = hit.get("translations", [])
        assert all(set(t) == {"chunk_id", "lang", "path", "id", "score"} for t in versions)
        langs = [t["lang"] for t in versions]
        assert hit["lang"] not in langs and len(langs) == len(set(langs))
        scores = [t["score"] for t in versions]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    explain = hits[0]["explain"]
    assert explain["rank_score"] and explain["matched"]
    assert {"query", "passage", "span", "cosine"} <= set(explain["matched"][0])
    word = explain["matched"][0]
    assert hits[0]["text"][word["span"][0] : word["span"][1]] == word["passage"]

    text = run_cli("search", PLANTS_DE, "--index", str(sample_index.path), "-k", "3", "--group-by", "translation",
                   "--explain")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    also = [line for line in lines if line.strip().startswith("also in:")]
    assert also and also[0].split()[2:] == [t["lang"] for t in hits[0]["translations"]]
    assert any(line.strip().startswith("why:") and "maxsim" in line for line in lines)
    assert any(line.strip().startswith("matched:") and "→" in line for line in lines)


def test_search_feedback_and_min_score(sample_index) -> None:
    pulled = _search_json(sample_index.path, "-k", "10", "--explain")
    plain = _search_json(sample_index.path, "-k", "10", "--explain", "--no-feedback")
    assert any("translation_of_best" in hit["explain"] for hit in pulled)
    assert not any("translation_of_best" in hit["explain"] for hit in plain)
    for hits in (pulled, plain):
        scores = [hit["score"] for hit in hits]
        assert len(hits) == 10 and scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    # feedback lifts the best hit's language versions: more of them near the top
    best = pulled[0]["path"].rsplit("/", 1)[0]
    assert sum(best in h["path"] for h in pulled[:5]) >= sum(best in h["path"] for h in plain[:5])

    strict = _search_json(sample_index.path, "-k", "10", "--min-score", "0.99")
    assert len(strict) < len(pulled) and all(hit["score"] >= 0.99 for hit in strict)
    floor = round(pulled[2]["score"] - 0.001, 4)  # under the third score (JSON rounds scores to 4 places)
    some = _search_json(sample_index.path, "-k", "10", "--min-score", str(floor))
    assert [hit["chunk_id"] for hit in some] == [hit["chunk_id"] for hit in pulled if hit["score"] >= floor]
    assert len(some) >= 3

    bad = run_cli("search", PLANTS_DE, "--index", str(sample_index.path), "--min-score", "2")
    assert bad.returncode == 2 and "--min-score" in bad.stderr and "Traceback" not in bad.stderr


def test_info_counts_translation_links(sample_index) -> None:
    info = json.loads(run_cli("info", "--index", str(sample_index.path), "--json").stdout)
    assert info["translations"] == sample_index.info().translations > 0
    text = run_cli("info", "--index", str(sample_index.path)).stdout
    assert f"translations {info['translations']} linked pairs" in " ".join(text.split())


# strict input, one error printer, output for people -------------------------------


def test_usage_errors_print_one_line_and_keep_suggestions(tmp_path: Path) -> None:
    result = run_cli("serach", "x")
    assert result.returncode == 2 and "did you mean 'search'?" in _one_line_error(result).lower()
    result = run_cli("search", "x", "--jsn")
    line = _one_line_error(result)
    assert result.returncode == 2 and "--json" in line and "xsearch search --help" in line
    assert run_cli("-V").stdout == run_cli("--version").stdout == "xsearch, version 0.1.0\n"

    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    result = run_cli("serve", "--index", str(blocked / "idx"), "--port", "0")  # the system refuses the folder
    assert result.returncode == 1 and "not a directory" in _one_line_error(result)


def test_a_language_the_index_lacks_is_refused(sample_index) -> None:
    index = str(sample_index.path)
    for json_flag in ((), ("--json",)):
        result = run_cli("search", "Licht", "--index", index, "--lang", "sw", *json_flag)
        line = _one_line_error(result)
        assert result.returncode == 2 and result.stdout == ""
        assert "'sw'" in line and "this index holds ar, de, en, es, fr, hi, ja, ko, pt, ru, zh" in line
    result = run_cli("search", "Licht", "--index", index, "--lang", "nonsense", "--json")
    assert result.returncode == 2 and "language name" in _one_line_error(result)
    for name in ("German", "Deutsch", "deu"):  # names and codes a maintained library maps
        hits = _search_json(sample_index.path, "--lang", name, "--mode", "lexical")
        assert hits and {hit["lang"] for hit in hits} == {"de"}


def test_hits_link_to_their_passage_only_on_a_terminal(sample_index) -> None:
    args = ("search", "Pflanzen Licht", "--index", str(sample_index.path), "--mode", "lexical", "-k", "2")
    drawn = _run_in_terminal(*args, "--compact")
    assert "\x1b]8;" in drawn and "file://" in drawn and "/photosynthesis/de.txt#" in drawn
    assert len([line for line in drawn.splitlines() if line.strip()]) == 2  # one line a hit
    for piped in (run_cli(*args), run_cli(*args, "--compact"), run_cli(*args, env={"FORCE_COLOR": "1"})):
        assert piped.returncode == 0 and "\x1b]8;" not in piped.stdout and "photosynthesis" in piped.stdout
    compact = run_cli(*args, "--compact").stdout.splitlines()
    assert len(compact) == 2 and all(line.startswith(f"{n:>2}. ") for n, line in enumerate(compact, 1))


def test_completion_scripts_complete_commands_and_choices() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        result = run_cli("completion", shell)
        assert result.returncode == 0 and marker in result.stdout and "_XSEARCH_COMPLETE" in result.stdout
    asked = run_cli(env={"_XSEARCH_COMPLETE": "bash_complete", "COMP_WORDS": "xsearch sea", "COMP_CWORD": "1"})
    assert asked.stdout.split() == ["plain,search"]
    asked = run_cli(env={"_XSEARCH_COMPLETE": "bash_complete", "COMP_WORDS": "xsearch search --mode ",
                         "COMP_CWORD": "3"})
    assert asked.stdout.split() == ["plain,dense", "plain,lexical", "plain,hybrid"]
