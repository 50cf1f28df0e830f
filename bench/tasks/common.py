"""What every task shares: the evaluation context, batching of clips, and metric records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from bench.data.loader import collate
from bench.data.text import CAPTION_QUERY, CLASSIFY_QUERY
from bench.evalsets.sets import Visuals


def stage_queries(data_stage: str) -> dict[str, str]:
    """The query each task sends, matching what the model saw in training (pretraining: none)."""
    if data_stage == "pretrain":
        return {"classification": "", "retrieval": "", "world": "", "captioning": ""}
    return {"classification": CLASSIFY_QUERY, "retrieval": CAPTION_QUERY, "world": "", "captioning": CAPTION_QUERY}


@dataclass
class EvalContext:
    """What a task needs besides the model: its eval sets, the batch size, the query a model trained on
    this stage expects for each kind of item, the device, and the settings of captioning and streams."""

    sets: dict[str, list]  # task -> its eval sets (bench/evalsets)
    batch: int
    queries: dict[str, str]
    device: torch.device = torch.device("cpu")
    frames: int = 8  # frames of one clip: the window length of a stream's embeddings
    decode_tokens: int = 32
    caption_metrics: tuple[str, ...] = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L")
    decoder_steps: int = 400
    stream_rates: tuple[float, ...] = (2.0, 1.0, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05)
    seed: int = 0
    # caption texts of the training data: what a Y-decoder is trained on (bench/tasks/decoding.py)
    decoder_texts: Callable[[], list[str]] | None = None
    # the frozen X-encoder's cached output for a set's clips, or None to encode pixels (bench/cache.py)
    features: Callable[[Visuals], np.ndarray | None] | None = field(default=None, repr=False)
    # keeps each task's per-item outputs (task, set name, rows): what its metrics were computed from
    predictions: Callable[[str, str, list[dict]], None] | None = field(default=None, repr=False)

    def keep(self, task: str, evalset, rows: list[dict]) -> None:
        if self.predictions is not None:
            self.predictions(task, evalset.name, rows)

    @classmethod
    def for_run(cls, cfg, model, data_stage: str, device, sets: dict[str, list], train_samples,
                rank: int = 0, log=None, predictions=None) -> "EvalContext":
        """The context a run evaluates in: its eval sets, the queries of its data stage, captions of its
        training data for a Y-decoder, and (with data.cache) the cached features of every set's clips."""
        features = None
        if cfg.data.cache:
            from bench.build import cache_dir
            from bench.cache import feature_lookup

            features = feature_lookup(model.x_encoder, cache_dir(), rank, log)
        ctx = cls.from_config(cfg, sets, stage_queries(data_stage), device,
                              lambda: train_samples.caption_texts(cfg.eval.decoder_clips), features)
        ctx.predictions = predictions
        return ctx

    @classmethod
    def from_config(cls, cfg, sets: dict[str, list], queries: dict[str, str], device, decoder_texts=None,
                    features=None) -> "EvalContext":
        e = cfg.eval
        from bench.evalsets.registry import clip_shape

        return cls(sets, e.batch, queries, device, frames=clip_shape(cfg)[0], decode_tokens=cfg.model.decoder.max_tokens,
                   caption_metrics=tuple(e.caption_metrics), decoder_steps=e.decoder_steps,
                   stream_rates=tuple(e.stream_rates), seed=cfg.seed, decoder_texts=decoder_texts, features=features)


def metric(task: str, name: str, value: float, chance: float | None = None, **extra: Any) -> dict[str, Any]:
    """One metric record: the unit every table and figure is built from."""
    return {"task": task, "metric": name, "value": float(value), "chance": None if chance is None else float(chance), **extra}


def clip_batches(ctx: EvalContext, visuals: Visuals, indices: Sequence[int],
                 query: str | Sequence[str]) -> Iterator[tuple[slice, dict]]:
    """(slice of indices, batch on the device) for every ctx.batch consecutive items: the cached X features
    of their clips when there are any, else the clips' pixels."""
    cached = ctx.features(visuals) if ctx.features else None
    for s in range(0, len(indices), ctx.batch):
        part = indices[s:s + ctx.batch]
        queries = [query] * len(part) if isinstance(query, str) else list(query[s:s + ctx.batch])
        if cached is not None:  # the frozen X-encoder's cached output instead of pixels
            samples = [{"x_features": np.array(cached[i]), "query": q} for i, q in zip(part, queries)]
        else:
            samples = [{"video": visuals.clip(i), "query": q} for i, q in zip(part, queries)]
        batch = collate(samples)
        batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        yield slice(s, s + len(part)), batch


def topk_hits(scores: torch.Tensor, answers: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) 1.0 where the answer is among the k best-scored candidates."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == answers[:, None]).any(1).float()
