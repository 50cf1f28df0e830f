"""Training FLOPs as bench.tools.perf and every run count them: torch's flop counter over one micro-batch's
forward and backward, with formulas for the fused attention kernels torch does not count (or counts
wrongly): grouped-query attention and the CPU's flash kernel.

The count runs on a copy of the model, never on the one that trains: under the counter, autograd takes
other kernels (gradients differ in the last bits), and a run must stay bit-identical whether or not it
counted."""

from __future__ import annotations

import copy

import torch
from torch.utils.flop_counter import FlopCounterMode


def _full_heads(q, k, v):
    """(k, v) shapes with the query's head count: grouped-query attention does the work of full heads."""
    return (k[0], q[1], *k[2:]), (v[0], q[1], *v[2:])


def _sdpa_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q, *_full_heads(q, k, v))


def _sdpa_backward_flops(grad, q, k, v, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad, q, *_full_heads(q, k, v))


def attention_flop_formulas() -> dict:
    """Flop formulas for the fused attention kernels, added to torch's: they count grouped-query
    attention (fewer key/value heads; torch before 2.12 raises on it) and the CPU's flash kernel
    (which torch does not count at all)."""
    aten = torch.ops.aten
    kernels = ("efficient", "flash", "cudnn", "flash_attention_for_cpu")
    names = [f"_scaled_dot_product_{k}" if k.endswith("cpu") else f"_scaled_dot_product_{k}_attention" for k in kernels]
    return {**{getattr(aten, n): _sdpa_flops for n in names},
            **{getattr(aten, f"{n}_backward"): _sdpa_backward_flops for n in names}}


def flop_counter() -> FlopCounterMode:
    """A counter for a with-block (get_total_flops() after it), attention kernels included."""
    return FlopCounterMode(display=False, custom_mapping=attention_flop_formulas())


def flops_per_sample(model: torch.nn.Module, batch: dict, device: torch.device) -> float:
    """Forward and backward FLOPs per sample of one micro-batch, counted on a copy of the model (in train
    mode, gradients discarded, the global RNG left as it was)."""
    twin = copy.deepcopy(model).to(device).train()
    n = next(len(v) for v in batch.values() if hasattr(v, "__len__"))
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        with flop_counter() as counter:
            twin(batch)["loss"].backward()
    del twin
    return counter.get_total_flops() / n
