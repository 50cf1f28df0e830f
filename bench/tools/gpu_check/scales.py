"""What a GPU check measures at each scale: the speed-up knobs, the GPU plan's preset, sizes and budgets, and its
CPU smoke's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.tools import perf

TWINS_SWEEP = "experiments/paper/jepa_vs_vlm.yaml"
DEADLINE_S = 540  # the budgets of the GPU plan sum under this: 9 minutes


@dataclass(frozen=True)
class Knob:
    """A speed-up measured against the twin's baseline step: its config overrides."""

    name: str
    overrides: tuple[str, ...]
    needs_step_targets: bool = False  # only a model with the step_targets hook encodes a step's targets at once


KNOBS = (
    Knob("fused_optimizer", ("train.optimizer_impl=fused",)),
    Knob("encode_targets_step", ("train.encode_targets=step",), needs_step_targets=True),
    Knob("activation_checkpointing", ("train.activation_checkpointing=true",)),
    Knob("compile", ("train.compile=true",)),  # last of a twin's knobs: the slowest to start, the likeliest to break
)


@dataclass(frozen=True)
class Scale:
    """What differs between the GPU plan and its CPU smoke: the preset, its sizes and the step budgets."""

    name: str
    preset: str
    device: Literal["cuda", "cpu"]
    model: tuple[str, ...]  # overrides that build the preset offline
    precision: Literal["bf16", "fp32"]
    frames: int
    size: int
    workers: int  # data.num_workers
    perf_batch: tuple[int, int]  # (global, micro) of bench.perf and the knob steps
    perf_steps: int  # timed steps, after `warmup` steps
    warmup: int
    perf_clips: int  # train clips of the shapes world bench.perf steps through
    train_batch: tuple[int, int]
    train_steps: int
    eval_items: int  # items per task, exported and evaluated
    train_clips: int  # clips of the exported training manifest
    streams: int
    decoder_steps: int
    budgets: dict[str, int]  # step kind, or kind:twin, or kind:twin:knob -> seconds (the most specific wins)

    def budget(self, kind: str, twin: str = "", knob: str = "") -> int:
        for key in (f"{kind}:{twin}:{knob}", f"{kind}:{twin}", f"{kind}::{knob}", kind):
            if key in self.budgets:
                return self.budgets[key]
        raise KeyError(f"scale {self.name} has no budget for step {kind} {twin} {knob}")


GPU = Scale(
    # the paper preset with random weights, the built-in tokenizer's ids and a mean-pooled Y-encoder, as bench.perf
    # measures it offline (a sentence-transformers folder needs the weights on disk)
    name="gpu", preset="experiments/base/paper.yaml", device="cuda", model=perf.PAPER_OFFLINE_MODEL,
    precision="bf16", frames=16, size=256, workers=8, perf_batch=(32, 8), perf_steps=2, warmup=2, perf_clips=128,
    train_batch=(4, 4), train_steps=200, eval_items=16, train_clips=32, streams=2, decoder_steps=50,
    # estimates (no GPU has run this yet), from the committed H100 records (results/example/perf/) and CPU timings;
    # train:vlm is an extra step (--only), outside the 9 minutes
    budgets={"probe": 15, "export": 20, "perf": 55, "train:vljepa": 140, "train:vlm": 100, "knob:vljepa": 25,
             "knob:vlm": 22, "knob:vljepa:compile": 75, "knob:vlm:compile": 55},
)
CPU_SMOKE = Scale(
    name="cpu-smoke", preset="experiments/base/paper_micro.yaml", device="cpu", model=(),
    precision="fp32", frames=16, size=32, workers=0, perf_batch=(4, 2), perf_steps=1, warmup=1, perf_clips=8,
    train_batch=(4, 4), train_steps=4, eval_items=4, train_clips=8, streams=1, decoder_steps=2,
    budgets={"probe": 60, "export": 90, "perf": 300, "knob": 120, "knob::compile": 420, "train": 300},
)
