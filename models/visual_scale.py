"""model.visual_scale: the size at which the projected visual tokens enter the LM (or predictor).

On standardized features the projection's output enters the residual stream at a norm ~30x that of the LM's
own token embeddings (issue #39 measured ~7.1 against ~0.23 on the tiny preset), so the first layers see
visual tokens that dwarf the query. `text_norm` rescales every visual token to the mean norm of the LM's
token-embedding rows, a constant read from the LM's weights when the model is built: direction still learned
by the projection, size fixed, identical for both attention masks and both twins. `none` (the default) leaves
the projection's output as it is, as every committed run had it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

SCALES = ("none", "text_norm")


class VisualScale(nn.Module):
    """Projected visual tokens (B, T, H) -> the same, each rescaled to `norm` (a buffer), or untouched."""

    def __init__(self, mode: str, embeddings: nn.Embedding):
        super().__init__()
        if mode not in SCALES:
            raise ValueError(f"model.visual_scale={mode!r}; expected one of {', '.join(SCALES)}")
        self.mode = mode
        with torch.no_grad():
            norm = embeddings.weight.float().norm(dim=-1).mean() if mode == "text_norm" else torch.tensor(0.0)
        self.register_buffer("norm", norm.detach().clone(), persistent=False)

    def forward(self, vis: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return vis
        return vis * (self.norm.to(vis.dtype) / vis.norm(dim=-1, keepdim=True).clamp_min(1e-6))
