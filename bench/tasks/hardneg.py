"""Hard negatives, text only (SugarCrepe-like): is a caption closer to its paraphrase (same meaning,
other words) than to a caption that swaps one attribute or relation (other meaning, same words)?
Needs a text embedding (model.embed_text); models without one get no record."""

from __future__ import annotations

import numpy as np
import torch

from bench.data.items import hard_negatives
from bench.tasks.common import EvalContext, metric


def run(model, ctx: EvalContext) -> list[dict]:
    if not hasattr(model, "embed_text"):
        return []
    items = hard_negatives(ctx.world, ctx.split, ctx.size)
    wins: dict[str, list[bool]] = {}
    for s in range(0, len(items), ctx.batch):
        part = items[s:s + ctx.batch]
        with torch.no_grad():
            a = model.embed_text([h.caption for h in part]).float().cpu()
            p = model.embed_text([h.positive for h in part]).float().cpu()
            n = model.embed_text([h.negative for h in part]).float().cpu()
        for h, win in zip(part, ((a * p).sum(1) > (a * n).sum(1)).tolist()):
            wins.setdefault(h.kind, []).append(win)
    every = [w for ws in wins.values() for w in ws]
    recs = [metric("hardneg", "accuracy", 100 * np.mean(every), 50.0, n=len(every))]
    recs += [metric("hardneg", f"accuracy_{k}", 100 * np.mean(v), 50.0, n=len(v)) for k, v in sorted(wins.items())]
    return recs
