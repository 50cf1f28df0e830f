"""Text-to-video and video-to-text retrieval: R@1, R@5, R@10 and median rank.

Similarities come from model.score (VL-JEPA: cosine of predicted and Y-encoded embeddings; the VLM:
the log-likelihood of each text given each video). They are computed in chunks of videos and never
held whole: a first pass scores each video with its own text (the diagonal), then each chunk of
rows updates, for every pair, how many competitors beat the true match. Memory stays at one chunk
of rows however large the gallery. A tie counts in the match's favour."""

from __future__ import annotations

import numpy as np
import torch

from bench.data.items import retrieval_pairs
from bench.tasks.common import EvalContext, clip_batches, metric


def ranks_from_chunks(chunks, diagonal: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """chunks: iterable of (first row, S[rows, :]) of a similarity matrix S (videos x texts) whose true
    pairs are the diagonal. Returns (video-to-text ranks, text-to-video ranks), 1 = best."""
    n = len(diagonal)
    v2t = np.zeros(n, dtype=np.int64)
    t2v = np.ones(n, dtype=np.int64)
    for first, rows in chunks:
        idx = torch.arange(first, first + len(rows))
        v2t[idx.numpy()] = 1 + (rows > diagonal[idx, None]).sum(1).numpy()
        t2v += (rows > diagonal[None, :]).sum(0).numpy()
    return v2t, t2v


def recall_metrics(task: str, direction: str, ranks: np.ndarray) -> list[dict]:
    n = len(ranks)
    out = [metric(task, f"{direction}_R@{k}", 100 * float((ranks <= k).mean()), 100 * min(k, n) / n, n=n)
           for k in (1, 5, 10)]
    out.append(metric(task, f"{direction}_median_rank", float(np.median(ranks)), (n + 1) / 2, n=n))
    return out


def run(model, ctx: EvalContext) -> list[dict]:
    pairs = retrieval_pairs(ctx.world, ctx.split, ctx.size)
    videos, texts = [i for i, _ in pairs], [t for _, t in pairs]
    query = ctx.queries["retrieval"]
    diagonal = torch.zeros(len(pairs))
    for sl, batch in clip_batches(ctx, videos, query):
        diagonal[sl] = model.score(batch, [[t] for t in texts[sl]]).float().cpu()[:, 0]

    def chunks():
        for sl, batch in clip_batches(ctx, videos, query):
            yield sl.start, model.score(batch, texts).float().cpu()

    v2t, t2v = ranks_from_chunks(chunks(), diagonal)
    return recall_metrics("retrieval", "t2v", t2v) + recall_metrics("retrieval", "v2t", v2t)
