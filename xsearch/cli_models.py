"""``xsearch models …`` and ``xsearch embed``: the model layer from the shell."""

from __future__ import annotations

import json

import click

from .cli_common import backend_option, json_option, stderr_console, stdout_console
from .config import DEFAULT_MODEL, POOLINGS
from .errors import UsageError


@click.group("models")
def models_group() -> None:
    """List, inspect, import and download models; fill masks."""


@models_group.command("list")
@json_option
def models_list(as_json: bool) -> None:
    """Every known model, its kind, size and where it is now."""
    from rich.table import Table

    from .embed.registry import list_models

    models = list_models()
    if as_json:
        click.echo(json.dumps([m.to_dict() for m in models], ensure_ascii=False))
        return
    table = Table(box=None, header_style="bold")
    # a name is what --model takes: it is never cut; the other columns wrap or shrink instead
    table.add_column("name", no_wrap=True, min_width=max(len(m.card.name) for m in models))
    for column in ("kind", "dim", "max len", "cased", "licence", "where"):
        table.add_column(column)
    for m in models:
        c = m.card
        table.add_row(c.name, c.kind, str(c.dim or "?"), str(c.max_length or "?"), "yes" if c.case_sensitive else "no",
                      c.license or "?", m.location + (f"  {m.path}" if m.path and m.location == "local path" else ""))
    stdout_console().print(table)


@models_group.command("info")
@click.argument("name")
@json_option
def models_info(name: str, as_json: bool) -> None:
    """Everything the registry knows about NAME."""
    from .embed.registry import status

    entry = status(name).to_dict()
    if as_json:
        click.echo(json.dumps(entry, ensure_ascii=False))
        return
    out = stdout_console()
    for key, value in entry.items():
        if isinstance(value, list):
            value = ", ".join(value) or "–"
        out.print(f"[bold]{key:<15}[/]{value if value not in ('', None) else '–'}", highlight=False)


@models_group.command("pull")
@click.argument("name")
def models_pull(name: str) -> None:
    """Download NAME from the Hugging Face hub into the local cache (the only command that downloads)."""
    from .embed.registry import pull

    path = pull(name)
    stderr_console().print(f"[green]pulled[/] {name} into {path}")


@models_group.command("import")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="Name to use with --model.")
def models_import(path: str, name: str) -> None:
    """Register a local Hugging Face-format model folder under a name."""
    from .embed.registry import import_model

    folder = import_model(path, name)
    stderr_console().print(f"[green]imported[/] {name} -> {folder}")


@models_group.command("fill-mask")
@click.argument("text")
@click.option("--model", default="xlm-roberta-large", show_default=True, help="A masked-LM model.")
@click.option("-k", "top_k", type=click.IntRange(1, 100), default=5, show_default=True)
@json_option
def models_fill_mask(text: str, model: str, top_k: int, as_json: bool) -> None:
    """Predict the <mask> token in TEXT, as on the xlm-roberta-large model card."""
    from .embed.fill_mask import MaskFiller

    completions = MaskFiller(model).fill(text, top_k)
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in completions], ensure_ascii=False))
        return
    out = stdout_console()
    for c in completions:
        out.print(f"{c.score:.4f}  {c.token:<15} {c.sequence}", highlight=False, markup=False)


@click.command("embed")
@click.argument("texts", nargs=-1, required=True)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model name, hub id or folder.")
@click.option("--pooling", type=click.Choice(POOLINGS), default="mean", show_default=True)
@click.option("--layer", type=int, default=None, help="Hidden layer to pool from [default: last].")
@click.option("--tokens", is_flag=True, help="Token vectors with character offsets instead of sentence vectors.")
@click.option("--as", "kind", type=click.Choice(["query", "passage", "plain"]), default="plain", show_default=True,
              help="Put the model's query or passage prefix in front.")
@backend_option
@json_option
def embed_cmd(texts: tuple[str, ...], model: str, pooling: str, layer: int | None, tokens: bool, kind: str,
              backend: str | None, as_json: bool) -> None:
    """Print sentence vectors of TEXTS (or, with --tokens, every token with its offsets and vector)."""
    from .embed.encoder import Encoder

    if any(not t.strip() for t in texts):
        raise UsageError("texts must not be empty")
    encoder = Encoder.load(model, pooling=pooling, layer=layer, backend=backend)
    prefix_kind = None if kind == "plain" else kind
    out = stdout_console()
    if tokens:
        results = encoder.token_embeddings(list(texts), kind=prefix_kind)
        if as_json:
            click.echo(json.dumps([r.to_dict() for r in results], ensure_ascii=False))
            return
        for r in results:
            out.print(f"[bold]{r.text}[/]  ({len(r.tokens)} tokens, {encoder.dim}-d)", highlight=False)
            for tok, (s, e), special, vec in zip(r.tokens, r.offsets, r.special, r.vectors):
                shown = "special" if special else repr(r.text[s:e])
                head = " ".join(f"{x:+.3f}" for x in vec[:4])
                out.print(f"  {tok:<14} {int(s):>4}-{int(e):<4} {shown:<16} [{head} …]", highlight=False, markup=False)
        return
    if prefix_kind == "query":
        vectors = encoder.encode_queries(list(texts))
    elif prefix_kind == "passage":
        vectors = encoder.encode_passages(list(texts))
    else:
        vectors = encoder.encode(list(texts))
    if as_json:
        click.echo(json.dumps([{"text": t, "vector": [round(float(x), 6) for x in v]} for t, v in zip(texts, vectors)],
                              ensure_ascii=False))
        return
    for text, vec in zip(texts, vectors):
        head = " ".join(f"{x:+.4f}" for x in vec[:6])
        out.print(f"{text}\n  {encoder.info.model} {encoder.info.pooling} {len(vec)}-d: [{head} …]",
                  highlight=False, markup=False)
