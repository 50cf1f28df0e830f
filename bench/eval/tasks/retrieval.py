"""Text-to-video and video-to-text retrieval: R@1, R@5, R@10 and median rank.

Similarities come from model.score (VL-JEPA: cosine of predicted and Y-encoded embeddings; the VLM:
the log-likelihood of each text given each video). A video may have several texts (MSVD, DiDeMo): every
text is a query (t2v), and a video's v2t rank is that of its best-ranked text. Similarities are computed
in chunks of videos and never held whole: a first pass scores each text with its own video (the true
pairs), then each chunk of rows updates, for every pair, how many competitors beat or tie the true match.
Memory stays at one chunk of rows however large the gallery. A tie counts against the match: a model that
scores everything alike (collapsed) ranks every match last, not first."""

from __future__ import annotations

import numpy as np
import torch

from bench.eval.sets.kinds import RetrievalSet
from bench.eval.tasks.common import EvalContext, clip_batches, item_se, metric


def ranks_from_chunks(chunks, true_scores: torch.Tensor, text_video=None) -> tuple[np.ndarray, np.ndarray]:
    """chunks: iterable of (first row, S[rows, :]) of a similarity matrix S (videos x texts); text j describes
    video text_video[j] (default: video j) and true_scores[j] = S[text_video[j], j]. Returns (video-to-text
    ranks, text-to-video ranks), 1 = best."""
    n_texts = len(true_scores)
    owner = torch.arange(n_texts) if text_video is None else torch.as_tensor(list(text_video))
    n_videos = int(owner.max()) + 1 if n_texts else 0
    # a video's best text: ranking by the highest true score among its texts gives its best rank
    best = torch.full((n_videos,), float("-inf"), dtype=true_scores.dtype).scatter_reduce(
        0, owner, true_scores, reduce="amax")
    v2t = np.zeros(n_videos, dtype=np.int64)
    t2v = np.ones(n_texts, dtype=np.int64)
    for first, rows in chunks:
        idx = torch.arange(first, first + len(rows))
        own = owner[None, :] == idx[:, None]  # [rows, texts]: a video's own texts are never its competitors
        v2t[idx.numpy()] = 1 + ((rows >= best[idx, None]) & ~own).sum(1).numpy()
        t2v += ((rows >= true_scores[None, :]) & ~own).sum(0).numpy()
    return v2t, t2v


def recall_metrics(task: str, direction: str, ranks: np.ndarray, gallery: int) -> list[dict]:
    n = len(ranks)
    out = [metric(task, f"{direction}_R@{k}", 100 * float((ranks <= k).mean()), 100 * min(k, gallery) / gallery, n=n,
                  se=100 * item_se(ranks <= k), hits=ranks <= k) for k in (1, 5, 10)]
    out.append(metric(task, f"{direction}_median_rank", float(np.median(ranks)), (gallery + 1) / 2, n=n))
    return out


def run(model, ctx: EvalContext, s: RetrievalSet) -> list[dict]:
    texts, owner = list(s.texts), list(s.text_video)
    query = ctx.queries["retrieval"]
    true_scores = torch.zeros(len(texts))
    for sl, batch in clip_batches(ctx, s.visuals, owner, query):
        true_scores[sl] = model.score(batch, [[t] for t in texts[sl]]).float().cpu()[:, 0]

    def chunks():
        for sl, batch in clip_batches(ctx, s.visuals, range(s.n_videos), query):
            yield sl.start, model.score(batch, texts).float().cpu()

    v2t, t2v = ranks_from_chunks(chunks(), true_scores, owner)
    return recall_metrics("retrieval", "t2v", t2v, s.n_videos) + recall_metrics("retrieval", "v2t", v2t, len(texts))
