"""Discriminative VQA: choose the answer among candidates; accuracy overall and per question type
(shapes world: colour, shape, counting, existence with POPE-like adversarial negatives, motion; on disk:
the items' own "kind", e.g. POPE's adversarial / popular / random)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bench.evalsets.sets import ChoiceSet
from bench.tasks.common import EvalContext, clip_batches, metric


def choice_accuracy(model, ctx: EvalContext, s: ChoiceSet, default_query: str = "", task: str = "vqa") -> dict[str, list]:
    """Score items grouped by their number of candidates; per kind, a list of (correct, 1/K). An item
    without a question is asked default_query. Each item's choice is kept (ctx.keep)."""
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
                out[s.kinds[j]].append((chosen[j] == s.answers[j], 1 / len(s.candidates[j])))
    ctx.keep(task, s, [{"item": j, "kind": s.kinds[j], "answer": s.answers[j], "chosen": chosen[j]} for j in sorted(chosen)])
    return out


def summarise(task: str, results: dict[str, list], per_kind: bool = True) -> list[dict]:
    every = [r for rows in results.values() for r in rows]
    recs = [metric(task, "accuracy", 100 * np.mean([c for c, _ in every]), 100 * np.mean([p for _, p in every]), n=len(every))]
    if per_kind:
        for kind, rows in sorted(results.items()):
            recs.append(metric(task, f"accuracy_{kind}", 100 * np.mean([c for c, _ in rows]),
                               100 * np.mean([p for _, p in rows]), n=len(rows)))
    return recs


def run(model, ctx: EvalContext, s: ChoiceSet) -> list[dict]:
    return summarise("vqa", choice_accuracy(model, ctx, s))
