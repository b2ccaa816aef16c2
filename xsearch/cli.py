"""The ``xsearch`` command: thin commands over :class:`xsearch.Index`.

Each command parses its options, calls one library method and renders the result. Library
errors become a one-line message on stderr and the error's exit code. Heavy modules are
imported inside the commands, so ``xsearch --help`` answers at once.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._version import __version__
from .cli_common import backend_option, json_option, stderr_console, stdout_console
from .config import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_OVERLAP,
    GROUPINGS,
    MAX_K,
    MODES,
    POOLINGS,
    SCORINGS,
)
from .errors import IndexCorruptError, UsageError, XsearchError
from .present import LANG_STYLE, also_in, display_path, explain_lines, snippet
from .runtime import configure_process

if TYPE_CHECKING:
    from rich.console import Console

    from .embed.encoder import Encoder
    from .evaluate import EvalProgress
    from .index import IndexInfo
    from .pipeline import IndexProgress, IndexReport
    from .types import Hit

EXIT_INTERRUPTED = 130


def _log_to_stderr() -> None:
    """xsearch's own notices (a model built on first use, a backend fallback) as plain stderr lines."""
    import logging

    logger = logging.getLogger("xsearch")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _index_path(value: str | None) -> Path:
    from .index import default_index_path

    return Path(value) if value else default_index_path()


def _parse_size(text: str) -> int:
    units = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}
    number = text.strip().upper().rstrip()
    for suffix in sorted(units, key=len, reverse=True):
        if suffix and number.endswith(suffix):
            try:
                return int(float(number[: -len(suffix)]) * units[suffix])
            except ValueError:
                break
    try:
        return int(number)
    except ValueError:
        raise UsageError(f"cannot read size {text!r} (try 50MB)") from None


def _langs(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


class XsearchGroup(click.Group):
    """Turns library errors into one line and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except XsearchError as exc:
            click.secho("error: ", fg="red", bold=True, err=True, nl=False)
            click.echo(" ".join(str(exc).split()), err=True)
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:  # a page damaged after the index was opened
            click.secho("error: ", fg="red", bold=True, err=True, nl=False)
            click.echo(f"the index database is damaged: {exc} (rebuild it with `xsearch index`)", err=True)
            sys.exit(IndexCorruptError.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=XsearchGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xsearch")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Multilingual semantic search: index a folder, then ask in any language.

    With no command, opens the terminal UI on the default index (in a terminal).
    """
    configure_process()
    if ctx.invoked_subcommand not in (None, "tui"):
        _log_to_stderr()
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            click.echo(ctx.get_help())
            return
        from .tui import run

        run(_index_path(None))


index_option = click.option("--index", "index_dir", metavar="DIR", envvar="XSEARCH_INDEX",
                            help="Index directory [default: ./indexes/default, or $XSEARCH_INDEX].")


@main.command("index")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
@click.option("--model", default=None, help=f"Model for a new index [default: {DEFAULT_MODEL}].")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None,
              help="Pooling for a new index [default: mean].")
@click.option("--layer", type=int, default=None, help="Hidden layer to pool from [default: last].")
@click.option("--max-tokens", type=click.IntRange(16, 512), default=None,
              help=f"Tokens per chunk [default: {DEFAULT_MAX_TOKENS}].")
@click.option("--overlap", type=click.IntRange(0, 8), default=None,
              help=f"Sentences shared by neighbouring chunks [default: {DEFAULT_OVERLAP}].")
@click.option("--include", multiple=True, metavar="GLOB", help="Only index matching files (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matching files (repeatable).")
@click.option("--max-file-size", default="50MB", show_default=True, help="Skip larger files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@backend_option
@json_option
def index_cmd(paths: tuple[str, ...], index_dir: str | None, model: str | None, pooling: str | None,
              layer: int | None, max_tokens: int | None, overlap: int | None, include: tuple[str, ...],
              exclude: tuple[str, ...], max_file_size: str, quiet: bool, backend: str | None, as_json: bool) -> None:
    """Index files and folders (incrementally: only new and changed files are embedded)."""
    from .config import IndexConfig
    from .index import Index

    chosen = {"model": model, "pooling": pooling, "layer": layer, "max_tokens": max_tokens, "overlap": overlap}
    explicit = [name for name, value in chosen.items() if value is not None]
    config = IndexConfig(**{k: v for k, v in chosen.items() if v is not None})
    max_bytes = _parse_size(max_file_size)
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or directory: {path}")
    err = stderr_console()
    show = not quiet and not as_json and err.is_terminal
    index_path = _index_path(index_dir)
    new_index = not index_path.is_dir() or not any(index_path.iterdir())
    with _index_progress(new_index=new_index) if show else nullcontext(None) as progress, \
            Index.open_or_create(index_path, config, explicit=explicit, backend=backend) as index:
        report = index.add_paths(paths, include=include, exclude=exclude, max_file_bytes=max_bytes, progress=progress)
        info = index.info()
    if as_json:
        click.echo(json.dumps({"index": str(index_path), **report.to_dict()}, ensure_ascii=False))
    else:
        _print_report(info, report, err)


PHASES = {"scan": "scanning", "load": "loading model", "embed": "indexing", "done": "finishing"}
"""What the progress bar of ``xsearch index`` says in each phase of a run."""


@contextmanager
def _index_progress(*, new_index: bool) -> Iterator[Callable[[IndexProgress], None]]:
    """A progress callback drawing an indexing run on the terminal's stderr, shown from before
    the index opens: "loading model" while a new index loads it (an existing one loads it in the
    run's ``load`` phase), then files and chunks, with chunks/s counted from the moment
    embedding began."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with _stderr_above_display() as console, \
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("files · {task.fields[chunks]} chunks · {task.fields[rate]} chunks/s"),
                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                     transient=True) as bar:
        task = bar.add_task("loading model" if new_index else "opening index", total=None, chunks=0, rate="–")
        embed_started: list[float] = []

        def update(p: IndexProgress) -> None:
            now = time.perf_counter()
            if p.phase == "embed" and not embed_started:
                embed_started.append(now)
            elapsed = now - embed_started[0] if embed_started else 0.0
            counting = p.phase in ("embed", "done")
            bar.update(task, description=PHASES[p.phase], total=(p.files_total or None) if counting else None,
                       completed=p.files_done, chunks=p.chunks_done,
                       rate=f"{p.chunks_done / elapsed:.0f}" if p.chunks_done and elapsed > 0 else "–")

        yield update


FAISS_SAMPLE_NOTE = re.compile(r"WARNING clustering \d+ points to \d+ centroids")
"""FAISS's note that a k-means training sample is small, which it prints from C++ when an index
trains its token codec on a small first group: nothing for the user to act on."""


@contextmanager
def _stderr_above_display() -> Iterator[Console]:
    """A console on the terminal's stderr for a live display, while what is written to file
    descriptor 2 meanwhile is read line by line and printed through it: what native libraries
    (FAISS, OpenVINO) print there then appears above the display instead of inside it."""
    import threading

    from rich.console import Console

    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    console = Console(file=open(terminal, "w", encoding="utf-8", errors="replace"), highlight=False, soft_wrap=True)

    def forward() -> None:
        with open(read_end, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if FAISS_SAMPLE_NOTE.match(line):
                    continue
                try:
                    console.print(line.rstrip("\n"), markup=False, highlight=False)
                except (OSError, ValueError):  # the terminal went away: keep reading, so writers never block
                    continue

    forwarder = threading.Thread(target=forward, name="xsearch-stderr", daemon=True)
    forwarder.start()
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last write end: the forwarder prints what is left, then stops
        forwarder.join()
        console.file.close()


def _print_report(info: IndexInfo, report: IndexReport, err: Console) -> None:
    embedding = report.seconds - report.stages.get("model", 0.0)  # the rate leaves model loading out
    rate = report.chunks_added / embedding if embedding > 0 and report.chunks_added else 0.0
    err.print(
        f"[bold green]indexed[/] {report.files_added} new, {report.files_updated} changed, "
        f"{report.files_removed} removed, {report.files_unchanged} unchanged files; "
        f"{report.chunks_added} chunks in {report.seconds:.1f}s"
        + (f" ({rate:.0f} chunks/s)" if rate else ""),
    )
    err.print(f"index {info.path}: {info.documents} documents, {info.chunks} chunks, "
              f"{len(info.languages)} languages, {info.index_type}")
    if report.skipped:
        err.print(f"[yellow]skipped {len(report.skipped)} files:[/]")
        for item in report.skipped[:20]:
            err.print(f"  {display_path(item.path)}: {item.reason}", markup=False)
        if len(report.skipped) > 20:
            err.print(f"  … and {len(report.skipped) - 20} more (see --json)")


def _read_queries(query: str | None, queries_file: Any) -> list[str]:
    """The queries of ``search``: the argument, or the lines of ``--queries``; both must be UTF-8."""
    try:
        queries = [query] if query is not None else [line.strip() for line in queries_file if line.strip()]
        for text in queries:
            text.encode("utf-8")
    except UnicodeError as exc:
        where = "the query" if query is not None else f"--queries {queries_file.name}"
        raise UsageError(f"{where} is not valid UTF-8 text") from exc
    return queries


@main.command("search")
@click.argument("query", required=False)
@index_option
@click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True, help="Number of results.")
@click.option("--lang", "langs", metavar="CODES", help="Only passages in these languages, e.g. de,ja.")
@click.option("--mode", type=click.Choice(MODES), default="dense", show_default=True,
              help="Sentence vectors, BM25 keywords, or both fused.")
@click.option("--scoring", type=click.Choice(SCORINGS), default=None,
              help="Language-agnostic (centered) or plain cosine [default: the index's].")
@click.option("--rerank/--no-rerank", default=True, show_default=True,
              help="Rerank the top 100 by token-level late interaction.")
@click.option("--feedback/--no-feedback", default=True, show_default=True,
              help="Pull up the language versions of the best hit (dense and hybrid modes).")
@click.option("--group-by", type=click.Choice(GROUPINGS), default=None,
              help="Each document once, or each passage once with its language versions listed.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.0, show_default=True, metavar="SCORE",
              help="Only hits scoring at least this (scores run from 0 to 1).")
@click.option("--explain", is_flag=True, help="Show why each hit matched: the stages' scores and aligned words.")
@click.option("--query-lang", default=None, metavar="CODE", help="The query's language, instead of detecting it.")
@click.option("--model", default=None, help="Refuse to run unless the index uses this model.")
@click.option("--queries", "queries_file", type=click.File("r", encoding="utf-8"),
              help="Run one query per line of FILE (use - for stdin).")
@backend_option
@json_option
def search_cmd(query: str | None, index_dir: str | None, k: int, langs: str | None, mode: str, scoring: str | None,
               rerank: bool, feedback: bool, group_by: str | None, min_score: float, explain: bool,
               query_lang: str | None, model: str | None, queries_file: Any, backend: str | None,
               as_json: bool) -> None:
    """Search the index with a query in any language."""
    from .index import Index

    if (query is None) == (queries_file is None):
        raise UsageError("give a QUERY or --queries FILE (one of them)")
    queries = _read_queries(query, queries_file)
    with Index.open(_index_path(index_dir), model=model, backend=backend) as index:
        results = index.search_batch(queries, k, langs=_langs(langs), mode=mode, scoring=scoring, rerank=rerank,
                                     feedback=feedback, group_by=group_by, min_score=min_score, explain=explain,
                                     query_lang=query_lang)
    if as_json:
        if queries_file is None:
            click.echo(json.dumps([h.to_dict() for h in results[0]], ensure_ascii=False))
        else:
            for hits in results:
                click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    out = stdout_console()
    for n, (text, hits) in enumerate(zip(queries, results)):
        if len(queries) > 1:
            out.print(("\n" if n else "") + f"[bold]query:[/] {text}", highlight=False)
        _print_hits(out, hits)


def _print_hits(out: Console, hits: list[Hit]) -> None:
    from rich.text import Text

    if not hits:
        out.print("no results")
        return
    for rank, hit in enumerate(hits, 1):
        line = Text()
        line.append(f"{rank:>2}. ", style="bold")
        line.append(f"{hit.score:.3f} ", style="cyan")
        line.append(f"[{hit.lang or 'und'}] ", style=LANG_STYLE)
        line.append(display_path(hit.path) + (f"#{hit.record}" if hit.record else ""), style="bold blue")
        if hit.title:
            line.append(f"  {hit.title}", style="dim")
        out.print(line, soft_wrap=True)
        out.print(Text("    ").append_text(snippet(hit.text, hit.highlights)))
        for more in hit.more:
            out.print(Text(f"    … {more.score:.3f} ", style="dim").append_text(snippet(more.text, more.highlights, 120)))
        if hit.translations:
            out.print(Text("    ").append_text(also_in(hit.translations)), soft_wrap=True)
        if hit.explain is not None:
            for row in explain_lines(hit.explain):
                out.print(Text(f"    {row}", style="dim"), soft_wrap=True)


@main.command("tui")
@index_option
@backend_option
def tui_cmd(index_dir: str | None, backend: str | None) -> None:
    """Open the terminal UI: search as you type, preview passages, add folders."""
    from .tui import run

    run(_index_path(index_dir), backend=backend)


@main.command("info")
@index_option
@json_option
def info_cmd(index_dir: str | None, as_json: bool) -> None:
    """Show what an index holds: documents, chunks, languages, model, size."""
    from .index import Index

    with Index.open(_index_path(index_dir)) as index:
        info = index.info()
    if as_json:
        click.echo(json.dumps(info.to_dict(), ensure_ascii=False))
        return
    out = stdout_console()
    langs = ", ".join(f"{lang} {n}" for lang, n in info.languages.items()) or "–"
    layer = "last" if info.layer is None else str(info.layer)
    rows = [
        ("index", info.path), ("files", str(info.files)), ("documents", str(info.documents)),
        ("chunks", str(info.chunks)), ("languages", langs), ("translations", f"{info.translations} linked pairs"),
        ("model", info.model),
        ("pooling", f"{info.pooling} (layer {layer})"), ("dimension", str(info.dim)),
        ("index type", info.index_type), ("size on disk", _human_bytes(info.bytes_on_disk)),
        ("built by", f"xsearch {info.version}"),
    ]
    for key, value in rows:
        out.print(f"[bold]{key:<13}[/]{value}", highlight=False)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@main.group("eval")
def eval_group() -> None:
    """Measure retrieval quality on standard test sets (BEIR folders, Tatoeba)."""


model_option = click.option("--model", default=None, help=f"Model to evaluate [default: {DEFAULT_MODEL}].")


@eval_group.command("beir")
@click.argument("directory", type=click.Path())
@click.option("--mode", "modes", multiple=True, default=("dense",), metavar="NAME",
              help="Ranking configuration to score, one table row each (repeatable) [default: dense].")
@model_option
@click.option("--index-dir", metavar="DIR",
              help="Build the evaluation index here and keep it [default: a temporary folder].")
@backend_option
@json_option
def eval_beir_cmd(directory: str, modes: tuple[str, ...], model: str | None, index_dir: str | None,
                  backend: str | None, as_json: bool) -> None:
    """Score retrieval on a BEIR-format test set.

    DIRECTORY holds corpus.jsonl, queries.jsonl and qrels/test.tsv. The corpus is indexed into a
    fresh index, every judged query is searched, and each mode gets nDCG@10, recall@10, @100 and @7,
    MRR@10, MAP@20 and the median search latency.
    """
    from .evaluate import MEASURES, check_configs, evaluate_beir, load_beir

    data = load_beir(directory)
    configs = check_configs(modes)
    encoder = _eval_encoder(model, backend)
    with _eval_progress(stderr_console()) as progress:
        rows = evaluate_beir(data, configs=configs, encoder=encoder, index_dir=index_dir, progress=progress)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], ensure_ascii=False))
        return
    from rich.table import Table

    out = stdout_console()
    out.print(f"{directory}: {len(data.corpus)} passages, {rows[0].queries} queries, model {rows[0].model}",
              markup=False)
    table = Table(box=None, header_style="bold")
    table.add_column("mode")
    for column in (*MEASURES, "p50 ms"):
        table.add_column(column, justify="right")
    for row in rows:
        values = row.to_dict()
        metrics = (f"{values[name]:.3f}" for name in MEASURES)
        table.add_row(row.config, *metrics, f"{row.p50_ms:.1f}")
    out.print(table)


@eval_group.command("tatoeba")
@click.argument("directory", type=click.Path())
@click.option("--lang", "langs", metavar="CODES", help="Only these languages, e.g. deu,fra [default: every pair].")
@click.option("--scoring", type=click.Choice(["plain", "centered", "csls"]), default="plain", show_default=True,
              help="Cosine, cosine of language-centred vectors, or centred + CSLS margin.")
@model_option
@backend_option
@json_option
def eval_tatoeba_cmd(directory: str, langs: str | None, scoring: str, model: str | None, backend: str | None,
                     as_json: bool) -> None:
    """Score translation retrieval into English on Tatoeba.

    For every tatoeba.xx-eng.xx / tatoeba.xx-eng.eng pair in DIRECTORY: the percentage of xx
    sentences whose nearest English line is their own translation (accuracy@1), and the average.
    """
    from .evaluate import evaluate_tatoeba, load_tatoeba

    languages = _langs(langs)
    load_tatoeba(directory, languages=languages)  # bad folder or language: fail before loading the model
    encoder = _eval_encoder(model, backend)
    with _eval_progress(stderr_console()) as progress:
        result = evaluate_tatoeba(directory, encoder=encoder, languages=languages, scoring=scoring, progress=progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    from rich.table import Table

    out = stdout_console()
    out.print(f"{directory}: model {result.model}", markup=False)
    table = Table(box=None, header_style="bold")
    table.add_column("language")
    table.add_column("sentences", justify="right")
    table.add_column("acc@1", justify="right")
    for code, accuracy in result.languages.items():
        table.add_row(code, str(result.sentences[code]), f"{accuracy:.1f}")
    table.add_section()
    table.add_row("average", str(sum(result.sentences.values())), f"{result.average:.1f}", style="bold")
    out.print(table)


def _eval_encoder(model: str | None, backend: str | None) -> Encoder:
    from .config import DEFAULT_MODEL
    from .embed.encoder import Encoder

    return Encoder.load(model or DEFAULT_MODEL, backend=backend)


@contextmanager
def _eval_progress(err: Console) -> Iterator[Callable[[EvalProgress], None] | None]:
    """A progress callback drawing one bar on ``err``, or None when ``err`` is not a terminal."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("loading", total=None)

        def update(p: EvalProgress) -> None:
            description = {"index": "indexing chunks", "search": f"searching ({p.label})",
                           "encode": f"encoding {p.label}".rstrip()}[p.phase]
            bar.update(task, description=description, total=p.total or None, completed=p.done)

        yield update


@main.command("serve")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default answers this machine only.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@backend_option
def serve_cmd(index_dir: str | None, host: str, port: int, backend: str | None) -> None:
    """Serve the index over HTTP: search, add and delete documents (API docs at /docs).

    An index that does not exist yet is created empty; add documents with POST /documents.
    """
    from .index import Index
    from .server import run

    err = stderr_console()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it may search, add and delete "
                  "documents (the API has no authentication)")
    with Index.open_or_create(_index_path(index_dir), backend=backend) as index:
        shown = f"[{host}]" if ":" in host else host
        err.print(f"serving {index.path} on http://{shown}:{port} (API docs at /docs)", markup=False)
        run(index, host=host, port=port)


def _register() -> None:
    from .cli_models import embed_cmd, models_group

    main.add_command(models_group)
    main.add_command(embed_cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
