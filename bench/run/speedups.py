"""Making a model's step cheaper without changing what it computes: activation checkpointing and
torch.compile, applied by the trainer (and bench.tools.perf, so it measures what a run does) to the model's
transformers backbones that train.

    train.activation_checkpointing: true   recompute each trained backbone's layer activations in the
                                           backward pass (transformers' gradient checkpointing): less
                                           memory, so larger micro-batches, for about one more forward
    train.compile: true                    torch.compile each trained backbone (inductor); token
                                           lengths vary by batch, so after the first recompile the
                                           graphs are dynamic in length and serve every batch

Both reach the model only through what it is made of (transformers' PreTrainedModel submodules with
trainable parameters), so any model of the registry gets them; the frozen X-encoder is left alone (the
feature cache skips it anyway). Gradient checkpointing recomputes exactly (the RNG state is preserved),
so losses are identical. Compiled kernels draw dropout masks from the eager random stream (inductor's
fallback_random: its own fused generator would give other masks, a different run rather than a faster
one) and reorder floating-point sums, so losses agree to about 1e-6.
"""

from __future__ import annotations

import torch.nn as nn
from transformers import PreTrainedModel


def trained_backbones(model: nn.Module) -> list[tuple[str, PreTrainedModel]]:
    """(name, module) of every outermost transformers model inside `model` with a parameter that trains."""
    found: list[tuple[str, PreTrainedModel]] = []
    for name, module in model.named_modules():
        if not isinstance(module, PreTrainedModel) or any(name.startswith(f"{outer}.") for outer, _ in found):
            continue
        if any(p.requires_grad for p in module.parameters()):
            found.append((name, module))
    return found


def apply(model: nn.Module, activation_checkpointing: bool, compile: bool) -> list[str]:
    """Apply the speed-ups asked for; returns what was done, one line per backbone (for the run's log)."""
    done = []
    for name, backbone in trained_backbones(model):
        if activation_checkpointing:
            if not backbone.supports_gradient_checkpointing:
                raise ValueError(f"train.activation_checkpointing: the backbone {name} "
                                 f"({type(backbone).__name__}) does not support gradient checkpointing")
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            done.append(f"activation checkpointing: {name} ({type(backbone).__name__})")
        if compile:
            import torch._inductor.config as inductor

            inductor.fallback_random = True  # the eager dropout masks: the same experiment, faster
            backbone.compile(dynamic=None)
            done.append(f"torch.compile: {name} ({type(backbone).__name__})")
    return done
