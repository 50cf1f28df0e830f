"""What every task shares: the evaluation context, batching of clips, decoding, and metric records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.cache import attach_eval_text_cache, eval_features
from bench.config import EvalConfig, RunConfig
from bench.data.clips import CaptionClips
from bench.data.loader import collate
from bench.data.text import CAPTION_QUERY, CLASSIFY_QUERY
from bench.data.video import VideoError
from bench.eval.sets.kinds import Subset, Visuals
from bench.eval.sets.resolve import clip_shape
from models.protocol import DecoderData, decoding_of


def stage_queries(data_stage: str) -> dict[str, str]:
    """The query each task sends, matching what the model saw in training (pretraining: none)."""
    if data_stage == "pretrain":
        return {"classification": "", "retrieval": "", "world": "", "captioning": ""}
    return {"classification": CLASSIFY_QUERY, "retrieval": CAPTION_QUERY, "world": "", "captioning": CAPTION_QUERY}


@dataclass
class EvalContext:
    """What a task needs besides the model: the run's evaluation settings (batch, caption metrics, decoder
    steps, stream rates: cfg.eval itself), its eval sets, the query a model trained on this stage expects
    for each kind of item, the device, and where cached features and kept predictions go."""

    eval: EvalConfig
    sets: dict[str, list]  # task -> its eval sets (bench/eval/sets)
    queries: dict[str, str]
    device: torch.device
    frames: int  # frames of one clip: the window length of a stream's embeddings
    decode_tokens: int  # the longest text a decoder writes (model.decoder.max_tokens)
    seed: int
    # caption texts of the training data: what a Y-decoder is trained on (models/decoder.py)
    decoder_texts: Callable[[], list[str]] | None = None
    # the training data's caption clips, for a Y-decoder trained on the model's predictions
    decoder_clips: Callable[[], CaptionClips] | None = None
    # the frozen X-encoder's cached output for a set's clips, or None to encode pixels (bench/cache.py)
    features: Callable[[Visuals], np.ndarray | None] | None = field(default=None, repr=False)
    # keeps each task's per-item rows (task, set name, rows, kind): its outputs ("predictions"), what its metrics
    # were computed from, and its hit-rate metrics' hits ("outcomes")
    predictions: Callable[..., None] | None = field(default=None, repr=False)
    # the run's log (one line a call), for what an evaluation passes over (unreadable clips); None: stderr
    log: Callable[[str], None] | None = field(default=None, repr=False)

    def keep(self, task: str, evalset, rows: list[dict], kind: str = "predictions") -> None:
        """A task's per-item rows for one eval set: its outputs ("predictions"), or each hit-rate metric's
        hits ("outcomes", written by evaluate)."""
        if self.predictions is not None:
            self.predictions(task, evalset.name, rows, kind)

    @classmethod
    def for_run(cls, cfg: RunConfig, model, data_stage: str, device, sets: dict[str, list], train_samples,
                rank: int = 0, log=None, predictions=None) -> EvalContext:
        """The context a run evaluates in: its eval sets, the queries of its data stage, captions of its
        training data for a Y-decoder, and (with data.cache) the cached features of every set's clips and a
        frozen Y-encoder's cached outputs for the texts the sets have it encode."""
        ctx = cls.from_config(cfg, sets, stage_queries(data_stage), device,
                              lambda: train_samples.caption_texts(cfg.eval.decoder_clips))
        ctx.decoder_clips = lambda: train_samples.caption_clips(cfg.eval.decoder_clips)
        if cfg.data.cache:
            ctx.features = eval_features(model, rank, log)
            attach_eval_text_cache(model, sets, rank, log)
        ctx.predictions, ctx.log = predictions, log
        return ctx

    @classmethod
    def from_config(cls, cfg: RunConfig, sets: dict[str, list], queries: dict[str, str], device=None,
                    decoder_texts=None) -> EvalContext:
        return cls(cfg.eval, sets, queries, device or torch.device("cpu"), frames=clip_shape(cfg)[0],
                   decode_tokens=cfg.model.decoder.max_tokens, seed=cfg.seed, decoder_texts=decoder_texts)

    def decoding(self, model, log=None):
        """The model's decoding hook for a with-block (models/protocol.py), trained on the training data's
        captions (and clips) when it needs a Y-decoder; yields None for a model that generates without one."""
        data = DecoderData(self.decoder_texts or _no_texts, self._decoder_clip_batches if self.decoder_clips else None)
        return decoding_of(model, data, self.eval.decoder_steps, self.seed, log)

    def _decoder_clip_batches(self) -> Iterator[tuple[dict, list[list[str]]]]:
        clips = self.decoder_clips()
        indices = list(range(len(clips.references)))
        for sl, batch in clip_batches(self, clips.visuals, indices, clips.queries):
            yield batch, clips.references[sl]


def _no_texts() -> list[str]:
    raise ValueError("this model captions through a Y-decoder trained on the training data's captions, and no caption "
                     "texts were given (EvalContext.decoder_texts); or set model.decoder.checkpoint")


def metric(task: str, name: str, value: float, chance: float | None = None, **extra: Any) -> dict[str, Any]:
    """One metric record: the unit every table and figure is built from. Where a metric is a mean over items,
    `se` is its standard error over them: the evaluation's own noise, beside which a seed's is read. Where it
    is the percentage of items that are hits (top-k, R@k, accuracy), `hits` holds them, in the set's item
    order: evaluate() moves them out of the record into the run's per-item outcomes (see split_outcomes)."""
    return {"task": task, "metric": name, "value": float(value), "chance": None if chance is None else float(chance), **extra}


HITS = "hits"


def split_outcomes(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the records without their hits, one outcome row per record that had them: metric, n and the hits as a
    string of 0 and 1). Two runs evaluated on the same set have their items in the same order, so their
    outcomes pair item by item (analysis/evalnoise.py: the split-half estimate of evaluation noise)."""
    clean, outcomes = [], []
    for r in records:
        if HITS in r:
            r = dict(r)
            hits = np.asarray(r.pop(HITS), dtype=bool).ravel()
            outcomes.append({"metric": r["metric"], "n": len(hits), "hits": "".join("1" if h else "0" for h in hits)})
        clean.append(r)
    return clean, outcomes


def item_se(values) -> float:
    """The standard error of a mean over items (sample SD / sqrt(n)); 0 for a single item."""
    v = np.asarray(values, dtype=float).ravel()
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


class UnreadableClip(Exception):
    """Clip `index` of `visuals` (numbered as in the set's own visuals, before any were left out) cannot be
    decoded: raised while a task reads pixels, for eval.on_error to skip the clip or stop the task."""

    def __init__(self, visuals: Visuals, index: int, error: str):
        super().__init__(error)
        self.visuals, self.index, self.error = visuals, index, error


def _clip(visuals: Visuals, i: int) -> np.ndarray:
    try:
        return visuals.clip(i)
    except VideoError as e:
        root, index = (visuals.parent, visuals.keep[i]) if isinstance(visuals, Subset) else (visuals, i)
        root = getattr(root, "viewed", root)  # a view of a set's clips (eval.views): the clip is the set's
        raise UnreadableClip(root, index, " ".join(str(e).split())) from None


def clip_batches(ctx: EvalContext, visuals: Visuals, indices: Sequence[int],
                 query: str | Sequence[str]) -> Iterator[tuple[slice, dict]]:
    """(slice of indices, batch on the device) for every ctx.eval.batch consecutive items: the cached X features
    of their clips when there are any (a Subset reads its parent's rows), else the clips' pixels."""
    subset = isinstance(visuals, Subset)
    cached = ctx.features(visuals.parent if subset else visuals) if ctx.features else None
    n = ctx.eval.batch
    for s in range(0, len(indices), n):
        part = indices[s:s + n]
        queries = [query] * len(part) if isinstance(query, str) else list(query[s:s + n])
        if cached is not None:  # the frozen X-encoder's cached output instead of pixels
            rows = [visuals.keep[i] for i in part] if subset else part
            samples = [{"x_features": np.array(cached[i]), "query": q} for i, q in zip(rows, queries)]
        else:
            samples = [{"video": _clip(visuals, i), "query": q} for i, q in zip(part, queries)]
        batch = collate(samples)
        batch = {k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        yield slice(s, s + len(part)), batch


def topk_hits(scores: torch.Tensor, answers: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) 1.0 where the answer is among the k best-scored candidates."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == answers[:, None]).any(1).float()
