"""Open-vocabulary classification: each clip's class among every class of the set, named in text.

Each class name is placed in the set's prompt templates ("a video of {}."), ensembled one of two ways
(eval.prompt_ensemble): `scores`, each template's scores averaged (the protocol of the committed results), or
`embeddings`, CLIP_benchmark's and open_clip's zero-shot classifier: per class, the mean of its templates'
unit-norm text embeddings, renormalised, scored once against the clip's embedding (a model without a text
embedding, the VLM, falls back to scores). VL-JEPA scores by cosine to the Y-encoded names (each encoded once,
cached); the VLM by length-normalised log-likelihood (the paper's protocol). A video read from files may be
scored in several views (eval.views: temporal windows x spatial crops, V-JEPA 2 / VideoMAE style): its scores
are the mean of its views' raw scores, as the protocol returns them (no softmax: a VLM's log-likelihoods and a
cosine are averaged alike). Beside chance, top-1 and top-5 carry a no-vision prior: the score of the best
constant answer, the k most frequent classes of the set, which a model that learnt the label distribution and
nothing of the clips could give. On a balanced set it is chance; on a skewed one, the bar a model must clear."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bench.eval.sets.kinds import ClassificationSet, Subset, Visuals, views_of
from bench.eval.tasks.common import EvalContext, UnreadableClip, clip_batches, item_se, metric, topk_hits


def prior_hits(labels: torch.Tensor, classes: int, k: int) -> torch.Tensor:
    """Per item, whether its label is among the set's k most frequent classes (ties: the lower class index
    first). Counted over the whole set, the item included: a leave-one-out count would turn every tie
    against the item's own class and score a balanced set at 0, below chance."""
    counts = torch.bincount(labels, minlength=classes)
    top = sorted(range(classes), key=lambda c: (-int(counts[c]), c))[:k]
    return torch.isin(labels, torch.tensor(top, dtype=labels.dtype))


def ensemble_of(model, asked: str) -> str:
    """The prompt ensemble the model gets: embeddings where asked and the model has both a clip embedding (embed)
    and a text embedding (embed_text); else scores (the VLM: a log-likelihood per text, nothing to average)."""
    if asked == "embeddings" and getattr(model, "has_embedding", False) and hasattr(model, "embed_text"):
        return "embeddings"
    return "scores"


def class_embeddings(model, names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(K, D) unit-norm: per class, the mean over templates of its texts' embeddings, each normalised first (so
    no template outweighs another), and the mean renormalised (so every class scores as a cosine)."""
    per_template = torch.stack([F.normalize(model.embed_text([t.format(n) for n in names]).float().cpu(), dim=-1)
                                for t in templates])
    return F.normalize(per_template.mean(0), dim=-1)


def batch_scores(model, batch: dict, names: Sequence[str], templates: Sequence[str],
                 classifier: torch.Tensor | None) -> torch.Tensor:
    """(B, K) one batch's scores: its clips' embeddings against the classifier (embeddings), or each template's
    scores averaged (scores)."""
    if classifier is not None:
        return model.embed(batch).float().cpu() @ classifier.T
    return torch.stack([model.score(batch, [t.format(n) for n in names]).float().cpu() for t in templates]).mean(0)


def check_view_readable(ctx: EvalContext, view: Visuals) -> None:
    """With the feature cache, a clip that a view cannot decode (its window past a truncated file's end) is left
    out of the set as an unreadable clip of the set is (eval.on_error): the set's own are known before the task
    runs (bench/eval/tasks/unreadable.py), a view's only once its cache is built."""
    lookup = getattr(ctx.features, "unreadable", None)
    root, keep = (view.parent, set(view.keep)) if isinstance(view, Subset) else (view, None)
    viewed = getattr(root, "viewed", None)
    if lookup is None or viewed is None:
        return
    bad = {i: error for i, error in lookup(root).items() if keep is None or i in keep}
    if bad:
        raise UnreadableClip(viewed, min(bad), bad[min(bad)])


def class_scores(model, ctx: EvalContext, s: ClassificationSet) -> tuple[torch.Tensor, str, int]:
    """((items, classes) scores, the ensemble used, the number of views averaged): each view's raw scores summed
    and divided by the views (one view: the scores themselves, bit for bit)."""
    names, n = list(s.class_names), len(s.labels)
    ensemble = ensemble_of(model, ctx.eval.prompt_ensemble)
    classifier = class_embeddings(model, names, s.templates) if ensemble == "embeddings" else None
    views = views_of(s.visuals, *ctx.eval.view_counts())
    for view in views:  # every view's broken clips before any is scored
        check_view_readable(ctx, view)
    total = torch.zeros(n, len(names))
    for view in views:
        for sl, batch in clip_batches(ctx, view, range(n), ctx.queries["classification"]):
            total[sl] += batch_scores(model, batch, names, s.templates, classifier)
    return total / len(views), ensemble, len(views)


def run(model, ctx: EvalContext, s: ClassificationSet) -> list[dict]:
    answers = torch.tensor(list(s.labels))
    scores, ensemble, views = class_scores(model, ctx, s)
    K = scores.shape[1]
    top = scores.topk(min(5, K), dim=1).indices
    ctx.keep("classification", s, [{"item": i, "label": int(answers[i]), "top5": top[i].tolist()}
                                   for i in range(len(answers))])
    # set keys only: a run on the defaults keeps the records it always had
    extra = {**({"ensemble": ensemble} if ctx.eval.prompt_ensemble != "scores" else {}),
             **({"views": views} if ctx.eval.view_counts() != (1, 1) else {})}
    return [metric("classification", f"top{k}", 100 * hits.mean(), 100 * min(k, K) / K, n=len(answers),
                   prior=100 * float(prior_hits(answers, K, k).float().mean()), se=100 * item_se(hits.numpy()),
                   hits=hits.numpy() > 0, **extra)
            for k, hits in ((k, topk_hits(scores, answers, k)) for k in (1, 5))]
