"""What every reference model (an off-the-shelf model evaluated as it is, models/reference_*.py) shares: its
errors, and the protocol members that say it does not train."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.encoders import weight_hash
from models.protocol import Batch


class ReferenceModelError(ValueError):
    """A reference model that cannot be loaded or used; the message names the spec and what was expected."""


class NotApplicable(RuntimeError):
    """What the model cannot do at all (a dual encoder writing text), as opposed to a failure."""


class EvaluatedAsIs(nn.Module):
    """A frozen `self.model` named by `self.spec`: no loss, no parameter groups, and its weights' hash (computed
    once) for the records."""

    model: nn.Module
    spec: str
    _hash: str | None = None

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotApplicable(f"{self.spec}: a reference model is evaluated as it is, not trained")

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.loss(batch)

    def param_groups(self, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        return []  # nothing trains

    def weight_hash(self) -> str:
        if self._hash is None:
            self._hash = weight_hash(self.model)
        return self._hash


def video_of(batch: Batch, spec: str) -> torch.Tensor:
    """The batch's pixels, (B, T, 3, H, W) uint8: what every reference model reads (never cached features)."""
    if "video" not in batch:
        raise ReferenceModelError(f"{spec}: a reference model reads pixels (batch['video']), not cached features "
                                  "(data.cache must be off)")
    video = batch["video"]
    if video.dtype != torch.uint8 or video.ndim != 5 or video.shape[2] != 3:
        raise ReferenceModelError(f"{spec}: expected a uint8 video batch (B, T, 3, H, W), got {video.dtype} "
                                  f"{tuple(video.shape)}")
    return video


def frame_mean(batch: Batch, spec: str, embed_frames: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    """(B, D): a dual encoder's clip embedding, each clip's frames embedded one by one (embed_frames: N uint8
    frames (N, 3, H, W) -> (N, D) unit-norm), averaged and renormalised, so every frame weighs the same."""
    video = video_of(batch, spec)
    b, t = video.shape[:2]
    per_frame = embed_frames(video.reshape(b * t, *video.shape[2:]).cpu().numpy())
    return F.normalize(per_frame.view(b, t, -1).mean(1), dim=-1)
