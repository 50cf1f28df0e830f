"""The DeepSpeed engine of one stage: optimizer groups, schedule and batch layout from the config."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.config import RunConfig, TrainConfig
from bench.data.layout import BatchLayout


@dataclass(frozen=True)
class StagePlan:
    """One stage, every value resolved (a run without stages is one stage)."""

    index: int
    name: str
    data_stage: str
    samples: int
    start: int  # samples seen before the stage begins
    lr: float
    schedule: str
    warmup_samples: int
    datasets: tuple = ()  # the stage's own training mixture (MixtureEntry), () = data.mixture
    frames: int | None = None
    size: int | None = None


def plan_stages(cfg: RunConfig) -> list[StagePlan]:
    t = cfg.train
    if not t.stages:
        return [StagePlan(0, "main", cfg.data.stage, t.budget.samples, 0, t.lr, t.schedule, t.warmup_samples)]
    plans, start = [], 0
    for i, s in enumerate(t.stages):
        plans.append(StagePlan(i, s.name, s.data_stage, s.samples, start, s.lr if s.lr is not None else t.lr,
                               s.schedule or t.schedule,
                               s.warmup_samples if s.warmup_samples is not None else t.warmup_samples,
                               tuple(s.datasets), s.frames, s.size))
        start += s.samples
    return plans


def lr_lambda(stage: StagePlan, global_batch: int, min_ratio: float):
    """Linear warmup, then constant or cosine to min_ratio, as a function of the optimizer step."""
    warm = stage.warmup_samples // global_batch
    total = stage.samples // global_batch

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if stage.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def deepspeed_config(cfg: RunConfig, world_size: int) -> dict:
    """DeepSpeed asserts train_batch_size = micro x accumulation x world: all three come from here."""
    t = cfg.train
    layout = BatchLayout(t.global_batch, t.micro_batch, world_size)
    return {
        "train_batch_size": t.global_batch,
        "train_micro_batch_size_per_gpu": t.micro_batch,
        "gradient_accumulation_steps": layout.accumulation,
        "gradient_clipping": t.grad_clip,
        "zero_optimization": {"stage": t.zero_stage},
        "bf16": {"enabled": t.precision == "bf16"},
        "zero_allow_untested_optimizer": True,  # torch's AdamW: runs on CPU and GPU alike
        "steps_per_print": 2**31,
        "wall_clock_breakdown": False,
    }


OPTIMIZER_IMPL = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def adamw(groups: list[dict], lr: float, t: TrainConfig) -> torch.optim.AdamW:
    """torch's AdamW over the model's parameter groups, in the implementation train.optimizer_impl names."""
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(t.betas), weight_decay=t.weight_decay,
                             **OPTIMIZER_IMPL[t.optimizer_impl])


def make_engine(model: torch.nn.Module, cfg: RunConfig, stage: StagePlan, world_size: int):
    import deepspeed

    groups = model.param_groups(stage.lr, cfg.train.weight_decay)
    optimizer = adamw(groups, stage.lr, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(stage, cfg.train.global_batch, cfg.train.min_lr_ratio))
    engine, optimizer, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                           config=deepspeed_config(cfg, world_size))
    return engine, optimizer, scheduler
