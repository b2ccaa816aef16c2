"""Token-level late-interaction reranking on bible-nt-7: quality, codecs, storage and latency.

    python benchmarks/bench_rerank.py [--data DIR] [--cache DIR] [--sections rerank,codecs,...]

Encodes the bible-nt-7 passages and queries with the default model once (sentence vectors
with ``encode_passages`` / ``encode_queries``, token vectors with ``token_embeddings``) and
caches the arrays as .npy under ``--cache`` (default /tmp/xsearch-bench-rerank; the first
run takes 10-30 minutes on 2 busy cores, later runs about 10). Then prints markdown tables:

- first stage: mAP@20 and R@7 (ir-measures) of dense cosine of sentence vectors, plain and
  with per-language mean centring;
- ``rerank``: MaxSim rerank of the top ``--candidates``, z-score fused with the first-stage
  score at several weights, on raw and on per-language-centred token vectors, with and
  without token filtering;
- ``codecs``: the best rerank with token vectors passed through each ``TokenCodec`` kind,
  with bytes per token and chunk, and disk per 1M chunks;
- ``train-size``: pq m=48 trained on 256 ... 65,536 tokens, the quality it keeps;
- ``latency``: rerank time per query (decode + centre + MaxSim + fusion; fetching not
  included), with the BLAS library's default threads and with one;
- ``highlights``: best-match cosines of query tokens, to choose the highlight threshold;
- ``tatoeba``: short texts, accuracy@1 of xx -> English retrieval with and without rerank
  (../shared/data/tatoeba, skipped when absent).

Exits with a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIBLE = ROOT.parent / "shared" / "data" / "bible-nt-7"
MODEL = "multilingual-e5-small"


# encoding and cache -----------------------------------------------------------
def load_data(folder: Path):
    from xsearch.evaluate import load_beir

    data = load_beir(folder)
    doc_ids = list(data.corpus)
    query_ids = data.judged_queries
    return data, doc_ids, query_ids


def encode_all(data, doc_ids: list[str], query_ids: list[str], cache: Path, threads: int | None) -> dict:
    """Sentence and token vectors of passages and queries, read from ``cache`` when there."""
    files = ["doc_sent", "doc_tok", "doc_count", "doc_special", "doc_punct",
             "q_sent", "q_tok", "q_count", "q_special", "q_punct"]
    meta = cache / "meta.json"
    expect = {"model": MODEL, "docs": len(doc_ids), "queries": len(query_ids)}
    if meta.is_file() and json.loads(meta.read_text()) == expect and all((cache / f"{f}.npy").is_file() for f in files):
        return {f: np.load(cache / f"{f}.npy") for f in files}

    from xsearch.embed.encoder import Encoder

    cache.mkdir(parents=True, exist_ok=True)
    encoder = Encoder.load(MODEL, threads=threads)
    out = {}
    for side, texts, kind in (("q", [data.queries[q].text for q in query_ids], "query"),
                              ("doc", [data.corpus[d].text for d in doc_ids], "passage")):
        t = time.perf_counter()
        sent = encoder.encode_queries(texts) if kind == "query" else encoder.encode_passages(texts)
        t_sent = time.perf_counter() - t
        t = time.perf_counter()
        toks = encoder.token_embeddings(texts, kind=kind)
        t_tok = time.perf_counter() - t
        print(f"encoded {len(texts)} {kind} texts: sentence vectors {t_sent:.0f} s, token vectors {t_tok:.0f} s",
              file=sys.stderr)
        out[f"{side}_sent"] = sent
        out[f"{side}_tok"] = np.concatenate([te.vectors for te in toks]).astype(np.float32)
        out[f"{side}_count"] = np.array([len(te.tokens) for te in toks], dtype=np.int64)
        out[f"{side}_special"] = np.concatenate([te.special for te in toks])
        out[f"{side}_punct"] = np.concatenate([punctuation_mask(te) for te in toks])
    for f in files:
        np.save(cache / f"{f}.npy", out[f])
    meta.write_text(json.dumps(expect))
    return out


def punctuation_mask(te) -> np.ndarray:
    """True for tokens whose text span is empty or only punctuation/symbols (specials excluded)."""
    from xsearch.embed.tokens import content_mask

    return ~content_mask(te.text, te.offsets, te.special) & ~te.special


# ranking ------------------------------------------------------------------------
WEIGHTS = (0.25, 0.5, 0.75, 0.9, 1.0)
FILTERS = {
    "all tokens": ("all", "all"),
    "no specials": ("nospecial", "nospecial"),
    "content only": ("content", "content"),
    "content query, all doc": ("content", "all"),
}
"""Token filter name -> (query side, document side)."""
SECTIONS = ("rerank", "codecs", "train-size", "latency", "highlights", "tatoeba")


class Bench:
    """The encoded set and what every configuration shares: languages, relevance, token slices."""

    def __init__(self, data, doc_ids: list[str], query_ids: list[str], arrays: dict, candidates: int) -> None:
        self.doc_ids = doc_ids
        self.query_ids = query_ids
        self.qrels = {q: data.qrels[q] for q in query_ids}
        self.k = candidates
        self.doc_lang = np.array([data.corpus[d].lang for d in doc_ids])
        self.q_lang = np.array([data.queries[q].lang for q in query_ids])
        self.a = arrays
        self.doc_counts = arrays["doc_count"]
        self.q_counts = arrays["q_count"]
        self.doc_tok_lang = np.repeat(self.doc_lang, self.doc_counts)

    # first stage
    def first_stage(self, centred: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-k candidate rows and cosine scores per query, ``(n_queries, k)`` each."""
        from xsearch.search.late_interaction import normalise

        docs, queries = self.a["doc_sent"], self.a["q_sent"]
        if centred:
            means = {lang: docs[self.doc_lang == lang].mean(axis=0) for lang in np.unique(self.doc_lang)}
            docs = normalise(docs - np.stack([means[lang] for lang in self.doc_lang]))
            queries = normalise(queries - np.stack([means[lang] for lang in self.q_lang]))
        sims = queries @ docs.T
        top = np.argpartition(-sims, self.k, axis=1)[:, : self.k]
        scores = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-scores, axis=1)
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(scores, order, axis=1)

    # tokens
    def keep_mask(self, side: str, how: str) -> np.ndarray:
        special, punct = self.a[f"{side}_special"], self.a[f"{side}_punct"]
        return {"all": np.ones_like(special), "nospecial": ~special, "content": ~special & ~punct}[how]

    def tokens(self, filt: str, centred: bool, doc_tokens: np.ndarray | None = None):
        """(query token arrays, packed doc tokens, doc starts, doc counts), normalised, filtered, maybe centred.

        ``doc_tokens`` replaces the raw document token vectors (e.g. decoded by a codec).
        """
        from xsearch.search.late_interaction import centre

        q_how, d_how = FILTERS[filt]
        d_keep = self.keep_mask("doc", d_how)
        q_keep = self.keep_mask("q", q_how)
        raw = self.a["doc_tok"] if doc_tokens is None else doc_tokens
        flat = raw[d_keep]
        tok_lang = self.doc_tok_lang[d_keep]
        counts = np.add.reduceat(d_keep.astype(np.int64), np.concatenate(([0], np.cumsum(self.doc_counts)[:-1])))
        means = {lang: flat[tok_lang == lang].mean(axis=0) for lang in np.unique(tok_lang)} if centred else {}
        out = np.empty_like(flat)
        for lang in np.unique(tok_lang):
            rows = tok_lang == lang
            out[rows] = centre(flat[rows], means.get(lang))
        q_starts = np.concatenate(([0], np.cumsum(self.q_counts)))
        queries = []
        for i, lang in enumerate(self.q_lang):
            sl = slice(q_starts[i], q_starts[i + 1])
            queries.append(centre(self.a["q_tok"][sl][q_keep[sl]], means.get(lang)))
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        return queries, out, starts, counts, means

    def maxsim_all(self, cands: np.ndarray, toks) -> np.ndarray:
        """``(n_queries, k)`` MaxSim of each query against its candidates."""
        from xsearch.search.late_interaction import maxsim

        queries, flat, starts, counts, _ = toks
        out = np.empty(cands.shape, dtype=np.float32)
        for qi, rows in enumerate(cands):
            out[qi] = maxsim(queries[qi], [flat[starts[r] : starts[r] + counts[r]] for r in rows])
        return out

    # metrics
    def measure(self, cands: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
        """mAP@20 and R@7 of rankings given as candidate rows with scores (higher is better)."""
        import ir_measures
        from ir_measures import AP, R

        run = {qid: {self.doc_ids[r]: float(s) for r, s in zip(rows, row_scores)}
               for qid, rows, row_scores in zip(self.query_ids, cands, scores)}
        result = ir_measures.calc_aggregate([AP @ 20, R @ 7], self.qrels, run)
        return result[AP @ 20], result[R @ 7]

    def fused(self, cands, first, ms, weight: float) -> tuple[float, float]:
        from xsearch.search.fusion import fuse

        return self.measure(cands, np.stack([fuse(f, m, weight) for f, m in zip(first, ms)]))


def keep_count(bench: Bench) -> int:
    return int(bench.keep_mask("doc", FILTERS[BEST[3]][1]).sum())


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "--:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def quality_rows(bench: Bench, stages: dict, configs: list[tuple[str, str, bool, str]]) -> list:
    """One row per (first stage, token vectors, filter): mAP@20 / R@7 at each fusion weight."""
    rows = []
    for stage, tok_name, centred, filt in configs:
        cands, first = stages[stage]
        t = time.perf_counter()
        ms = bench.maxsim_all(cands, bench.tokens(filt, centred))
        cells = [f"{stage} + MaxSim on {tok_name} tokens, {filt}"]
        for w in WEIGHTS:
            m, r = bench.fused(cands, first, ms, w)
            cells.append(f"{m:.4f} / {r:.4f}")
        rows.append(cells)
        print(f"  {cells[0]}: {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return rows


CODECS = [("fp16", None, 0), ("pq", 48, 0), ("pq", 96, 0), ("ivfpq", 48, 256), ("ivfpq", 96, 256)]
"""(kind, m, nlist) of each token codec measured."""
BEST = ("centred cosine", "centred", True, "content only")
"""The rerank configuration the codecs, latency and highlight thresholds are measured on."""


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def codec_rows(bench: Bench, stages: dict, weights: tuple[float, ...], samples: int, seed: int) -> tuple[list, dict]:
    """Quality, size and reconstruction of each codec on the best rerank configuration."""
    from xsearch.store.tokens import TokenCodec

    stage, _, centred, filt = BEST
    cands, first = stages[stage]
    keep = bench.keep_mask("doc", FILTERS[filt][1])
    raw = bench.a["doc_tok"]
    kept = raw[keep]
    lang = bench.doc_tok_lang[keep]
    means = {g: kept[lang == g].mean(axis=0) for g in np.unique(lang)}
    mean_rows = np.stack([means[g] for g in lang])
    per_chunk = keep.sum() / len(bench.doc_ids)
    rng = np.random.default_rng(seed)
    sample = kept[np.sort(rng.choice(len(kept), min(samples, len(kept)), replace=False))]
    rows, codecs = [], {}
    for kind, m, nlist in CODECS:
        name = kind if m is None else f"{kind} m={m}" + (f" nlist={nlist}" if nlist else "")
        t = time.perf_counter()
        codec = TokenCodec.train(sample, kind, m=m, seed=seed, **({"nlist": nlist} if nlist else {}))
        t_train = time.perf_counter() - t
        t = time.perf_counter()
        decoded_kept = codec.decode(codec.encode(kept), len(kept))
        t_code = time.perf_counter() - t
        c_raw = cos_rows(decoded_kept, kept).mean()
        c_cen = cos_rows(decoded_kept - mean_rows, kept - mean_rows).mean()
        decoded = raw.copy()
        decoded[keep] = decoded_kept
        ms = bench.maxsim_all(cands, bench.tokens(filt, centred, doc_tokens=decoded))
        cells = [name, str(codec.bytes_per_token), f"{codec.bytes_per_token * per_chunk:,.0f}",
                 f"{c_raw:.4f}", f"{c_cen:.4f}"]
        cells += [f"{bench.fused(cands, first, ms, w)[0]:.4f}" for w in weights]
        rows.append(cells)
        codecs[name] = codec
        print(f"  codec {name}: train {t_train:.0f} s, encode+decode {len(kept):,} tokens {t_code:.0f} s",
              file=sys.stderr)
    return rows, codecs


def latency_rows(bench: Bench, stages: dict, codecs: dict, weight: float, n_queries: int) -> list:
    """Median and p95 wall time of decode + centre + MaxSim + fusion for one query's candidates."""
    from threadpoolctl import threadpool_limits

    from xsearch.search.fusion import fuse
    from xsearch.search.late_interaction import centre, maxsim, maxsim_packed

    stage, _, centred, filt = BEST
    cands, first = stages[stage]
    _, _, starts, counts, means = bench.tokens(filt, centred)
    kept = bench.a["doc_tok"][bench.keep_mask("doc", FILTERS[filt][1])]
    langs = sorted(means)
    mean_matrix = np.stack([means[g] for g in langs])
    doc_lang_id = np.searchsorted(langs, bench.doc_lang)
    q_keep = bench.keep_mask("q", FILTERS[filt][0])
    q_starts = np.concatenate(([0], np.cumsum(bench.q_counts)))
    q_raw = [bench.a["q_tok"][q_starts[i] : q_starts[i + 1]][q_keep[q_starts[i] : q_starts[i + 1]]]
             for i in range(n_queries)]

    def one_query(codec, blobs, qi: int, packed: bool) -> tuple[float, float]:
        rows = cands[qi]
        t0 = time.perf_counter()
        cand_blobs, cand_counts = [blobs[r] for r in rows], counts[rows]
        q = centre(q_raw[qi], means[bench.q_lang[qi]])
        if packed:
            flat = codec.decode_concat(cand_blobs, cand_counts)
            t1 = time.perf_counter()
            ms = maxsim_packed(q, flat, cand_counts, centres=mean_matrix, groups=doc_lang_id[rows])
        else:
            docs = codec.decode_many(cand_blobs, cand_counts)
            t1 = time.perf_counter()
            ms = maxsim(q, docs, centres=mean_matrix, groups=doc_lang_id[rows])
        np.argsort(-fuse(first[qi], ms, weight))
        return t1 - t0, time.perf_counter() - t0

    out = []
    for name, codec in codecs.items():
        blobs = [codec.encode(kept[s : s + n]) for s, n in zip(starts, counts)]
        for packed, threads in ((True, None), (False, None), (True, 1)):
            with threadpool_limits(threads, user_api="blas"):
                timed = np.array([one_query(codec, blobs, qi, packed) for qi in range(n_queries)])
            api = "decode_concat + maxsim_packed" if packed else "decode_many + maxsim"
            out.append([name, api, "1" if threads else "default", f"{1000 * np.median(timed[:, 0]):.1f}",
                        f"{1000 * np.median(timed[:, 1]):.1f}", f"{1000 * np.percentile(timed[:, 1], 95):.1f}"])
    return out


TRAIN_SIZES = (256, 1_000, 4_000, 16_000, 65_536)


def train_size_rows(bench: Bench, stages: dict, weight: float, seed: int) -> list:
    """pq m=48 trained on ever larger samples: how many tokens the first batch needs."""
    from xsearch.store.tokens import TokenCodec

    stage, _, centred, filt = BEST
    cands, first = stages[stage]
    keep = bench.keep_mask("doc", FILTERS[filt][1])
    raw = bench.a["doc_tok"]
    kept = raw[keep]
    lang = bench.doc_tok_lang[keep]
    mean_rows = np.stack([kept[lang == g].mean(axis=0) for g in np.unique(lang)])[np.unique(lang, return_inverse=True)[1]]
    rows = []
    for size in TRAIN_SIZES:
        sample = kept[np.sort(np.random.default_rng(seed).choice(len(kept), size, replace=False))]
        codec = TokenCodec.train(sample, "pq", m=48, seed=seed)
        decoded_kept = codec.decode(codec.encode(kept), len(kept))
        decoded = raw.copy()
        decoded[keep] = decoded_kept
        ms = bench.maxsim_all(cands, bench.tokens(filt, centred, doc_tokens=decoded))
        rows.append([f"{size:,}", f"{cos_rows(decoded_kept - mean_rows, kept - mean_rows).mean():.4f}",
                     f"{bench.fused(cands, first, ms, weight)[0]:.4f}"])
    return rows


def highlight_rows(bench: Bench, stages: dict, n_queries: int) -> list:
    """Best-match cosines of query content tokens, in answers of other languages and in non-answers."""
    from xsearch.search.late_interaction import alignment

    stage, _, _, filt = BEST
    cands, _ = stages[stage]
    rows = []
    for centred in (False, True):
        queries, flat, starts, counts, _ = bench.tokens(filt, centred)
        groups: dict[str, list] = {"answer, other language": [], "non-answer in top 10": []}
        for qi in range(n_queries):
            qid, qlang = bench.query_ids[qi], bench.q_lang[qi]
            for r in cands[qi][:10]:
                relevant = bench.doc_ids[r] in bench.qrels[qid]
                if relevant and bench.doc_lang[r] == qlang:
                    continue
                _, sim = alignment(queries[qi], flat[starts[r] : starts[r] + counts[r]])
                groups["answer, other language" if relevant else "non-answer in top 10"].append(sim)
        for group, sims in groups.items():
            x = np.concatenate(sims)
            rows.append(["centred" if centred else "raw", group, f"{len(x):,}"]
                        + [f"{np.percentile(x, p):.2f}" for p in (10, 25, 50, 75, 90)])
    return rows


TATOEBA = ROOT.parent / "shared" / "data" / "tatoeba"
TATOEBA_LANGS = ("deu", "jpn", "swh")


def encode_texts(encoder, texts: list[str], kind: str) -> dict:
    """Sentence vectors and content-token vectors (with per-text counts) of short texts."""
    from xsearch.embed.tokens import content_mask

    sent = encoder.encode_queries(texts) if kind == "query" else encoder.encode_passages(texts)
    toks = encoder.token_embeddings(texts, kind=kind)
    keep = [content_mask(te.text, te.offsets, te.special) for te in toks]
    return {"sent": sent, "tok": np.concatenate([te.vectors[k] for te, k in zip(toks, keep)]),
            "count": np.array([int(k.sum()) for k in keep], dtype=np.int64)}


def tatoeba_rows(cache: Path, threads: int | None, candidates: int) -> list:
    """Short texts: accuracy@1 of xx -> English retrieval, first stage and with MaxSim rerank."""
    from xsearch.search.fusion import fuse
    from xsearch.search.late_interaction import centre, maxsim, normalise

    encoder = None
    rows = []
    for lang in TATOEBA_LANGS:
        arrays = {}
        for side, suffix, kind in (("q", lang, "query"), ("d", "eng", "passage")):
            path = cache / f"tatoeba-{lang}-{side}.npz"
            if not path.is_file():
                if encoder is None:
                    from xsearch.embed.encoder import Encoder

                    encoder = Encoder.load(MODEL, threads=threads)
                texts = (TATOEBA / f"tatoeba.{lang}-eng.{suffix}").read_text(encoding="utf-8").splitlines()
                np.savez(path, **encode_texts(encoder, texts, kind))
            arrays[side] = dict(np.load(path))
        q, d = arrays["q"], arrays["d"]
        n = len(q["sent"])
        q_starts, d_starts = np.cumsum(q["count"]) - q["count"], np.cumsum(d["count"]) - d["count"]
        truth = np.arange(n)
        q_tok_mean, d_tok_mean = q["tok"].mean(axis=0), d["tok"].mean(axis=0)
        for centred in (False, True):
            qs, ds = q["sent"], d["sent"]
            if centred:
                qs, ds = normalise(qs - qs.mean(axis=0)), normalise(ds - ds.mean(axis=0))
            sims = qs @ ds.T
            cands = np.argsort(-sims, axis=1)[:, :candidates]
            first = np.take_along_axis(sims, cands, axis=1)
            d_tok = centre(d["tok"], d_tok_mean if centred else None)
            ms = np.stack([maxsim(centre(q["tok"][q_starts[i] : q_starts[i] + q["count"][i]],
                                         q_tok_mean if centred else None),
                                  [d_tok[d_starts[r] : d_starts[r] + d["count"][r]] for r in cands[i]])
                           for i in range(n)])
            cells = [lang, "centred" if centred else "plain", f"{(cands[:, 0] == truth).mean():.3f}"]
            for w in WEIGHTS:
                fused = np.stack([fuse(f, m, w) for f, m in zip(first, ms)])
                cells.append(f"{(cands[np.arange(n), fused.argmax(axis=1)] == truth).mean():.3f}")
            rows.append(cells)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=BIBLE, help="BEIR folder (bible-nt-7)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/xsearch-bench-rerank"), help="array cache")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for encoding")
    parser.add_argument("--candidates", type=int, default=100, help="first-stage candidates to rerank")
    parser.add_argument("--weight", type=float, default=0.75,
                        help="fusion weight for the latency and training-size runs")
    parser.add_argument("--train-sample", type=int, default=65_536, help="token vectors to train codecs on")
    parser.add_argument("--latency-queries", type=int, default=200, help="queries timed one by one")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the codec training sample")
    parser.add_argument("--sections", type=lambda v: set(v.split(",")), default=set(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (the first stage always runs)")
    parser.add_argument("--encode-only", action="store_true", help="fill the cache and stop")
    args = parser.parse_args(argv)
    if not (args.data / "corpus.jsonl").is_file():
        print(f"no data at {args.data}: nothing to measure")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data, doc_ids, query_ids = load_data(args.data)
    arrays = encode_all(data, doc_ids, query_ids, args.cache, args.threads)
    if args.encode_only:
        return
    bench = Bench(data, doc_ids, query_ids, arrays, args.candidates)
    n_tok = int(arrays["doc_count"].sum())
    content = int((~arrays["doc_special"] & ~arrays["doc_punct"]).sum())
    print(f"bible-nt-7: {len(doc_ids)} passages ({n_tok / len(doc_ids):.1f} tokens each with specials, "
          f"{content / len(doc_ids):.1f} content tokens), {len(query_ids)} queries, top {args.candidates} "
          f"candidates reranked, {os.cpu_count()} cores\n")

    # a) b) first stage
    stages = {"cosine": bench.first_stage(False), "centred cosine": bench.first_stage(True)}
    rows = []
    for name, (cands, scores) in stages.items():
        m, r = bench.measure(cands, scores)
        rows.append([name, f"{m:.4f}", f"{r:.4f}"])
    print("### First stage (sentence vectors)\n")
    print(table(["ranking", "mAP@20", "R@7"], rows) + "\n")

    # c) d) rerank, then token filters
    if "rerank" in args.sections:
        configs = [(stage, tok, tok == "centred", "all tokens") for stage in stages for tok in ("raw", "centred")]
        configs += [("centred cosine", "centred", True, f) for f in FILTERS if f != "all tokens"]
        configs += [("centred cosine", "raw", False, "content only")]
        rows = quality_rows(bench, stages, configs)
        print("### MaxSim rerank of the top candidates, z-score fused: mAP@20 / R@7 by MaxSim weight\n")
        print("fused = (1 - w) z(first stage) + w z(MaxSim) over each query's candidates; w = 1 is MaxSim alone. "
              "Centred tokens: minus the mean token vector of the chunk's language (for queries, of the query's "
              "language), computed over the kept passage tokens.\n")
        print(table(["ranking"] + [f"w={w}" for w in WEIGHTS], rows) + "\n")

    # e) codecs
    codecs = {}
    if "codecs" in args.sections or "latency" in args.sections:
        rows, codecs = codec_rows(bench, stages, WEIGHTS, args.train_sample, args.seed)
        per_chunk = (~arrays["doc_special"] & ~arrays["doc_punct"]).sum() / len(doc_ids)
        print(f"### Token codecs ({BEST[0]} + MaxSim on {BEST[1]} tokens, {BEST[3]}; {per_chunk:.1f} tokens/chunk; "
              f"trained on {args.train_sample:,} sampled tokens): mAP@20 by MaxSim weight\n")
        print("cos raw: mean reconstruction cosine of the stored vectors; cos centred: the same after subtracting "
              "the language mean, which is what MaxSim sees.\n")
        print(table(["codec", "B/token", "B/chunk", "cos raw", "cos centred"] + [f"w={w}" for w in WEIGHTS],
                    rows) + "\n")

        rows = []
        for name, codec in codecs.items():
            vectors = codec.bytes_per_token * per_chunk
            with_offsets = vectors + 4 * per_chunk  # (start, end) as uint16 pairs
            rows.append([name, f"{vectors:,.0f}", f"{with_offsets:,.0f}", f"{vectors / 1e3:.1f}",
                         f"{with_offsets / 1e3:.1f}", f"{len(codec.to_bytes()) / 1e3:,.0f}"])
        print(f"### Storage at {per_chunk:.1f} content tokens per chunk (bible-nt-7 passages of up to 4 verses)\n")
        print("Disk only: the rerank decodes just the fetched candidates (100 x 108 x 384 float32 = 17 MB "
              "working set per query); the codec itself is held in RAM.\n")
        print(table(["codec", "B/chunk", "B/chunk + offsets", "GB per 1M chunks", "GB per 1M + offsets",
                     "codec kB"], rows) + "\n")

    if "train-size" in args.sections:
        rows = train_size_rows(bench, stages, args.weight, args.seed)
        print(f"### pq m=48 by training sample size (all {int(keep_count(bench)):,} content tokens encoded), "
              f"mAP@20 at w={args.weight}\n")
        print(table(["training tokens", "cos centred", "mAP@20"], rows) + "\n")

    # f) latency
    if "latency" in args.sections:
        rows = latency_rows(bench, stages, codecs, args.weight, args.latency_queries)
        print(f"### Rerank latency per query: {args.candidates} candidates, {args.latency_queries} queries, "
              f"w={args.weight} (decode + centre + MaxSim + fusion; fetching not included)\n")
        print(table(["codec", "API", "BLAS threads", "decode p50 ms", "total p50 ms", "total p95 ms"], rows) + "\n")

    # highlights
    if "highlights" in args.sections:
        rows = highlight_rows(bench, stages, args.latency_queries)
        print(f"### Best-match cosine of query content tokens (for the highlight threshold): "
              f"{args.latency_queries} queries, their top-10 candidates\n")
        print(table(["tokens", "document", "query tokens", "p10", "p25", "p50", "p75", "p90"], rows) + "\n")

    # short texts
    if "tatoeba" in args.sections and TATOEBA.is_dir():
        rows = tatoeba_rows(args.cache, args.threads, args.candidates)
        print(f"### Short texts: Tatoeba xx -> eng accuracy@1 (1,000 sentences each), MaxSim on content tokens "
              f"of the top {args.candidates}, by MaxSim weight (centred: each side minus its own mean)\n")
        print(table(["lang", "vectors", "first stage"] + [f"w={w}" for w in WEIGHTS], rows))

if __name__ == "__main__":
    main()
