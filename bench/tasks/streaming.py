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
annotation is at its midpoint); CIDEr over all pairs. The decode-reduction factor is the uniform reference rate (1 Hz)
divided by the adaptive rate that reaches uniform's CIDEr at that rate.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.curves import REFERENCE_RATE, reduction_factor
from bench.data.loader import collate
from bench.evalsets.sets import Stream, StreamSet
from bench.tasks.captionmetrics import caption_scores, ptb_tokenize
from bench.tasks.common import EvalContext, metric


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


def run(model, ctx: EvalContext, s: StreamSet) -> list[dict]:
    if not getattr(model, "has_embedding", False):
        return []  # no embedding stream: selective decoding does not apply
    frames = ctx.frames
    streams = list(s.streams)
    query = ctx.queries["captioning"]
    with ctx.decoding(model) as decoding:
        if decoding is None:
            return []  # no way from an embedding to text: nothing to decode selectively
        embs = [window_embeddings(model, s, frames, ctx, query) for s in streams]
        local_variances = [local_variance(emb) for emb, _ in embs]
        # first plan every decode of every strategy and rate, then decode each distinct one once, batched
        vectors: dict[tuple, np.ndarray] = {}
        plans: list[tuple[str, float, int, np.ndarray, list[tuple]]] = []  # strategy, rate, stream, times, keys
        for rate in ctx.eval.stream_rates:
            for si, (st, (emb, centres)) in enumerate(zip(streams, embs)):
                n = max(1, int(round(rate * (len(emb) + frames - 1) / st.fps)))
                # uniform: n decodes at evenly spaced times; midpoint window or the interval's average
                edges = np.linspace(0, len(emb), n + 1).round().astype(int)
                segs_u = [(a, max(b, a + 1)) for a, b in zip(edges[:-1], edges[1:])]
                for name, segs in (("uniform", segs_u), ("adaptive", chain_segments(emb, n))):
                    mids = [(a + b - 1) // 2 for a, b in segs]
                    for pooled in (False, True):
                        keys = [(si, "avg", a, b) if pooled else (si, "mid", m) for (a, b), m in zip(segs, mids)]
                        for k, (a, b), m in zip(keys, segs, mids):
                            vectors.setdefault(k, emb[a:b].mean(0) if pooled else emb[m])
                        plans.append((f"{name}_pooled" if pooled else name, rate, si, centres[mids], keys))
                # online: pick the threshold that gives n decodes on this stream (bisection on a quantile scale)
                variance = local_variances[si]
                lo, hi, picks = 0.0, 1.0, [0]
                for _ in range(12):
                    q = (lo + hi) / 2
                    picks = online_decodes(variance, float(np.quantile(variance, q)))
                    lo, hi = (q, hi) if len(picks) > n else (lo, q)
                keys = [(si, "mid", p) for p in picks]
                for k, p in zip(keys, picks):
                    vectors.setdefault(k, emb[p])
                plans.append(("online", rate, si, centres[picks], keys))
        order = list(vectors)
        texts_of: dict[tuple, str] = {}
        for a in range(0, len(order), 256):
            chunk = order[a:a + 256]
            v = torch.tensor(np.stack([vectors[k] for k in chunk]), dtype=torch.float32, device=ctx.device)
            texts_of.update(zip(chunk, decoding.decode(v, ctx.decode_tokens)))
    curves: dict[str, dict[float, list]] = {}
    for strategy, rate, si, times, keys in plans:
        pairs = match_nearest(streams[si], times, [texts_of[k] for k in keys])
        curves.setdefault(strategy, {}).setdefault(rate, []).extend(pairs)

    everything = [t for c in curves.values() for pairs in c.values() for cand, refs in pairs for t in (cand, *refs)]
    tokenized = ptb_tokenize(everything)
    recs, cider = [], {}
    for strategy, by_rate in curves.items():
        for rate, pairs in by_rate.items():
            cands = {str(i): c for i, (c, _) in enumerate(pairs)}
            refs = {str(i): r for i, (_, r) in enumerate(pairs)}
            value = 100 * caption_scores(cands, refs, ("CIDEr",), tokenized)["CIDEr"]
            cider.setdefault(strategy, {})[rate] = value
            recs.append(metric("streaming", f"CIDEr_{strategy}", value, None, rate_hz=rate, n=len(pairs)))
    for pooled in ("", "_pooled"):
        factor = reduction_factor(cider[f"uniform{pooled}"], cider[f"adaptive{pooled}"])
        recs.append(metric("streaming", f"reduction_factor{pooled}", float("nan") if factor is None else factor, 1.0,
                           reference_rate_hz=REFERENCE_RATE))
    return recs
