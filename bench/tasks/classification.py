"""Open-vocabulary classification: the actor's action among every class, named in text.

Each class name is placed in several prompt templates and the scores are averaged over templates
(as CLIP benchmarks average prompt ensembles). VL-JEPA scores by cosine to the Y-encoded names
(each encoded once, cached); the VLM by length-normalised log-likelihood (the paper's protocol)."""

from __future__ import annotations

import torch

from bench.data.items import classification_items
from bench.data.text import CLASS_PROMPTS
from bench.tasks.common import EvalContext, clip_batches, metric, topk_hits


def run(model, ctx: EvalContext) -> list[dict]:
    items = classification_items(ctx.world, ctx.split, ctx.size)
    names = list(items[0].candidates)
    answers = torch.tensor([it.answer for it in items])
    scores = torch.zeros(len(items), len(names))
    for sl, batch in clip_batches(ctx, [it.index for it in items], ctx.queries["classification"]):
        per_template = [model.score(batch, [t.format(n) for n in names]).float().cpu() for t in CLASS_PROMPTS]
        scores[sl] = torch.stack(per_template).mean(0)
    K = len(names)
    return [metric("classification", "top1", 100 * topk_hits(scores, answers, 1).mean(), 100 / K, n=len(items)),
            metric("classification", "top5", 100 * topk_hits(scores, answers, 5).mean(), 100 * min(5, K) / K, n=len(items))]
