"""Run and sweep configs: YAML in, validated dataclasses out, with a stable run_id.

Layering, lowest first: the dataclass defaults -> each `base:` file (recursively, in order)
-> the file itself -> command-line overrides `section.key=value`. Every error names the file
(or "command line"), the dotted key, the value and what was expected.

    python -m bench.config experiments/base/tiny.yaml train.lr=3e-4
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.configlib import ConfigError, Provenance, deep_merge, from_dict, nest_dotted, to_dict
from bench.data.config import DataConfig, MixtureEntry
from bench.data.layout import BatchLayout
from models.config import ModelConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO_ROOT / "experiments"


# Checks of the names a config section uses, registered by the feature that owns those names (the task
# registry checks eval.tasks, the trackers check tracking.trackers), so that this module imports no feature:
# the modules that run configs (bench.run.train, bench.sweep, bench.tools.*) import those features first.
FeatureCheck = Callable[[Any], None]
FEATURE_CHECKS: dict[str, list[FeatureCheck]] = {}


def feature_check(section: str) -> Callable[[FeatureCheck], FeatureCheck]:
    """Register fn(section_config) -> None (raising ValueError) as a check of config section `section`."""

    def register(fn: FeatureCheck) -> FeatureCheck:
        FEATURE_CHECKS.setdefault(section, []).append(fn)
        return fn

    return register


def run_feature_checks(section: str, value: Any) -> None:
    for check in FEATURE_CHECKS.get(section, ()):
        check(value)


@dataclass
class BudgetConfig:
    samples: int = field(default=96_000, metadata={"ge": 1, "help": "global samples seen before the run stops"})


@dataclass
class StageConfig:
    """One stage of a multi-stage run (the paper: query-free caption pretraining, then SFT). Each has
    its own data stage, budget and schedule; a later stage starts from the weights the earlier one left,
    with a fresh optimizer. Unset values fall back to the train section's."""

    name: str = "stage"
    data_stage: Literal["pretrain", "sft"] = "pretrain"
    samples: int = field(default=32_000, metadata={"ge": 1})
    lr: float | None = None
    schedule: Literal["constant", "cosine"] | None = None
    warmup_samples: int | None = None
    datasets: list[MixtureEntry] = field(default_factory=list, metadata={
        "identity": "unless_default", "help": "this stage's training mixture (data.source manifest); empty: data.mixture"})
    frames: int | None = field(default=None, metadata={"identity": "unless_default", "ge": 1,
                                                       "help": "frames per clip in this stage; null: data.manifest.frames"})
    size: int | None = field(default=None, metadata={"identity": "unless_default", "ge": 16,
                                                     "help": "clip size in this stage; null: data.manifest.size"})


@dataclass
class TrainConfig:
    global_batch: int = field(default=64, metadata={"ge": 1, "help": "samples per optimizer step, all processes together"})
    micro_batch: int = field(default=64, metadata={"ge": 1, "help": "samples per forward pass on one process"})
    lr: float = field(default=1e-3, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.01, metadata={"ge": 0.0})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_samples: int = field(default=3_200, metadata={"ge": 0})
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0, "help": "cosine floor as a fraction of lr"})
    grad_clip: float = field(default=1.0, metadata={"ge": 0.0, "help": "0 = no clipping"})
    precision: Literal["fp32", "bf16"] = "fp32"
    zero_stage: int = field(default=0, metadata={"ge": 0, "le": 3})
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    checkpoint_every: int = field(default=16_000, metadata={"ge": 0, "help": "samples between checkpoints; 0 = only at the end"})
    keep_checkpoints: int = field(default=2, metadata={"ge": 1, "identity": False})
    nonfinite: Literal["fail", "skip"] = field(default="fail", metadata={
        "help": "a NaN/inf loss: stop the run, or skip the micro-batch (logged with its step)"})
    max_skipped_fraction: float = field(default=0.01, metadata={
        "ge": 0.0, "le": 1.0, "identity": False,
        "help": "nonfinite=skip: fail the run once more than this fraction of its micro-batches were skipped"})
    stall_after_s: float = field(default=1800.0, metadata={
        "gt": 0.0, "identity": False,
        "help": "a run that has not moved for this long says so in its log and in the sweep's status"})
    log_every: int = field(default=10, metadata={"ge": 1, "identity": False, "help": "optimizer steps between log lines"})
    lease_s: float = field(default=60.0, metadata={
        "gt": 0.0, "identity": False,
        "help": "a run's writer renews its lease every few seconds; one not renewed for this long is stale (its "
                "holder died) and another process may take the run over (bench/run/lease.py)"})
    activation_checkpointing: bool = field(default=False, metadata={
        "identity": False, "help": "recompute trained backbones' activations in backward (bench/run/speedups.py)"})
    compile: bool = field(default=False, metadata={
        "identity": "unless_default", "help": "torch.compile the trained backbones (bench/run/speedups.py)"})
    optimizer_impl: Literal["default", "foreach", "fused"] = field(default="default", metadata={
        "identity": "unless_default",
        "help": "torch AdamW's implementation: default (torch's choice: foreach on a GPU, a loop over the "
                "parameters on a CPU), foreach (one multi-tensor call per operation), or fused (one kernel for "
                "the whole update; CPU and GPU). The same update to float precision"})
    encode_targets: Literal["micro_batch", "step"] = field(default="micro_batch", metadata={
        "identity": "unless_default",
        "help": "with gradient accumulation, a model's Y-side targets are encoded per micro-batch, or all of an "
                "optimizer step's in one call (models/step_targets.py: gradient caching, the same gradients to "
                "float rounding, other dropout masks); fewer, larger Y-encoder calls"})
    stages: list[StageConfig] = field(default_factory=list, metadata={"help": "empty = one stage of data.stage"})

    def check(self) -> None:
        if self.stages and sum(s.samples for s in self.stages) != self.budget.samples:
            raise ValueError(f"the stages' samples add up to {sum(s.samples for s in self.stages)}, "
                             f"but budget.samples is {self.budget.samples}; they must be equal")
        for s in self.stages:
            if s.samples % self.global_batch:
                raise ValueError(f"stage {s.name!r}: samples={s.samples} is not a multiple of global_batch={self.global_batch}")
        if self.encode_targets == "step" and self.zero_stage == 3:
            raise ValueError("encode_targets=step with zero_stage=3: ZeRO-3 overwrites a parameter's gradient at the "
                             "step's first backward and accumulates after, but the Y-encoder's gradient comes only at "
                             "the last one (the previous step's would stay in); use zero_stage 0-2 or "
                             "encode_targets=micro_batch")
        if self.encode_targets == "step" and self.nonfinite == "skip":
            raise ValueError("encode_targets=step backpropagates the step's Y-encoder once, for all its micro-batches, "
                             "so nonfinite=skip cannot skip one; use nonfinite=fail or encode_targets=micro_batch")
        BatchLayout(self.global_batch, self.micro_batch)  # one process; the engine checks the process count
        if self.budget.samples % self.global_batch:
            raise ValueError(
                f"budget.samples={self.budget.samples} is not a multiple of global_batch={self.global_batch}; "
                f"the nearest valid budgets are {self.budget.samples // self.global_batch * self.global_batch} "
                f"and {(self.budget.samples // self.global_batch + 1) * self.global_batch}"
            )


@dataclass
class EvalConfig:
    grid: list[int] = field(default_factory=list, metadata={"help": "sample counts to evaluate at; empty = log-spaced"})
    tasks: list[str] = field(default_factory=lambda: ["classification", "retrieval", "vqa"])
    sets: dict[str, list[str]] = field(default_factory=dict, metadata={
        "identity": "unless_default",
        "help": "task -> its eval sets: 'shapes' (the world's eval split), 'shapes:<split>', a name in the dataset "
                "registry (bench/eval/sets/resolve.py) or a dataset folder; a task left out reads 'shapes'"})
    split: Literal["val", "test", "novel"] = field(default="val", metadata={"help": "the shapes world's eval split"})
    size: int = field(default=400, metadata={"ge": 0, "help": "items per task and eval set (0: every item)"})
    task_size: dict[str, int] = field(default_factory=dict, metadata={
        "identity": "unless_default",
        "help": "task -> items per eval set of that task instead of eval.size: retrieval's R@k depends on its "
                "gallery's size, and a VLM scores every video-text pair of it"})
    batch: int = field(default=100, metadata={"ge": 1, "identity": False})
    caption_metrics: list[Literal["CIDEr", "BLEU-4", "METEOR", "ROUGE-L"]] = field(
        default_factory=lambda: ["CIDEr", "BLEU-4", "METEOR", "ROUGE-L"],
        metadata={"help": "captioning scores (METEOR's Java takes ~8 s a call; the paper reports CIDEr)"})
    decoder_steps: int = field(default=400, metadata={"ge": 1, "help": "Y-decoder training steps before VL-JEPA captions"})
    decoder_clips: int = field(default=2000, metadata={"ge": 1, "help": "train clips whose references train the Y-decoder"})
    vqa_exclude: list[str] = field(default_factory=list, metadata={
        "identity": "unless_default",
        "help": "VQA question kinds left out of the headline accuracy (still reported per kind, and all "
                "kinds as accuracy_all): kinds the X-encoder cannot answer"})
    streams: int = field(default=8, metadata={"ge": 1, "help": "long streams for selective decoding"})
    stream_rates: list[float] = field(default_factory=lambda: [2.0, 1.0, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05],
                                      metadata={"help": "decodes per second swept by selective decoding"})
    stream_strategies: list[Literal["uniform", "adaptive", "uniform_pooled", "adaptive_pooled", "online"]] = field(
        default_factory=lambda: ["uniform", "adaptive", "uniform_pooled", "adaptive_pooled", "online"],
        metadata={"identity": "unless_default",
                  "help": "selective-decoding strategies to decode (each costs its decodes; the factor and gap "
                          "need a uniform and an adaptive of the same kind)"})
    on_task_error: Literal["continue", "stop"] = field(default="continue", metadata={
        "identity": False,
        "help": "a task whose evaluation fails (an unreadable set, out of memory): record the failure in evals.jsonl "
                "and run.json and go on with the other tasks and training (continue), or stop the run (stop)"})
    on_error: Literal["skip", "fail"] = field(default="skip", metadata={
        "identity": False,
        "help": "an eval item whose video or image cannot be decoded: leave it out of the metric and count it in the "
                "set's records (skipped) and predictions (skip), or stop the task with one line naming the file, set "
                "and task, recorded as its failure (fail); every metric either gives is the same"})
    stream_bootstrap: int = field(default=1000, metadata={
        "ge": 0, "identity": "unless_default",
        "help": "bootstrap resamples of the streams for the intervals of the reduction factor and the gap"})
    prompt_ensemble: Literal["scores", "embeddings"] = field(default="scores", metadata={
        "identity": "unless_default",
        "help": "classification's prompt templates: average each template's scores (scores: the committed results' "
                "protocol), or average each class's unit-norm text embeddings over templates, renormalise and score "
                "once (embeddings: CLIP_benchmark's zero-shot classifier); a model without a text embedding (the "
                "VLM) falls back to scores, and each record says which it got (ensemble)"})
    views: dict[str, int] = field(default_factory=lambda: {"clips": 1, "crops": 1}, metadata={
        "identity": "unless_default",
        "help": "classification of videos read from files: scores averaged over `clips` temporal windows x `crops` "
                "spatial crops (left to right along the long side) per video, as V-JEPA 2 / VideoMAE evaluate; "
                "1 x 1: one clip over the whole video, centre crop"})

    def items(self, task: str) -> int:
        """Items per eval set of `task` (0: every item)."""
        return self.task_size.get(task, self.size)

    def view_counts(self) -> tuple[int, int]:
        """(temporal clips, spatial crops) per video (eval.views; a key left out is 1)."""
        return self.views.get("clips", 1), self.views.get("crops", 1)

    def check(self) -> None:
        for task, names in self.sets.items():
            if not names:
                raise ValueError(f"sets.{task} is empty; name at least one eval set, or leave the task out")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"sets.{task} names {dup} more than once")
        if len(set(self.stream_strategies)) != len(self.stream_strategies) or not self.stream_strategies:
            raise ValueError(f"stream_strategies {self.stream_strategies} must name each strategy once, at least one")
        for task, n in self.task_size.items():
            if n < 0:  # the loader has already checked it is an int
                raise ValueError(f"task_size.{task} is {n!r}; expected a whole number of items >= 0 (0: every item)")
        for key, n in self.views.items():
            if key not in ("clips", "crops"):
                raise ValueError(f"views has an unknown key {key!r} (value {n!r}); expected clips and crops")
            if n < 1:  # the loader has already checked it is an int
                raise ValueError(f"views.{key} is {n!r}; expected a whole number of views per video >= 1")
        run_feature_checks("eval", self)


@dataclass
class LaunchConfig:
    """Where and how a run executes; none of it changes what is computed."""

    executor: Literal["auto", "slurm", "local", "inline"] = "auto"
    processes: int = field(default=1, metadata={"ge": 1, "help": "processes of one run (GPUs, or CPU workers)"})
    nodes: int = field(default=1, metadata={"ge": 1})
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    gpus_per_node: int = field(default=0, metadata={"ge": 0})
    cpus_per_task: int = field(default=2, metadata={"ge": 1})
    mem_gb: int = field(default=16, metadata={"ge": 1})
    time_min: int = field(default=60, metadata={"ge": 1})
    array_parallelism: int = field(default=16, metadata={"ge": 1})


@dataclass
class TrackingConfig:
    """Where a run's scalars go besides metrics.jsonl and evals.jsonl (bench/run/trackers.py); none of it
    changes what is computed."""

    trackers: list[Literal["tensorboard", "csv", "wandb"]] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "tensorboard: <results>/tensorboard/<name>/<run_id>; csv: scalars.csv in the run folder; "
                "wandb: a W&B run grouped by sweep (pip install .[wandb])"})
    wandb_project: str = "vljepa-bench"
    wandb_mode: Literal["offline", "online"] = field(default="offline", metadata={
        "help": "offline: files under the run folder, `wandb sync` them later"})

    def check(self) -> None:
        run_feature_checks("tracking", self)


@dataclass
class RunConfig:
    name: str = field(default="run", metadata={"identity": False})
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig, metadata={"identity": False})
    tracking: TrackingConfig = field(default_factory=TrackingConfig, metadata={"identity": False})
    output_dir: str = field(default="results/runs", metadata={"identity": False})

    def check(self) -> None:
        too_late = [s for s in self.eval.grid if s > self.train.budget.samples or s < 0]
        if too_late:
            raise ValueError(f"eval.grid has sample counts outside 0..budget ({self.train.budget.samples}): {too_late}")
        off = [s for s in self.eval.grid if s % self.train.global_batch]
        if off:
            raise ValueError(f"eval.grid has sample counts that are not multiples of train.global_batch "
                             f"({self.train.global_batch}): {off}")

    def eval_grid(self) -> list[int]:
        """The sample counts to evaluate at: eval.grid, or 0 and five log-spaced counts up to the budget."""
        if self.eval.grid:
            return sorted(set(self.eval.grid))
        g, budget = self.train.global_batch, self.train.budget.samples
        return sorted({0, budget} | {max(g, round(budget / 2**k / g) * g) for k in range(1, 5)})

    @property
    def run_id(self) -> str:
        return run_id(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(to_dict(self), sort_keys=False)


def run_id(cfg: Any) -> str:
    """Hash of what the run computes: key order and launch-only settings do not matter."""
    blob = json.dumps(to_dict(cfg, identity_only=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- loading


def resolve_path(path: str | Path, relative_to: Path | None = None) -> Path:
    """A config path: as given (or next to the including file), else under experiments/."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [
        *( [relative_to / p] if relative_to else [] ), Path.cwd() / p, EXPERIMENTS / p,
    ]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"config file '{path}' not found (looked at: {tried})")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config names at least its 'base' or one section")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _layered(path: Path, prov: Provenance, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: 'base' files include each other in a cycle: {chain}")
    data = read_yaml(path)
    bases = data.pop("base", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: key 'base' has value {bases!r}; expected a file path or a list of them")
    merged: dict[str, Any] = {}
    for b in bases:
        merged = deep_merge(merged, _layered(resolve_path(b, path.parent), prov, (*seen, path)), prov, str(b))
    return deep_merge(merged, data, prov, str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """'train.lr=3e-4' -> ('train.lr', '3e-4' parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} is not of the form section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"command line: override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. a slice like ':'): the plain string, checked against the field's type
    return key, value


def merge_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any], prov: Provenance,
                    source: str = "command line") -> dict[str, Any]:
    pairs = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in pairs:
        data = deep_merge(data, nest_dotted(key, value), prov, source)
    return data


def load_run_config(path: str | Path | list[str | Path] | None, overrides: list[str] | dict[str, Any] = (),
                    relative_to: Path | None = None, source: str = "command line") -> RunConfig:
    """Load a run config file, or several layered in order (or only defaults when path is None),
    with overrides applied; `source` names where the overrides come from in error messages."""
    prov: Provenance = {"": "built-in defaults"}
    data = to_dict(RunConfig())  # mappings such as model.*.arch merge into their defaults
    for p in ([] if path is None else path if isinstance(path, list) else [path]):
        data = deep_merge(data, _layered(resolve_path(p, relative_to), prov), {}, "")  # keeps each key's own source
    data = merge_overrides(data, overrides, prov, source)
    return from_dict(RunConfig, data, prov)


if __name__ == "__main__":  # python -m bench.config: the command lives with the other command-line helpers
    from bench.configcli import main

    sys.exit(main())
