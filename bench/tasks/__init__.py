"""Evaluation tasks: one module each, all through the model protocol (score / generate / embed), so
every registered model gets every task. TASKS maps a name to run(model, ctx) -> metric records."""

from __future__ import annotations

from typing import Callable

import torch

from bench.tasks import captioning, classification, hardneg, retrieval, streaming, vqa, world
from bench.tasks.common import EvalContext

TASKS: dict[str, Callable] = {
    "classification": classification.run,
    "retrieval": retrieval.run,
    "vqa": vqa.run,
    "world": world.run,
    "hardneg": hardneg.run,
    "captioning": captioning.run,
    "streaming": streaming.run,
}


def evaluate(model, ctx: EvalContext, tasks: list[str]) -> list[dict]:
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KeyError(f"unknown eval tasks {unknown}; known: {', '.join(sorted(TASKS))}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [rec for t in tasks for rec in TASKS[t](model, ctx)]
    finally:
        model.train(was_training)
