"""What a run has done, as its checkpoints keep it (bench/run/train.py saves and restores it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunState:
    """Where a run is and what it has counted, as of its latest checkpoint: saved in every checkpoint's meta
    (state_dict) and restored from it (from_state_dict), here and nowhere else."""

    stage: int = 0  # index of the stage the checkpoint is in
    stage_position: int = 0  # samples into that stage
    samples_seen: int = 0  # samples into the run
    evaluated: set[int] = field(default_factory=set)  # grid points evaluated
    skipped: int = 0  # micro-batches skipped for a non-finite loss (train.nonfinite=skip)
    replaced: int = 0  # unreadable samples replaced (on this process)
    flops_per_sample: dict[int, float] = field(default_factory=dict)  # stage index -> training FLOPs per sample
    train_s: float = 0.0  # seconds spent in optimizer steps, across resumes
    log_window: dict[str, list[float]] = field(default_factory=dict)  # the steps since the last metrics row

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "stage_position": self.stage_position, "samples_seen": self.samples_seen,
                "evaluated": sorted(self.evaluated), "skipped": self.skipped, "replaced": self.replaced,
                "flops_per_sample": {str(k): v for k, v in self.flops_per_sample.items()}, "train_s": self.train_s,
                "log_window": {k: list(v) for k, v in self.log_window.items()}}

    @classmethod
    def from_state_dict(cls, meta: dict[str, Any]) -> RunState:
        return cls(stage=meta["stage"], stage_position=meta["stage_position"], samples_seen=meta["samples_seen"],
                   evaluated=set(meta.get("evaluated", [])), skipped=meta.get("skipped", 0),
                   replaced=meta.get("replaced", 0), train_s=meta.get("train_s", 0.0),
                   flops_per_sample={int(k): v for k, v in meta.get("flops_per_sample", {}).items()},
                   log_window={k: list(v) for k, v in meta.get("log_window", {}).items()})
