"""Selective decoding on long streams (the paper's section 4.5): a long video and time-stamped annotations.

The embedding stream: embed() over sliding windows of the clip length (stride one frame of the stream as
read, e.g. at a dataset's sample_fps), computed as the frames are decoded, so a long video is never held
whole. Strategies,
each swept over decode rates (decodes per second):
- uniform: decode at fixed intervals;
- adaptive: Ward agglomerative clustering with a temporal chain connectivity (scikit-learn) splits the
  stream into N = rate x duration segments; one decode per segment at its midpoint, from the midpoint
  embedding or the segment's average ("pooled");
- online: smooth the stream, decode when the variance over a local window passes a threshold (the
  threshold is tuned per rate so the decode count matches).
Scoring as in the paper: each annotation is matched to the decoded output nearest in time (a segment's
annotation is at its midpoint); CIDEr over all pairs, one curve of CIDEr against rate per strategy.

Reading the curves (bench/eval/curves.py): the decode-reduction factor is the uniform reference rate (1 Hz)
divided by the rate at which adaptive reaches uniform's CIDEr at that rate, both curves first fitted
monotone; its control is uniform read against itself (above 1 only where uniform has saturated below the
reference rate). The gap is adaptive's CIDEr minus uniform's, averaged over every swept rate (log axis).
Each comes with a 95% interval from a bootstrap over the streams (eval.stream_bootstrap resamples; each
annotation's CIDEr keeps the whole set's document frequencies), so a run says how sure its own reading is.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.data.loader import collate
from bench.eval.curves import REFERENCE_RATE, mean_gap, monotone, reduction_factor
from bench.eval.sets.kinds import Stream, StreamSet
from bench.eval.tasks.captionmetrics import cider_items, ptb_tokenize
from bench.eval.tasks.common import EvalContext, metric


def window_embeddings(model, stream: Stream, frames: int, ctx: EvalContext, query: str) -> tuple[np.ndarray, np.ndarray]:
    """(W, D) embeddings of every window of `frames` frames (stride 1) and each window's centre time (s),
    embedded ctx.eval.batch windows at a time as the stream's frames arrive."""
    out, window, starts, pending = [], [], [], []

    def flush():
        batch = collate([{"video": w, "query": query} for w in pending])
        batch["video"] = batch["video"].to(ctx.device)
        out.append(model.embed(batch).float().cpu())
        pending.clear()

    for t, frame in enumerate(stream.frames()):
        window.append(frame)
        if len(window) > frames:
            window.pop(0)
        if len(window) == frames:
            starts.append(t - frames + 1)
            pending.append(np.stack(window))
            if len(pending) == ctx.eval.batch:
                flush()
    if pending:
        flush()
    if not out:
        raise ValueError(f"a stream shorter than one clip ({frames} frames)")
    centres = (np.array(starts) + frames / 2) / stream.fps
    return torch.cat(out).numpy(), centres


def chain_segments(emb: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Ward clustering under a chain connectivity: n contiguous segments [start, end) of the stream."""
    from scipy.sparse import diags
    from sklearn.cluster import AgglomerativeClustering

    n = max(1, min(n, len(emb)))
    if n == 1:
        return [(0, len(emb))]
    chain = diags([np.ones(len(emb) - 1), np.ones(len(emb) - 1)], [-1, 1])
    labels = AgglomerativeClustering(n_clusters=n, linkage="ward", connectivity=chain).fit_predict(emb)
    cuts = [0, *[i for i in range(1, len(labels)) if labels[i] != labels[i - 1]], len(labels)]
    return list(zip(cuts[:-1], cuts[1:]))


def local_variance(emb: np.ndarray, smooth: int = 3, window: int = 4) -> np.ndarray:
    """Per window index i >= window: the total variance of the last `window` + 1 smoothed embeddings
    (a moving average of `smooth` windows); 0 before."""
    kernel = np.ones(smooth) / smooth
    sm = np.apply_along_axis(lambda col: np.convolve(col, kernel, mode="same"), 0, emb)
    var = np.zeros(len(sm))
    for i in range(window, len(sm)):
        var[i] = sm[i - window:i + 1].var(0).sum()
    return var


def online_decodes(variance: np.ndarray, threshold: float, window: int = 4) -> list[int]:
    """Window indices at which the online variant decodes: the first, then whenever the local variance
    passes the threshold (at most once per window)."""
    picks, last = [0], 0
    for i in range(window, len(variance)):
        if i - last >= window and variance[i] > threshold:
            picks.append(i)
            last = i
    return picks


def match_nearest(stream: Stream, decode_times: np.ndarray, texts: list[str]) -> list[tuple[str, list[str]]]:
    """(decoded text, references) for every annotation: the decode nearest to it in time."""
    return [(texts[int(np.abs(decode_times - t).argmin())], list(refs)) for t, refs in stream.annotations]


def plan_decodes(emb: np.ndarray, centres: np.ndarray, n: int, si: int, strategies: list[str], variance: np.ndarray,
                 vectors: dict[tuple, np.ndarray]) -> list[tuple[str, np.ndarray, list[tuple]]]:
    """(strategy, decode times, decode keys) of one stream at n decodes; the vectors to decode are added to
    `vectors` under their keys (a key names a window or an interval of one stream: shared plans decode once)."""
    plans = []
    # uniform: n decodes at evenly spaced times; adaptive: n Ward segments; the midpoint window or the average
    edges = np.linspace(0, len(emb), n + 1).round().astype(int)
    segments = {"uniform": lambda: [(a, max(b, a + 1)) for a, b in zip(edges[:-1], edges[1:])],
                "adaptive": lambda: chain_segments(emb, n)}
    for name, make in segments.items():
        wanted = [p for p in (False, True) if (f"{name}_pooled" if p else name) in strategies]
        segs = make() if wanted else []
        mids = [(a + b - 1) // 2 for a, b in segs]
        for pooled in wanted:
            keys = [(si, "avg", a, b) if pooled else (si, "mid", m) for (a, b), m in zip(segs, mids)]
            for k, (a, b), m in zip(keys, segs, mids):
                vectors.setdefault(k, emb[a:b].mean(0) if pooled else emb[m])
            plans.append((f"{name}_pooled" if pooled else name, centres[mids], keys))
    if "online" in strategies:  # the threshold that gives n decodes on this stream (bisection on a quantile scale)
        lo, hi, picks = 0.0, 1.0, [0]
        for _ in range(12):
            q = (lo + hi) / 2
            picks = online_decodes(variance, float(np.quantile(variance, q)))
            lo, hi = (q, hi) if len(picks) > n else (lo, q)
        keys = [(si, "mid", p) for p in picks]
        for k, p in zip(keys, picks):
            vectors.setdefault(k, emb[p])
        plans.append(("online", centres[picks], keys))
    return plans


def readings(curves: dict[str, dict[float, float]], pooled: str) -> dict[str, float]:
    """factor (adaptive vs uniform), control (uniform vs itself) and gap of one kind ('' or '_pooled')."""
    uniform, adaptive = monotone(curves[f"uniform{pooled}"]), monotone(curves[f"adaptive{pooled}"])
    factor = reduction_factor(uniform, adaptive)
    return {"factor": 0.0 if factor is None else factor,  # never reached within the swept rates: no saving
            "control": reduction_factor(uniform, uniform) or 0.0,
            "gap": mean_gap(curves[f"uniform{pooled}"], curves[f"adaptive{pooled}"])}


def run(model, ctx: EvalContext, s: StreamSet) -> list[dict]:
    if not getattr(model, "has_embedding", False):
        return []  # no embedding stream: selective decoding does not apply
    streams = list(s.streams)
    with ctx.decoding(model) as decoding:
        if decoding is None:
            return []  # no way from an embedding to text: nothing to decode selectively
        plans, texts_of = decode_plans(model, ctx, streams, decoding)
    columns, sums, counts = stream_scores(streams, plans, texts_of)
    return curve_records(ctx, streams, columns, sums, counts)


def decode_plans(model, ctx: EvalContext, streams: list, decoding) -> tuple[list[tuple], dict[tuple, str]]:
    """Every decode of every strategy and rate planned first, then each distinct one decoded once, batched:
    the plans (strategy, rate, stream, times, keys) and each key's text."""
    frames, query, strategies = ctx.frames, ctx.queries["captioning"], list(ctx.eval.stream_strategies)
    embs = [window_embeddings(model, s, frames, ctx, query) for s in streams]
    vectors: dict[tuple, np.ndarray] = {}
    plans: list[tuple[str, float, int, np.ndarray, list[tuple]]] = []  # strategy, rate, stream, times, keys
    for si, (st, (emb, centres)) in enumerate(zip(streams, embs)):
        variance = local_variance(emb) if "online" in strategies else np.zeros(len(emb))
        for rate in ctx.eval.stream_rates:
            n = max(1, int(round(rate * (len(emb) + frames - 1) / st.fps)))
            plans += [(name, rate, si, times, keys)
                      for name, times, keys in plan_decodes(emb, centres, n, si, strategies, variance, vectors)]
    order = list(vectors)
    texts_of: dict[tuple, str] = {}
    for a in range(0, len(order), 256):
        chunk = order[a:a + 256]
        v = torch.tensor(np.stack([vectors[k] for k in chunk]), dtype=torch.float32, device=ctx.device)
        texts_of.update(zip(chunk, decoding.decode(v, ctx.decode_tokens)))
    return plans, texts_of


def stream_scores(streams: list, plans: list[tuple], texts_of: dict[tuple, str]):
    """One curve per (strategy, rate) column; each annotation's CIDEr summed per stream (for the bootstrap over
    streams): (columns, sums[stream, column], annotations per stream)."""
    columns = sorted({(strategy, rate) for strategy, rate, *_ in plans})
    col = {c: i for i, c in enumerate(columns)}
    pairs_of: dict[tuple, list] = {c: [] for c in columns}
    stream_of: dict[tuple, list[int]] = {c: [] for c in columns}
    for strategy, rate, si, times, keys in plans:
        pairs = match_nearest(streams[si], times, [texts_of[k] for k in keys])
        pairs_of[(strategy, rate)] += pairs
        stream_of[(strategy, rate)] += [si] * len(pairs)
    everything = [t for pairs in pairs_of.values() for cand, refs in pairs for t in (cand, *refs)]
    tokenized = ptb_tokenize(everything)
    sums = np.zeros((len(streams), len(columns)))  # per stream: its annotations' summed CIDEr, per curve
    counts = np.zeros(len(streams))
    for c, pairs in pairs_of.items():
        scores = cider_items({str(i): p[0] for i, p in enumerate(pairs)}, {str(i): p[1] for i, p in enumerate(pairs)},
                             tokenized)
        np.add.at(sums[:, col[c]], stream_of[c], scores)
    np.add.at(counts, stream_of[columns[0]], 1)  # every curve scores every annotation once
    return columns, sums, counts


def curve_records(ctx: EvalContext, streams: list, columns: list[tuple], sums: np.ndarray, counts: np.ndarray) -> list[dict]:
    """The curves' records, and the reduction factor and gap of each uniform/adaptive pair with bootstrap
    intervals over streams."""
    strategies = list(ctx.eval.stream_strategies)

    def curves_of(weights: np.ndarray) -> dict[str, dict[float, float]]:
        values = 100 * (weights @ sums) / (weights @ counts)
        out: dict[str, dict[float, float]] = {}
        for (strategy, rate), v in zip(columns, values):
            out.setdefault(strategy, {})[rate] = float(v)
        return out

    curves = curves_of(np.ones(len(streams)))
    recs = [metric("streaming", f"CIDEr_{strategy}", value, None, rate_hz=rate, n=int(counts.sum()))
            for strategy, by_rate in curves.items() for rate, value in by_rate.items()]
    kinds = [p for p in ("", "_pooled") if {f"uniform{p}", f"adaptive{p}"} <= set(strategies)]
    rng = np.random.default_rng(0)  # the same resamples in every run: seeds differ only in their models
    draws = rng.multinomial(len(streams), np.full(len(streams), 1 / len(streams)), size=ctx.eval.stream_bootstrap)
    for pooled in kinds:
        point = readings(curves, pooled)
        boot = [readings(curves_of(w), pooled) for w in draws]
        for name, chance in (("factor", 1.0), ("gap", 0.0)):
            lo, hi = (np.percentile([b[name] for b in boot], [2.5, 97.5]) if boot else (float("nan"),) * 2)
            label = "reduction_factor" if name == "factor" else "cider_gap"
            recs.append(metric("streaming", f"{label}{pooled}", point[name], chance, lo=float(lo), hi=float(hi),
                               reference_rate_hz=REFERENCE_RATE, n=len(streams)))
        recs.append(metric("streaming", f"reduction_factor_control{pooled}", point["control"], 1.0,
                           reference_rate_hz=REFERENCE_RATE, n=len(streams)))
    return recs
