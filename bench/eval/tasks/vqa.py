"""Discriminative VQA: choose the answer among candidates; accuracy overall and per question type
(shapes world: colour, shape, counting, existence with POPE-like adversarial negatives, motion; on disk:
the items' own "kind", e.g. POPE's adversarial / popular / random).

Beside chance (1/candidates), every accuracy carries a no-vision prior: answering each item, without
looking at the clip, with its candidate that is most often the right answer among the items of its
question type: the best constant answer per type, what a model that learnt the answer distribution and
nothing of the clips scores. A model has learnt something from the clip only where it beats the prior,
which on unbalanced answers is far above chance (and on balanced ones is chance: no count leaves the
item out, which would turn every tie against its own answer).

The headline `accuracy` averages the question types the X-encoder can answer: eval.vqa_exclude names
types left out of it (the tiny preset's random encoder does not see shape: bench.tools.probe); `accuracy_all`
keeps every type, and each type has its own `accuracy_<type>`."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from bench.eval.sets.kinds import ChoiceSet
from bench.eval.tasks.common import EvalContext, clip_batches, item_se, metric


def prior_choices(s: ChoiceSet) -> list[int]:
    """Each item's no-vision answer: its candidate most often the right answer among the items of its kind
    (the first such candidate on ties)."""
    answer = [s.candidates[j][s.answers[j]] for j in range(len(s.candidates))]
    counts: dict[str, Counter] = defaultdict(Counter)
    for j, a in enumerate(answer):
        counts[s.kinds[j]][a] += 1
    return [max(range(len(cands)), key=lambda c: (counts[s.kinds[j]][cands[c]], -c)) for j, cands in enumerate(s.candidates)]


def choice_accuracy(model, ctx: EvalContext, s: ChoiceSet, default_query: str = "", task: str = "vqa") -> dict[str, list]:
    """Score items grouped by their number of candidates; per kind, a list of (correct, 1/K, prior correct, item).
    An item without a question is asked default_query. Each item's choice is kept (ctx.keep)."""
    prior = prior_choices(s)
    by_k: dict[int, list[int]] = defaultdict(list)
    for j, cands in enumerate(s.candidates):
        by_k[len(cands)].append(j)
    out: dict[str, list] = defaultdict(list)
    chosen: dict[int, int] = {}
    for group in by_k.values():
        questions = [s.questions[j] or default_query for j in group]
        for sl, batch in clip_batches(ctx, s.visuals, [s.visual[j] for j in group], questions):
            part = group[sl]
            scores = model.score(batch, [list(s.candidates[j]) for j in part]).float().cpu()
            for j, row in zip(part, scores):
                chosen[j] = int(row.argmax())
                out[s.kinds[j]].append((chosen[j] == s.answers[j], 1 / len(s.candidates[j]), prior[j] == s.answers[j], j))
    ctx.keep(task, s, [{"item": j, "kind": s.kinds[j], "answer": s.answers[j], "chosen": chosen[j]} for j in sorted(chosen)])
    return out


def _accuracy(task: str, name: str, rows: list, hits: bool = True) -> dict:
    """rows: (correct, chance, prior correct, item) per item; hits: keep each item's outcome, in item order."""
    extra = {"hits": [r[0] for r in sorted(rows, key=lambda r: r[3])]} if hits else {}
    return metric(task, name, 100 * np.mean([r[0] for r in rows]), 100 * np.mean([r[1] for r in rows]), n=len(rows),
                  prior=100 * float(np.mean([r[2] for r in rows])), se=100 * item_se([r[0] for r in rows]), **extra)


def summarise(task: str, results: dict[str, list], per_kind: bool = True, exclude: Sequence[str] = ()) -> list[dict]:
    """`accuracy` over the kinds not excluded; with exclusions, `accuracy_all` over every kind too."""
    every = [r for rows in results.values() for r in rows]
    answerable = [r for kind, rows in results.items() if kind not in exclude for r in rows]
    recs = [_accuracy(task, "accuracy", answerable or every)]
    if answerable and len(answerable) < len(every):
        recs.append(_accuracy(task, "accuracy_all", every))
    if per_kind:
        recs += [_accuracy(task, f"accuracy_{kind}", rows, hits=False) for kind, rows in sorted(results.items())]
    return recs


def run(model, ctx: EvalContext, s: ChoiceSet) -> list[dict]:
    return summarise("vqa", choice_accuracy(model, ctx, s), exclude=ctx.eval.vqa_exclude)
