"""The interface every model offers, so that the trainer and the tasks never ask which model they hold.

A batch is a dict: "video" (B, T, 3, H, W) uint8 or, from a feature cache, "x_features" (B, N, dim)
(the frozen X-encoder's output), "query" list[str], "target" list[str] (plus bookkeeping keys a model
ignores).

Everything bench/ needs of a model is here: the members of `Model`, and four optional ones that bench
reaches only through the functions at the end of this file:

- embed_text(texts) -> (N, D) unit-norm text embeddings: the text-only hard-negative test;
- decoding(data, steps, seed, log) -> a context manager that readies generate() for its with-block and
  yields a `Decoding` (a model that captions through a Y-decoder: `models.decoder.y_decoding`); `data`
  is a `DecoderData`, what the training data offers a decoder to learn from; the
  captioning and streaming tasks use it, and streaming needs it to turn an embedding stream into text;
- frozen_text_encoder() -> a frozen models.encoders.TextEncoder whose outputs bench may cache
  (bench/cache.py), or None.
- step_targets(targets) -> a context manager inside which loss() reads an optimizer step's targets
  from one encoding of them all (`targets`: each micro-batch's target texts, in order); a model with a
  target encoder offers it (train.encode_targets=step, models/step_targets.py).
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

Batch = dict[str, Any]
Candidates = Sequence[str] | Sequence[Sequence[str]]  # shared by every sample, or one list per sample


@runtime_checkable
class Model(Protocol):
    #: whether embed() gives an embedding stream (selective decoding needs one)
    has_embedding: bool
    #: the frozen X-encoder (models.encoders.XEncoder) every model of a comparison shares: bench caches its
    #: output per machine and then sends "x_features" instead of "video"
    x_encoder: torch.nn.Module

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Same as loss(): engines such as DeepSpeed call the module itself."""

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Scalar tensors, "loss" among them; computed inside the module so data-parallel engines see it."""

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable parameters, each with its own "lr" (LR multipliers live here)."""

    def score(self, batch: Batch, candidates: Candidates) -> torch.Tensor:
        """(B, K): how well each of K candidate texts answers each sample; higher is better."""

    def generate(self, batch: Batch, max_tokens: int | None = None) -> list[str]:
        """One text per sample."""

    def embed(self, batch: Batch) -> torch.Tensor:
        """(B, D) unit-norm embeddings, where has_embedding is true."""

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """Per component: {"trainable": n, "frozen": n}."""

    def parity(self) -> dict[str, Any]:
        """What must be equal between twins of a matched pair (e.g. the X-encoder's weight hash)."""


@dataclass(frozen=True)
class Decoding:
    """What a model's decoding() hook yields: embeddings -> texts, and texts -> the target side's embeddings
    (decoding those gives the decoder's ceiling: what it loses on embeddings it was trained for)."""

    decode: Callable[[torch.Tensor, int | None], list[str]]  # (N, D) embeddings, max tokens -> N texts
    encode_targets: Callable[[list[str]], torch.Tensor]  # N texts -> (N, D)


@dataclass(frozen=True)
class DecoderData:
    """What the training data offers a Y-decoder to learn from, each read only when asked: its caption
    texts, and (where the source has clips) batches of caption clips as model inputs, each with the
    references of every clip (the model's own predictions for them are then decoder inputs)."""

    texts: Callable[[], list[str]]
    clips: Callable[[], Iterator[tuple[Batch, list[list[str]]]]] | None = None


@contextlib.contextmanager
def decoding_of(model, data: DecoderData, steps: int, seed: int, log=None) -> Iterator[Decoding | None]:
    """The model's decoding hook as a with-block; None where the model generates without one."""
    if not isinstance(data, DecoderData):
        raise TypeError(f"decoding_of takes a models.protocol.DecoderData (the training data's caption texts and "
                        f"clips), got {type(data).__name__}")
    hook = getattr(model, "decoding", None)
    if hook is None:
        yield None
        return
    with hook(data, steps, seed, log) as d:
        yield d


def step_targets_of(model, targets: list[list[str]]) -> contextlib.AbstractContextManager:
    """The model's step_targets hook for one optimizer step's micro-batches (their target texts)."""
    hook = getattr(model, "step_targets", None)
    if hook is None:
        raise ValueError(f"train.encode_targets=step: the model {type(model).__name__} does not encode targets "
                         "(it has no step_targets hook); use train.encode_targets=micro_batch")
    return hook(targets)


def offers_step_targets(builder) -> bool | None:
    """Whether the model a registry builder returns has the step_targets hook, read from the builder's
    return annotation (None where it names no class): a sweep checks it before it submits."""
    try:
        cls = typing.get_type_hints(builder).get("return")
    except Exception:  # an annotation that does not resolve says nothing
        return None
    return hasattr(cls, "step_targets") if isinstance(cls, type) else None


def frozen_text_encoder_of(model):
    """The model's frozen text encoder whose outputs may be cached, or None."""
    hook = getattr(model, "frozen_text_encoder", None)
    return hook() if hook is not None else None


def broadcast_candidates(candidates: Candidates, batch_size: int) -> list[list[str]]:
    """Candidates as one list per sample, all of one length K."""
    if len(candidates) and isinstance(candidates[0], str):
        rows = [list(candidates)] * batch_size  # type: ignore[list-item]
    else:
        rows = [list(c) for c in candidates]  # type: ignore[arg-type]
    if len(rows) != batch_size:
        raise ValueError(f"{len(rows)} candidate lists for a batch of {batch_size}")
    if len({len(r) for r in rows}) > 1:
        raise ValueError("every sample of one score() call needs the same number of candidates")
    return rows


def count_parameters(module: torch.nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def decay_groups(named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float, name: str) -> list[dict]:
    """AdamW groups: matrices decay, vectors and scalars (biases, norms, temperature) do not."""
    params = [(n, p) for n, p in named if p.requires_grad]
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    groups = []
    if decay:
        groups.append({"params": decay, "lr": lr, "weight_decay": weight_decay, "name": name})
    if no_decay:
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name}/no_decay"})
    return groups


def score_by_embedding(pred: torch.Tensor, candidates: Candidates, encode_texts) -> torch.Tensor:
    """(B, K) cosine scores of unit-norm predictions (B, D) against encode_texts(candidates), unit-norm;
    shared candidates are encoded once for the whole batch."""
    if len(candidates) and isinstance(candidates[0], str):
        return pred @ encode_texts(list(candidates)).T
    rows = broadcast_candidates(candidates, len(pred))
    flat = encode_texts([c for r in rows for c in r]).view(len(rows), len(rows[0]), -1)
    return torch.einsum("bd,bkd->bk", pred, flat)


def encoder_parity(x_encoder, tokenizer) -> dict:
    """The parity entries every model on the shared X-encoder reports."""
    out = {"x_encoder_hash": x_encoder.weight_hash(),
           "query_tokenizer": f"{type(tokenizer).__name__}/{len(tokenizer)}" if tokenizer is not None else None}
    norm = x_encoder.feature_norm_hash()
    if norm is not None:
        out["x_feature_norm_hash"] = norm
    return out
