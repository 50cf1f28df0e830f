"""Open-vocabulary classification: each clip's class among every class of the set, named in text.

Each class name is placed in the set's prompt templates and the scores are averaged over templates
(as CLIP benchmarks average prompt ensembles). VL-JEPA scores by cosine to the Y-encoded names
(each encoded once, cached); the VLM by length-normalised log-likelihood (the paper's protocol). Beside
chance, top-1 and top-5 carry a no-vision prior: the score of the best constant answer, the k most
frequent classes of the set, which a model that learnt the label distribution and nothing of the clips
could give. On a balanced set it is chance; on a skewed one, the bar a model must clear."""

from __future__ import annotations

import torch

from bench.eval.sets.kinds import ClassificationSet
from bench.eval.tasks.common import EvalContext, clip_batches, item_se, metric, topk_hits


def prior_hits(labels: torch.Tensor, classes: int, k: int) -> torch.Tensor:
    """Per item, whether its label is among the set's k most frequent classes (ties: the lower class index
    first). Counted over the whole set, the item included: a leave-one-out count would turn every tie
    against the item's own class and score a balanced set at 0, below chance."""
    counts = torch.bincount(labels, minlength=classes)
    top = sorted(range(classes), key=lambda c: (-int(counts[c]), c))[:k]
    return torch.isin(labels, torch.tensor(top, dtype=labels.dtype))


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
    return [metric("classification", f"top{k}", 100 * hits.mean(), 100 * min(k, K) / K, n=len(answers),
                   prior=100 * float(prior_hits(answers, K, k).float().mean()), se=100 * item_se(hits.numpy()),
                   hits=hits.numpy() > 0)
            for k, hits in ((k, topk_hits(scores, answers, k)) for k in (1, 5))]
