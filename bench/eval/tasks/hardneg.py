"""Hard negatives, text only (SugarCrepe-like): is a caption closer to its paraphrase (same meaning,
other words) than to every caption that swaps an attribute or relation (other meaning, same words)?
Needs a text embedding (model.embed_text); models without one get no record."""

from __future__ import annotations

import numpy as np
import torch

from bench.eval.sets.kinds import HardNegativeSet
from bench.eval.tasks.common import EvalContext, item_se, metric


def run(model, ctx: EvalContext, s: HardNegativeSet) -> list[dict]:
    if not hasattr(model, "embed_text"):
        return []
    wins: dict[str, list[tuple[bool, float]]] = {}  # kind -> (win, chance) per item
    for a0 in range(0, len(s.anchors), ctx.eval.batch):
        sl = slice(a0, a0 + ctx.eval.batch)
        negs = list(s.negatives[sl])
        with torch.no_grad():
            a = model.embed_text(list(s.anchors[sl])).float().cpu()
            p = model.embed_text(list(s.positives[sl])).float().cpu()
            n = model.embed_text([t for ns in negs for t in ns]).float().cpu()
        owner = torch.tensor([i for i, ns in enumerate(negs) for _ in ns])
        neg = torch.full((len(negs),), float("-inf")).scatter_reduce(0, owner, (a[owner] * n).sum(1), reduce="amax")
        for kind, win, ns in zip(s.kinds[sl], ((a * p).sum(1) > neg).tolist(), negs):
            wins.setdefault(kind, []).append((win, 100 / (1 + len(ns))))

    def rec(name: str, rows: list) -> dict:
        return metric("hardneg", name, 100 * np.mean([w for w, _ in rows]), np.mean([c for _, c in rows]), n=len(rows),
                      se=100 * item_se([w for w, _ in rows]))

    return [rec("accuracy", [w for ws in wins.values() for w in ws])] + [rec(f"accuracy_{k}", v) for k, v in sorted(wins.items())]
