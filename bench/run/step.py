"""One optimizer step, as a run takes it and as bench.tools.perf times it: the same function for both.

A step is `accumulation` micro-batches through the DeepSpeed engine (forward, backward, engine.step()
after each, the optimizer applying at the last). Statistics stay on the device while it runs: the loss
terms are summed there, and one all-reduce at the end of the step carries them together with the count
of non-finite losses and any flags the caller adds (a stop signal), so the host waits on the device
once per optimizer step, not at every micro-batch.

Non-finite losses:
- "fail" (the default) checks once, after the last backward and before the optimizer applies: a NaN or
  inf anywhere in the step raises NonFiniteLoss and no weight changes.
- "skip" must know before each backward, so it checks every micro-batch (one wait each): a non-finite
  micro-batch backpropagates zero instead and is counted; the caller fails the run past a threshold.

Targets per step (train.encode_targets=step, with accumulation): the step reads all its micro-batches
first, and runs them inside the model's step_targets hook, which encodes their targets in one call
(models/step_targets.py).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from bench.dist import any_across, sum_across, world_size
from models.protocol import step_targets_of

PHASES = ("data", "forward", "backward", "optimizer")


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class StepResult:
    losses: dict[str, float]  # each loss term, averaged over the step's micro-batches and the processes
    grad_norm: float | None
    skipped: int  # micro-batches with a non-finite loss, all processes ("skip")
    flags: list[float]  # the caller's flags, summed over the processes
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, when timed


class Clock:
    """perf_counter that first waits for the device's queued work (CUDA runs asynchronously)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def seed_process(seed: int, rank: int) -> None:
    """The global RNG of one process of a run (dropout and other in-step randomness): a run and bench.tools.perf
    seed it alike before building the model, so that their steps draw the same numbers."""
    torch.manual_seed(seed * 1000 + rank)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _zero_loss(engine) -> torch.Tensor:
    """A loss whose gradients are zero for every trainable parameter: a skipped micro-batch."""
    return sum(p.sum() * 0.0 for p in engine.module.parameters() if p.requires_grad)


def _local_grad_norm(engine) -> torch.Tensor | None:
    grads = [p.grad.detach().float().norm() for p in engine.module.parameters() if p.grad is not None]
    return torch.stack(grads).norm() if grads else None


def optimizer_step(engine, batches: Iterator[dict], accumulation: int, device: torch.device,
                   nonfinite: str = "fail", flags: tuple[float, ...] = (), clock: Clock | None = None,
                   where: Callable[[], str] = lambda: "this step",
                   encode_targets: str = "micro_batch") -> StepResult:
    """Take one optimizer step from the next `accumulation` micro-batches of `batches`.

    flags: numbers summed over the processes with the step's statistics (a stop signal); clock: time the
    phases (data, forward, backward, optimizer) with it; where(): words that place the step in its run,
    for the error message of a non-finite loss; encode_targets: "step" encodes the step's targets in one
    call (train.encode_targets)."""
    tick = clock or (lambda: 0.0)
    sums: dict[str, torch.Tensor] = {}
    used, skipped = 0, 0  # micro-batches whose loss counts, and those skipped ("skip")
    bad = torch.zeros((), device=device)  # non-finite losses, counted on the device ("fail")
    seconds = dict.fromkeys(PHASES, 0.0)
    source: Iterator[dict] = (to_device(b, device) for b in batches)
    scope: contextlib.AbstractContextManager = contextlib.nullcontext()
    if encode_targets == "step" and accumulation > 1:  # the step's micro-batches read first, their targets known
        t0 = tick()
        ahead = [next(source) for _ in range(accumulation)]
        seconds["data"] += tick() - t0
        source, scope = iter(ahead), step_targets_of(engine.module, [list(b["target"]) for b in ahead])
    with scope:
        for micro in range(accumulation):
            t0 = tick()
            batch = next(source)
            t1 = tick()
            out = engine(batch)
            loss = out["loss"]
            finite = torch.isfinite(loss.detach())
            if nonfinite == "skip" and any_across(not bool(finite), device):
                skipped += 1
                loss = _zero_loss(engine)
            else:
                used += 1
                bad += (~finite).float()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().double()
            t2 = tick()
            engine.backward(loss)
            t3 = tick()
            if micro == accumulation - 1:  # before the optimizer applies: statistics, flags and the NaN check
                losses, grad_norm, n_skipped, summed_flags = _statistics(engine, sums, used, bad, skipped, flags, device)
                if summed_flags[0] and nonfinite == "fail":
                    raise NonFiniteLoss(f"non-finite loss at {where()}: {losses.get('loss')}")
            engine.step()
            t4 = tick()
            for k, v in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                seconds[k] += v
    if grad_norm is None:  # ZeRO: DeepSpeed's own (already reduced) norm of this step
        g = engine.get_global_grad_norm()
        grad_norm = float(g) if g is not None else None
    return StepResult(losses, grad_norm, int(n_skipped), summed_flags[1:], seconds if clock else {})


def _statistics(engine, sums: dict, used: int, bad: torch.Tensor, skipped: int, flags: tuple[float, ...],
                device: torch.device) -> tuple[dict[str, float], float | None, float, list[float]]:
    """The step's statistics over the processes, in the one all-reduce a step waits for: (mean losses, the
    gradient norm without ZeRO, else None: gone after step(), micro-batches skipped, [non-finite count, *flags])."""
    norm = _local_grad_norm(engine) if engine.zero_optimization_stage() == 0 else None
    keys = sorted(sums)
    extra = [bad, torch.tensor(float(skipped)), *map(torch.tensor, map(float, flags))]
    host = sum_across([*(sums[k] / max(used, 1) for k in keys), *extra, *([norm] if norm is not None else [])], device)
    w = world_size()
    losses = {k: v / w for k, v in zip(keys, host)}
    n_bad, n_skipped, *rest = host[len(keys):]
    return losses, (rest[-1] / w if norm is not None else None), n_skipped, [n_bad, *rest[:len(flags)]]
