"""The ``xsearch`` command: thin commands over :class:`xsearch.Index`.

Each command parses its options, calls one library method and renders the result. Library
errors become a one-line message on stderr and the error's exit code. Heavy modules are
imported inside the commands, so ``xsearch --help`` answers at once.
"""

from __future__ import annotations

import errno
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
from .cli_common import backend_option, json_option, print_error, stderr_console, stdout_console
from .config import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_OVERLAP,
    ENGINES,
    GROUPINGS,
    MAX_K,
    MODES,
    POOLINGS,
    SCORINGS,
)
from .errors import IndexCorruptError, UsageError, XsearchError
from .present import display_path
from .runtime import configure_process

if TYPE_CHECKING:
    from rich.console import Console

    from .embed.encoder import Encoder
    from .evaluate import EvalProgress
    from .index import IndexInfo
    from .pipeline import IndexProgress, IndexReport
    from .types import Hit

EXIT_INTERRUPTED = 130
EXIT_SYSTEM = 1
"""Exit code of an error the system raised (a file or folder it refused), not xsearch."""


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
    """Every error through :func:`~xsearch.cli_common.print_error`: one line and an exit code,
    never a traceback, whether click, xsearch or the system raised it."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:  # usage errors keep click's suggestions ("did you mean …?")
            print_error(_click_message(exc))
            sys.exit(exc.exit_code)
        except click.Abort:  # click's own account of Ctrl+C at a prompt
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except XsearchError as exc:
            print_error(str(exc))
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:  # a page damaged after the index was opened
            print_error(f"the index database is damaged: {exc} (rebuild it with `xsearch index`)")
            sys.exit(IndexCorruptError.exit_code)
        except OSError as exc:  # what the system refused (a full disk, a folder not allowed), not a bug
            if exc.errno == errno.EPIPE:
                raise  # click quiets a reader that went away (``| head``)
            print_error(_os_message(exc))
            sys.exit(EXIT_SYSTEM)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


def _click_message(exc: click.ClickException) -> str:
    """Click's message, with where to read more for a usage error."""
    message = exc.format_message()
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        message = message.rstrip() + f" (see '{ctx.command_path} --help')"
    return message


def _os_message(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{(exc.strerror or str(exc)).lower()}{where}"


@click.group(cls=XsearchGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="xsearch")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Multilingual semantic search: index a folder, then ask in any language.

    With no command, opens the terminal UI on the default index (in a terminal). Defaults for
    the index, backend, -k and --mode may be set in ~/.config/xsearch/config.toml (or the file
    $XSEARCH_CONFIG names); environment variables and flags override it.
    """
    from .cli_config import load_config

    configure_process()
    if ctx.invoked_subcommand not in (None, "tui"):
        _log_to_stderr()
    config = load_config()
    ctx.default_map = _option_defaults(ctx.command, config.option_defaults())
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            click.echo(ctx.get_help())
            return
        from .tui import run

        run(_index_path(os.environ.get("XSEARCH_INDEX") or config.index))


def _option_defaults(group: click.Command, values: dict[str, Any]) -> dict[str, Any]:
    """Click's ``default_map`` for ``group``: each command's options named in ``values`` take
    their value as default, below the option's environment variable and the flag."""
    out: dict[str, Any] = {}
    for name, command in getattr(group, "commands", {}).items():
        if isinstance(command, click.Group):
            defaults = _option_defaults(command, values)
        else:
            defaults = {param.name: values[param.name] for param in command.params
                        if isinstance(param, click.Option) and param.name in values
                        and (param.name != "index_dir" or "--index" in param.opts)}
        if defaults:
            out[name] = defaults
    return out


index_option = click.option("--index", "index_dir", metavar="DIR", envvar="XSEARCH_INDEX",
                            help="Index directory [default: ./indexes/default, or $XSEARCH_INDEX].")


@main.command("index")
@click.argument("paths", nargs=-1, required=False, type=click.Path())
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
@click.option("-L", "--follow", is_flag=True,
              help="Follow symlinks inside the folders (a path given that is a link is always followed).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-w", "--watch", is_flag=True,
              help="After indexing, keep the index current as files change, until Ctrl-C.")
@click.option("--prune", is_flag=True,
              help="With no PATH: forget the folders gone from disk, with their documents.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="Read and embed in this process, or on Apache Spark (needs `pip install 'xsearch[spark]'` "
                   "and Java 17).")
@click.option("--master", metavar="URL", default=None,
              help="With --engine spark: the Spark master [default: local[*]].")
@click.option("--partitions", type=click.IntRange(1), default=None, metavar="N",
              help="With --engine spark: tasks to split the files into [default: 4 per core].")
@click.option("--staging", metavar="DIR", type=click.Path(file_okay=False), default=None,
              help="With --engine spark: folder for the job's output, shared by driver and executors "
                   "[default: inside the index].")
@backend_option
@json_option
def index_cmd(paths: tuple[str, ...], index_dir: str | None, model: str | None, pooling: str | None,
              layer: int | None, max_tokens: int | None, overlap: int | None, include: tuple[str, ...],
              exclude: tuple[str, ...], max_file_size: str, follow: bool, quiet: bool, watch: bool, prune: bool,
              engine: str, master: str | None, partitions: int | None, staging: str | None,
              backend: str | None, as_json: bool) -> None:
    """Index files and folders (incrementally: only new and changed files are embedded).

    With no PATH, index again every folder the index was built from, with the options it was
    indexed with, removing the files deleted since (see `xsearch ls`). With --watch, go on
    indexing the changes as files are added, changed or removed, until Ctrl-C. With --engine
    spark, the files are read and embedded on Apache Spark and the result is stored in one
    transaction.
    """
    from .config import IndexConfig
    from .index import Index
    from .types import path_to_text

    chosen = {"model": model, "pooling": pooling, "layer": layer, "max_tokens": max_tokens, "overlap": overlap}
    explicit = [name for name, value in chosen.items() if value is not None]
    config = IndexConfig(**{k: v for k, v in chosen.items() if v is not None})
    max_bytes = _parse_size(max_file_size)
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"no such file or directory: {path_to_text(path)}")
    if paths and prune:
        raise UsageError("--prune applies to indexing every known folder again: give no PATH")
    if not paths and (include or exclude or follow):
        raise UsageError("--include, --exclude and --follow apply to the paths given; with no PATH each folder is "
                         "indexed with the options it was indexed with")
    spark = {"master": master, "partitions": partitions, "staging": staging}
    if engine != "spark" and any(value is not None for value in spark.values()):
        raise UsageError("--master, --partitions and --staging apply to --engine spark")
    if engine == "spark" and (not paths or watch):
        raise UsageError("--engine spark indexes the paths given: give PATH (and no --watch)")
    if engine == "spark":
        from .spark import require_spark

        require_spark()
    if not paths or watch:
        options = {"include": include, "exclude": exclude, "max_file_bytes": max_bytes, "follow": follow}
        _index_known(paths, _index_path(index_dir), config, explicit, options, watch=watch, prune=prune,
                     quiet=quiet, backend=backend, as_json=as_json)
        return
    err = stderr_console()
    show = not quiet and not as_json and err.is_terminal
    index_path = _index_path(index_dir)
    new_index = not index_path.is_dir() or not any(index_path.iterdir())
    with _index_progress(new_index=new_index) if show else nullcontext(None) as progress, \
            Index.open_or_create(index_path, config, explicit=explicit, backend=backend) as index:
        report = index.add_paths(paths, include=include, exclude=exclude, max_file_bytes=max_bytes, follow=follow,
                                 progress=progress, engine=engine, **(spark if engine == "spark" else {}))
        info = index.info()
    if as_json:
        click.echo(json.dumps({"index": str(index_path), **report.to_dict()}, ensure_ascii=False))
    else:
        _print_report(info, report, err)


EXIT_ROOT_MISSING = 1
"""Exit code of ``xsearch index`` with no PATH when a folder it was built from is gone (and
``--prune`` was not given): the other folders are indexed all the same."""


def _index_known(paths: tuple[str, ...], index_path: Path, config: Any, explicit: list[str],
                 options: dict[str, Any], *, watch: bool, prune: bool, quiet: bool, backend: str | None,
                 as_json: bool) -> None:
    """``xsearch index`` with no PATH (every known root again) or with ``--watch``."""
    import signal
    import threading

    from .index import Index

    err = stderr_console()
    show = not quiet and not as_json and not watch and err.is_terminal
    opened = Index.open_or_create(index_path, config, explicit=explicit, backend=backend) if paths \
        else Index.open(index_path, backend=backend)
    with opened as index:
        if not watch:
            with _index_progress(new_index=False) if show else nullcontext(None) as progress:
                synced = index.sync(prune=prune, progress=progress)
            _print_missing(synced.missing, synced.pruned, err)
            if as_json:
                click.echo(json.dumps({"index": str(index_path), **synced.report.to_dict(),
                                       "missing_roots": list(synced.missing), "pruned": synced.pruned},
                                      ensure_ascii=False))
            else:
                _print_report(index.info(), synced.report, err)
            if synced.missing and not synced.pruned:
                sys.exit(EXIT_ROOT_MISSING)
            return
        stop = threading.Event()
        runs = []

        def stopping(signum: int, _frame: Any) -> None:
            stop.set()
            # a second Ctrl-C interrupts at once
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

        def ran(report: IndexReport) -> None:
            first = not runs
            runs.append(report)
            if as_json:
                click.echo(json.dumps({"index": str(index_path), **report.to_dict()}, ensure_ascii=False))
            elif first:
                _print_report(index.info(), report, err)
                err.print("watching for changes (Ctrl-C stops)")
            elif report.files_added or report.files_updated or report.files_removed:
                click.echo(f"{time.strftime('%H:%M:%S')} {report.files_added} added, {report.files_updated} updated, "
                           f"{report.files_removed} removed ({report.chunks_added} chunks)")
            sys.stdout.flush()

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stopping)
        index.watch(paths or None, include=options["include"], exclude=options["exclude"],
                    max_file_bytes=options["max_file_bytes"], follow=options["follow"], on_run=ran, stop=stop)
    if not as_json:
        err.print("stopped watching")


def _print_missing(missing: tuple[str, ...], pruned: bool, err: Console) -> None:
    from rich.markup import escape

    for path in missing:
        if pruned:
            err.print(f"[yellow]forgot[/] {escape(display_path(path))}: gone from disk (its documents were removed)")
        else:
            err.print(f"[yellow]warning:[/] {escape(display_path(path))} is gone from disk; its documents stay until "
                      "`xsearch index --prune` (or `xsearch rm`)")


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
def _stderr_above_display(drain_seconds: float = 2.0) -> Iterator[Console]:
    """A console on the terminal's stderr for a live display, while what is written to file
    descriptor 2 meanwhile is read line by line and printed through it: what native libraries
    (FAISS, OpenVINO) print there then appears above the display instead of inside it.

    On leaving, what is left in the pipe is printed for up to ``drain_seconds``. A child process
    that inherited descriptor 2 can hold the pipe open for longer; the pipe is then closed (what
    the child writes later is lost) instead of the command never ending."""
    import codecs
    import select
    import threading

    from rich.console import Console

    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    console = Console(file=open(terminal, "w", encoding="utf-8", errors="replace"), highlight=False, soft_wrap=True)
    stop = threading.Event()

    def show(line: str) -> None:
        if FAISS_SAMPLE_NOTE.match(line):
            return
        try:
            console.print(line, markup=False, highlight=False)
        except (OSError, ValueError):  # the terminal went away: keep reading, so writers never block
            pass

    def forward() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            while not stop.is_set():
                if not select.select([read_end], [], [], 0.1)[0]:
                    continue
                data = os.read(read_end, 1 << 16)
                pending += decoder.decode(data, final=not data)
                *lines, pending = pending.split("\n")
                for line in lines:
                    show(line)
                if not data:  # every write end is closed
                    break
            if pending:
                show(pending)
        finally:
            os.close(read_end)

    forwarder = threading.Thread(target=forward, name="xsearch-stderr", daemon=True)
    forwarder.start()
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes this process's write end: the forwarder prints what is left, then stops
        forwarder.join(drain_seconds)
        stop.set()  # another process still holds a write end: stop reading and close the pipe
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
    if query is not None and not query.strip():
        raise UsageError("the query is empty: ask for something")
    return queries


@main.command("search")
@click.argument("query", required=False)
@index_option
@click.option("-k", "k", type=click.IntRange(1, MAX_K), default=10, show_default=True, envvar="XSEARCH_K",
              help="Number of results [$XSEARCH_K].")
@click.option("--lang", "langs", metavar="CODES",
              help="Only passages in these languages, e.g. de,ja (codes or names: German, Deutsch).")
@click.option("--mode", type=click.Choice(MODES), default="dense", show_default=True, envvar="XSEARCH_MODE",
              help="Sentence vectors, BM25 keywords, or both fused [$XSEARCH_MODE].")
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
@click.option("--compact", is_flag=True, help="One line per hit: rank, score, language, path and snippet.")
@backend_option
@json_option
def search_cmd(query: str | None, index_dir: str | None, k: int, langs: str | None, mode: str, scoring: str | None,
               rerank: bool, feedback: bool, group_by: str | None, min_score: float, explain: bool,
               query_lang: str | None, model: str | None, queries_file: Any, compact: bool, backend: str | None,
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
        _print_hits(out, hits, compact=compact)


def _print_hits(out: Console, hits: list[Hit], *, compact: bool = False) -> None:
    """Hits for a person: wrapped lines indented under each hit's header (or one line a hit when
    ``compact``), each path a hyperlink to its passage where stdout is a terminal that shows them."""
    from .present import hit_block, hit_line

    if not hits:
        out.print("no results")
        return
    link = sys.stdout.isatty() and out.is_terminal and not out.is_dumb_terminal and out.color_system is not None
    for rank, hit in enumerate(hits, 1):
        if compact:
            out.print(hit_line(rank, hit, link=link), no_wrap=True, overflow="ellipsis", soft_wrap=out.soft_wrap)
            continue
        for row in hit_block(rank, hit, link=link, wrap=not out.soft_wrap):
            out.print(row, soft_wrap=out.soft_wrap)


@main.command("tui")
@index_option
@backend_option
def tui_cmd(index_dir: str | None, backend: str | None) -> None:
    """Open the terminal UI: search as you type, preview passages, add folders."""
    from .tui import run

    run(_index_path(index_dir), backend=backend)
    _exit_now()


def _exit_now() -> None:
    """End the process at once, once the terminal UI has closed its index: a model still
    loading in a background thread would otherwise hold the exit back by a few tenths of a second."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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


@main.command("ls")
@index_option
@json_option
def ls_cmd(index_dir: str | None, as_json: bool) -> None:
    """List the folders and files the index was built from: files, documents, chunks and
    languages of each, when it was last indexed, and what is gone or changed on disk since."""
    from .index import Index

    index_path = _index_path(index_dir)
    with Index.open(index_path) as index:
        rows = index.roots()
    if as_json:
        click.echo(json.dumps({"index": str(index_path), "roots": [row.to_dict() for row in rows]},
                              ensure_ascii=False))
        return
    if not rows:
        stderr_console().print(f"index {index_path} holds nothing yet (add with `xsearch index FOLDER`)", markup=False)
        return
    out = stdout_console()
    out.print(f"[bold]{'STATUS':<8}{'FILES':>7}{'DOCS':>7}{'CHUNKS':>8}  {'LANGUAGES':<22}{'INDEXED':<18}PATH[/]",
              highlight=False)
    names = {"texts": "(texts added through the API)", "unrooted": "(files under no recorded folder)"}
    for row in rows:
        langs = ", ".join(f"{lang} {n}" for lang, n in list(row.languages.items())[:3]) or "–"
        if len(row.languages) > 3:
            langs += ", …"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.indexed_at)) if row.indexed_at else "–"
        where = display_path(row.path) if row.path is not None else names[row.kind]
        out.print(f"{row.status:<8}{row.files:>7}{row.documents:>7}{row.chunks:>8}  {langs:<22}{when:<18}{where}",
                  markup=False, highlight=False)
        if row.missing_files or row.changed_files:
            out.print(f"{'':<8}{row.missing_files} files gone, {row.changed_files} changed since indexed",
                      markup=False, highlight=False)


@main.command("rm")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@index_option
@json_option
def rm_cmd(paths: tuple[str, ...], index_dir: str | None, as_json: bool) -> None:
    """Remove files, folders or whole indexed folders from the index, on disk or not.

    A folder the index was built from is forgotten when it is removed whole; removing a part of
    it leaves the folder, and indexing it again brings that part back. A PATH that matches
    nothing indexed is an error (exit 2) and nothing is removed.
    """
    from .index import Index

    index_path = _index_path(index_dir)
    with Index.open(index_path) as index:
        removal = index.remove_paths(paths)
    if as_json:
        click.echo(json.dumps({"index": str(index_path), **removal.to_dict()}, ensure_ascii=False))
        return
    err = stderr_console()
    err.print(f"removed {len(removal.files)} files ({removal.documents} documents) from {index_path}", markup=False)
    for root in removal.roots:
        err.print(f"forgot folder {display_path(root)}", markup=False)


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
    from .server import listen, run

    err = stderr_console()
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it may search, add and delete "
                  "documents (the API has no authentication)")
    with listen(host, port) as sock, Index.open_or_create(_index_path(index_dir), backend=backend) as index:
        shown = f"[{host}]" if ":" in host else host
        err.print(f"serving {index.path} on http://{shown}:{port} (API docs at /docs)", markup=False)
        run(index, host=host, port=port, sock=sock)


COMPLETION_VAR = "_XSEARCH_COMPLETE"
"""The environment variable through which a shell asks ``xsearch`` for completions."""


@main.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL: commands, options and their choices.

    \b
    bash:  xsearch completion bash > ~/.local/share/bash-completion/completions/xsearch
    zsh:   xsearch completion zsh > ~/.zfunc/_xsearch   (with fpath+=~/.zfunc before compinit)
    fish:  xsearch completion fish > ~/.config/fish/completions/xsearch.fish
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    if completion is None:  # click lists these three shells; kept for a click that drops one
        raise UsageError(f"no completion for {shell}")
    click.echo(completion(main, {}, "xsearch", COMPLETION_VAR).source())


def _register() -> None:
    from .cli_models import embed_cmd, models_group

    main.add_command(models_group)
    main.add_command(embed_cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
