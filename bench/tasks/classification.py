"""Open-vocabulary classification: each clip's class among every class of the set, named in text.

Each class name is placed in the set's prompt templates and the scores are averaged over templates
(as CLIP benchmarks average prompt ensembles). VL-JEPA scores by cosine to the Y-encoded names
(each encoded once, cached); the VLM by length-normalised log-likelihood (the paper's protocol). Beside
chance, top-1 and top-5 carry a no-vision prior: the most frequent classes of the other items of the set
(leave-one-out), the score of a model that learnt the label distribution and nothing of the clips."""

from __future__ import annotations

import torch

from bench.evalsets.sets import ClassificationSet
from bench.tasks.common import EvalContext, clip_batches, metric, topk_hits


def prior_hits(labels: torch.Tensor, classes: int, k: int) -> torch.Tensor:
    """Per item, whether its label is among the k classes most frequent among the other items (ties: the
    lower class index first)."""
    counts = torch.bincount(labels, minlength=classes)
    hits = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():  # items of one label share their leave-one-out counts
        others = counts.clone()
        others[label] -= 1
        order = sorted(range(classes), key=lambda c: (-int(others[c]), c))[:k]
        hits[labels == label] = int(label) in order
    return hits


def run(model, ctx: EvalContext, s: ClassificationSet) -> list[dict]:
    names = list(s.class_names)
    answers = torch.tensor(list(s.labels))
    scores = torch.zeros(len(answers), len(names))
    for sl, batch in clip_batches(ctx, s.visuals, range(len(answers)), ctx.queries["classification"]):
        per_template = [model.score(batch, [t.format(n) for n in names]).float().cpu() for t in s.templates]
        scores[sl] = torch.stack(per_template).mean(0)
    K = len(names)
    top = scores.topk(min(5, K), dim=1).indices
    ctx.keep("classification", s, [{"item": i, "label": int(answers[i]), "top5": top[i].tolist()}
                                   for i in range(len(answers))])
    return [metric("classification", "top1", 100 * topk_hits(scores, answers, 1).mean(), 100 / K, n=len(answers),
                   prior=100 * float(prior_hits(answers, K, 1).float().mean())),
            metric("classification", "top5", 100 * topk_hits(scores, answers, 5).mean(), 100 * min(5, K) / K,
                   n=len(answers), prior=100 * float(prior_hits(answers, K, 5).float().mean()))]
