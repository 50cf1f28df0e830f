"""World prediction (WorldPrediction-WM-like): shown only the first and the last state, choose the
action that led from one to the other among candidates."""

from __future__ import annotations

from bench.data.items import state_clip, world_items
from bench.tasks.common import EvalContext
from bench.tasks.vqa import choice_accuracy, summarise


def run(model, ctx: EvalContext) -> list[dict]:
    items = world_items(ctx.world, ctx.split, ctx.size)
    items = [type(it)(it.split, it.index, ctx.queries["world"], it.candidates, it.answer, it.kind) for it in items]
    return summarise("world", choice_accuracy(model, ctx, items, clip_fn=state_clip), per_kind=False)
