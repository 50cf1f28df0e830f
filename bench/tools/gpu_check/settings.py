"""Where a check writes, the twins as the paper sweep configures them, and the config overrides of its steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.config import REPO_ROOT, load_run_config
from bench.configlib import to_dict
from bench.eval.sets.world_files import EXPORTED_TASKS
from bench.sweep.config import load_sweep_config
from bench.sweep.plan import labelled_points
from bench.tools.gpu_check.scales import TWINS_SWEEP, Scale


@dataclass(frozen=True)
class Folders:
    out: Path  # summary.json, summary.md, perf/: what is committed
    work: Path  # runs, exported data, sweeps, logs: never committed

    @property
    def data(self) -> Path:
        return self.work / "data"


def _at(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def twins(sweep_path: str = TWINS_SWEEP) -> dict[str, dict[str, Any]]:
    """Twin name -> the keys its point of the sweep changes in the sweep's base (for jepa_vs_vlm.yaml: nothing
    for VL-JEPA, the model, all 16 LM layers and trained embeddings for the VLM). Applied to another preset
    (paper_micro), a twin keeps what that preset says where the sweep keeps the base's value."""
    sweep, file = load_sweep_config(REPO_ROOT / sweep_path)
    base = to_dict(load_run_config(sweep.base, relative_to=file.parent))
    out: dict[str, dict[str, Any]] = {}
    for point, _ in labelled_points(sweep):
        name = point.get("model.name", _at(base, "model.name"))
        if name in out:
            raise ValueError(f"{sweep_path}: two points of the sweep train model {name!r}; expected one point a twin")
        out[name] = {k: v for k, v in point.items() if _at(base, k) != v}
    return out


def _yaml_value(value: Any) -> str:
    """The value as a command-line override writes it (bench.config.parse_override reads it back): a string
    as it is where it reads back as itself (a slice such as ':' is not YAML, and reads back as the string)."""
    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = True
        if plain and value:
            return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def overrides_of(changes: dict[str, Any]) -> list[str]:
    return [f"{k}={_yaml_value(v)}" for k, v in changes.items()]


def perf_settings(scale: Scale) -> list[str]:
    """bench.perf's overrides, for the baseline and the knobs alike: the offline model, shapes-world clips at the
    run's shape, the batch, the precision; no eval sets checked (bench.perf evaluates nothing)."""
    g, m = scale.perf_batch
    return [*scale.model, "data.source=shapes", f"data.shapes.frames={scale.frames}", f"data.shapes.size={scale.size}",
            f"data.shapes.train_size={scale.perf_clips}", f"data.num_workers={scale.workers}", "train.stages=[]",
            f"train.global_batch={g}", f"train.micro_batch={m}", f"train.budget.samples={g}", "train.warmup_samples=0",
            f"train.precision={scale.precision}", "eval.tasks=[]", "eval.grid=[]"]


def train_settings(scale: Scale, folders: Folders, twin: str) -> list[str]:
    """bench.train's overrides: the offline model trained on the exported manifest for train_steps steps, then
    every task evaluated once, from the exported val split."""
    g, m = scale.train_batch
    budget = g * scale.train_steps
    val = folders.data / "shapes_val"
    return [*scale.model, "data.source=manifest", f"data.manifest.path={folders.data / 'train'}",
            f"data.manifest.frames={scale.frames}", f"data.manifest.size={scale.size}", "data.mixture=[]",
            f"data.num_workers={scale.workers}", "train.stages=[]", f"train.global_batch={g}", f"train.micro_batch={m}",
            f"train.budget.samples={budget}", "train.warmup_samples=0", "train.checkpoint_every=0",
            "train.keep_checkpoints=1", f"train.log_every={max(1, scale.train_steps // 10)}",
            f"train.precision={scale.precision}", f"eval.grid=[{budget}]", f"eval.tasks=[{', '.join(EXPORTED_TASKS)}]",
            *(f"eval.sets.{task}=[{val}]" for task in EXPORTED_TASKS), f"eval.size={scale.eval_items}",
            f"eval.batch={min(32, scale.eval_items)}", f"eval.decoder_steps={scale.decoder_steps}",
            f"eval.decoder_clips={scale.train_clips}", f"eval.streams={scale.streams}", "eval.stream_rates=[1.0, 0.5]",
            "eval.stream_bootstrap=10", "eval.caption_metrics=[CIDEr]", f"name=gpu_check/{twin}",
            f"output_dir={folders.work / 'runs' / twin}"]
