"""The Y-side targets of a whole optimizer step, encoded in one call (train.encode_targets: step).

With gradient accumulation, a step's targets are otherwise encoded micro-batch by micro-batch: at the
paper preset (global batch 128, micro-batch 8, one GPU) that is 16 forward and 16 backward passes of the
24-layer Y-encoder over 8 short captions each, each far too small to keep a GPU busy. Here they are
encoded together, with the gradient caching of Gao et al. (2021, "Scaling deep contrastive learning batch
size under memory limited setup"), so that the result does not change:

1. at the step's first micro-batch, the Y-encoder's backbone encodes every target of the step in one call,
   without a graph;
2. each micro-batch's loss reads its rows: through the head with its graph when the backbone is frozen
   (then nothing else is needed), else as a leaf tensor, in whose .grad the engine's backward of that
   micro-batch leaves the loss's gradient for its targets;
3. at the last micro-batch, a trained backbone encodes the step's targets again, now with its graph,
   from the RNG state of step 1 (the same dropout masks); the last micro-batch's loss reads its own rows
   of it, and gains `s - s.detach()`, s = sum(the earlier rows * their kept gradients): its value is
   exactly 0 and its gradient is, for every Y-encoder parameter, the sum over the earlier micro-batches
   of what their own encodings would have given. The engine's one backward of that loss carries it all.

The gradients are those of per-micro-batch encoding up to float rounding (padding to the step's longest
target, summation order); dropout draws other masks, as any change of batch shape does. Two passes of
the backbone's forward replace `accumulation` of them, and one backward replaces `accumulation`. The
kept gradients carry the engine's 1/accumulation (DeepSpeed's engine.backward averages over the step's
micro-batches) and are scaled back by it. A skipped micro-batch (train.nonfinite=skip) would leave the
step's Y-encoder gradient incomplete, so that option is refused with this one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


class StepTargets:
    """One optimizer step's targets: `texts` holds each micro-batch's target texts, in the order the
    micro-batches will come. `backbone` maps texts to pooled states (B, dim), under no_grad itself when
    frozen; `head` maps those to the shared space (B, D)."""

    def __init__(self, texts: list[list[str]], backbone: Callable[[list[str]], torch.Tensor],
                 head: Callable[[torch.Tensor], torch.Tensor], backbone_trains: bool):
        self.texts = [list(t) for t in texts]
        self.flat = [t for micro in self.texts for t in micro]
        self.backbone, self.head, self.backbone_trains = backbone, head, backbone_trains
        self.micro = 0
        self.pooled: torch.Tensor | None = None
        self.rng: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.leaves: list[torch.Tensor] = []  # the earlier micro-batches' targets; the engine fills their .grad
        self.extra: torch.Tensor | None = None

    def targets(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """(B, D): this micro-batch's targets, rows of the step's one encoding."""
        if self.micro >= len(self.texts) or list(texts) != self.texts[self.micro]:
            raise RuntimeError(f"micro-batch {self.micro + 1} of the step has other targets than the step announced "
                               "(train.encode_targets=step reads a step's micro-batches before it runs them)")
        if self.pooled is None:
            self.rng = _rng_state(device)
            with torch.no_grad():
                self.pooled = self.backbone(self.flat)
        start = sum(map(len, self.texts[:self.micro]))
        self.micro += 1
        if not self.backbone_trains:
            return self.head(self.pooled[start:start + len(texts)])  # the head's gradient flows as usual
        if self.micro < len(self.texts):  # a leaf: the engine's backward leaves the loss's gradient for it
            with torch.no_grad():
                leaf = self.head(self.pooled[start:start + len(texts)]).requires_grad_(True)
            self.leaves.append(leaf)
            return leaf
        cpu, cuda = self.rng  # the last micro-batch: every target again, with the graph and step 1's dropout masks
        with torch.random.fork_rng(devices=[device] if cuda is not None else []):
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, device)
            encoded = self.head(self.backbone(self.flat))
        earlier = torch.cat([leaf.grad for leaf in self.leaves])
        # the engine scaled each earlier loss by 1/accumulation before its backward, and scales this one
        # again: the kept gradients are scaled back, so that the sum is what per-micro-batch encoding gives
        s = len(self.texts) * (encoded[:start].float() * earlier.float()).sum()
        self.extra = s - s.detach()  # value exactly 0 (NaN where a kept gradient is not finite): the NaN check sees it
        return encoded[start:]

    def finish(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The micro-batch's loss terms; on the last micro-batch of a trained backbone the loss also carries
        the gradient of the earlier micro-batches' targets."""
        if self.extra is None:
            return out
        extra, self.extra = self.extra, None
        return {**out, "loss": out["loss"] + extra}
