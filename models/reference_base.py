"""What every reference model (an off-the-shelf model evaluated as it is, models/reference_*.py) shares: its
errors, and the protocol members that say it does not train."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

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
