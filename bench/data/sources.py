"""Data config -> the positional training samples every model reads (a registry, not an if-chain)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.data.config import DataConfig
from bench.data.loader import PositionalSamples
from bench.data.manifest import ManifestError, ManifestSamples, check_dataset
from bench.data.registry import RegistryError
from bench.data.shapes import TrainSamples

if TYPE_CHECKING:  # a type only: bench.config imports bench.data
    from bench.config import RunConfig

SOURCES: dict[str, Callable[[DataConfig, int], PositionalSamples]] = {
    "shapes": lambda data, seed: TrainSamples(data, seed),
    "manifest": lambda data, seed: ManifestSamples(data.manifest, seed, tuple(data.mixture)),
}


def train_samples(data: DataConfig, seed: int) -> PositionalSamples:
    return SOURCES[data.source](data, seed)


def stage_data(data: DataConfig, stage) -> DataConfig:
    """The data config of one stage (a StagePlan): its data stage, and its own mixture, frames and size
    where it sets them."""
    manifest = dataclasses.replace(data.manifest, frames=stage.frames or data.manifest.frames,
                                   size=stage.size or data.manifest.size)
    return dataclasses.replace(data, stage=stage.data_stage, manifest=manifest,
                               mixture=list(stage.datasets) or data.mixture)


def training_datasets(cfg: RunConfig) -> list[tuple[str, str]]:
    """(config key, dataset name) of every training dataset a run reads from files."""
    if cfg.data.source != "manifest":
        return []
    out = [(f"train.stages[{i}].datasets", e.name) for i, s in enumerate(cfg.train.stages) for e in s.datasets]
    if not cfg.train.stages or any(not s.datasets for s in cfg.train.stages):
        out += [("data.mixture", e.name) for e in cfg.data.mixture] or [("data.manifest.path", cfg.data.manifest.path)]
    return out


def training_data_problems(cfg: RunConfig, checked: dict[str, str | None] | None = None) -> list[str]:
    """What is wrong with a run's training data, one line per dataset (key, name, what): each must resolve,
    parse, name files that exist, and decode (bench.data.manifest.check_dataset). `checked` remembers
    datasets across runs (a sweep checks each once)."""
    checked = {} if checked is None else checked
    out = []
    for key, name in training_datasets(cfg):
        if name not in checked:
            checked[name] = None
            try:
                check_dataset(name, cfg.data.manifest.on_error)
            except (ManifestError, RegistryError, OSError) as e:
                checked[name] = f"key '{key}', dataset {name!r}: {e}"
        if checked[name]:
            out.append(checked[name])
    return out
