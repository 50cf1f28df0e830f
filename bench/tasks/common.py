"""What every task shares: the evaluation context, batching of clips, and metric records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from bench.data.loader import collate
from bench.data.shapes import ShapesWorld


@dataclass
class EvalContext:
    """What a task needs besides the model: the world, the split, how many items, the batch size,
    which query a model trained on this stage expects for each kind of item, and the device."""

    world: ShapesWorld
    split: str
    size: int
    batch: int
    queries: dict[str, str]
    device: torch.device = torch.device("cpu")
    decode_tokens: int = 32
    caption_metrics: tuple[str, ...] = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")
    decoder_steps: int = 400
    decoder_clips: int = 2000
    streams: int = 8
    stream_rates: tuple[float, ...] = (2.0, 1.0, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)
    seed: int = 0
    features: dict[str, Any] | None = None  # split -> cached X features of its clips (bench/cache.py)


def metric(task: str, name: str, value: float, chance: float | None = None, **extra: Any) -> dict[str, Any]:
    """One metric record: the unit every table and figure is built from."""
    return {"task": task, "metric": name, "value": float(value), "chance": None if chance is None else float(chance), **extra}


def clip_batches(ctx: EvalContext, indices: Sequence[int], query: str | Sequence[str],
                 clip_fn: Callable[[ShapesWorld, str, int], np.ndarray] | None = None) -> Iterator[tuple[slice, dict]]:
    """(slice of indices, batch on the device) for every ctx.batch consecutive items."""
    for s in range(0, len(indices), ctx.batch):
        part = indices[s:s + ctx.batch]
        queries = [query] * len(part) if isinstance(query, str) else list(query[s:s + ctx.batch])
        cached = None if clip_fn or not ctx.features else ctx.features.get(ctx.split)
        if cached is not None:  # the frozen X-encoder's cached output instead of pixels
            samples = [{"x_features": np.array(cached[i]), "query": q} for i, q in zip(part, queries)]
        else:
            samples = [{"video": clip_fn(ctx.world, ctx.split, i) if clip_fn else ctx.world.clip(ctx.split, i),
                        "query": q} for i, q in zip(part, queries)]
        batch = collate(samples)
        batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        yield slice(s, s + len(part)), batch


def topk_hits(scores: torch.Tensor, answers: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) 1.0 where the answer is among the k best-scored candidates."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == answers[:, None]).any(1).float()
