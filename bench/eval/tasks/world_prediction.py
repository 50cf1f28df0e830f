"""World prediction (WorldPrediction-WM-like): shown only the initial and the final state, choose the
action that led from one to the other among candidates. The clip shows the initial state for its first
half and the final state for the rest (bench/eval/sets/shapes.py)."""

from __future__ import annotations

from bench.eval.sets.kinds import ChoiceSet
from bench.eval.tasks.common import EvalContext
from bench.eval.tasks.vqa import choice_accuracy, summarise


def run(model, ctx: EvalContext, s: ChoiceSet) -> list[dict]:
    return summarise("world", choice_accuracy(model, ctx, s, ctx.queries["world"], "world"), per_kind=False)
