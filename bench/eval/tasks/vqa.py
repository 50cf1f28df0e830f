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
keeps every type, and each type has its own `accuracy_<type>`.

A set whose every item is asked yes or no (POPE) also gets POPE's precision, recall, F1 and yes-ratio,
"yes" the positive class, overall and per kind (`precision_<kind>`, ...): yes_no_metrics."""

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


def is_yes_no(candidates: Sequence[str]) -> bool:
    """Candidates exactly yes and no (in either order, any case)."""
    return len(candidates) == 2 and {c.strip().lower() for c in candidates} == {"yes", "no"}


def pope_scores(pairs: list[tuple[bool, bool]]) -> dict[str, float]:
    """(said yes, answer is yes) per item -> precision, recall, F1 and yes-ratio x100, "yes" the positive class,
    as POPE's evaluate.py defines them: the yes-ratio is the share of items the model said yes to (lmms-eval's
    pope_yes_ratio counts the answers instead, 50 on every POPE split). An undefined ratio (no yes said, no
    yes answer) is 0, as lmms-eval's aggregates give it."""
    tp = sum(said and yes for said, yes in pairs)
    said, yes = sum(s for s, _ in pairs), sum(y for _, y in pairs)
    precision, recall = (tp / said if said else 0.0), (tp / yes if yes else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1, "yes_ratio": 100 * said / len(pairs)}


def _pope_records(task: str, suffix: str, pairs: list[tuple[bool, bool]]) -> list[dict]:
    """One record per POPE metric, its chance that of a model saying yes to half the items at random (precision:
    the share of yes answers; recall and yes-ratio: 50)."""
    base = 100 * sum(y for _, y in pairs) / len(pairs)
    chance = {"precision": base, "recall": 50.0, "f1": 2 * base * 50 / (base + 50) if base else 0.0, "yes_ratio": 50.0}
    return [metric(task, f"{name}{suffix}", value, chance[name], n=len(pairs)) for name, value in pope_scores(pairs).items()]


def yes_no_metrics(task: str, s: ChoiceSet, results: dict[str, list]) -> list[dict]:
    """POPE's metrics over every item and per kind, for a set whose every item is asked yes or no; none for any
    other set (the accuracy records are left as they are). results: choice_accuracy's rows per kind; a yes/no
    item's choice is its answer when it is right and the other candidate when it is wrong."""
    if not s.candidates or not all(is_yes_no(c) for c in s.candidates):
        return []
    pairs: dict[str, list[tuple[bool, bool]]] = {}
    for kind, rows in results.items():
        for correct, _, _, j in rows:
            yes = s.candidates[j][s.answers[j]].strip().lower() == "yes"
            pairs.setdefault(kind, []).append((yes == bool(correct), yes))
    recs = _pope_records(task, "", [p for kind in sorted(pairs) for p in pairs[kind]])
    return recs + [r for kind in sorted(pairs) for r in _pope_records(task, f"_{kind}", pairs[kind])]


def run(model, ctx: EvalContext, s: ChoiceSet) -> list[dict]:
    results = choice_accuracy(model, ctx, s)
    return summarise("vqa", results, exclude=ctx.eval.vqa_exclude) + yes_no_metrics("vqa", s, results)
