"""Discriminative VQA: choose the answer among candidates; accuracy overall and per question type
(colour, shape, counting, existence with POPE-like adversarial negatives, motion)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bench.data.items import ChoiceItem, vqa_items
from bench.tasks.common import EvalContext, clip_batches, metric


def choice_accuracy(model, ctx: EvalContext, items: list[ChoiceItem], clip_fn=None) -> dict[str, list]:
    """Score items grouped by their number of candidates; per kind, a list of (correct, 1/K)."""
    by_k: dict[int, list[ChoiceItem]] = defaultdict(list)
    for it in items:
        by_k[len(it.candidates)].append(it)
    out: dict[str, list] = defaultdict(list)
    for group in by_k.values():
        for sl, batch in clip_batches(ctx, [it.index for it in group], [it.question for it in group], clip_fn):
            part = group[sl]
            scores = model.score(batch, [list(it.candidates) for it in part]).float().cpu()
            for it, row in zip(part, scores):
                out[it.kind].append((int(row.argmax()) == it.answer, 1 / len(it.candidates)))
    return out


def summarise(task: str, results: dict[str, list], per_kind: bool = True) -> list[dict]:
    every = [r for rows in results.values() for r in rows]
    recs = [metric(task, "accuracy", 100 * np.mean([c for c, _ in every]), 100 * np.mean([p for _, p in every]), n=len(every))]
    if per_kind:
        for kind, rows in sorted(results.items()):
            recs.append(metric(task, f"accuracy_{kind}", 100 * np.mean([c for c, _ in rows]),
                               100 * np.mean([p for _, p in rows]), n=len(rows)))
    return recs


def run(model, ctx: EvalContext) -> list[dict]:
    items = vqa_items(ctx.world, ctx.split, ctx.size)
    return summarise("vqa", choice_accuracy(model, ctx, items))
