"""Data config -> the positional training samples every model reads (a registry, not an if-chain)."""

from __future__ import annotations

from collections.abc import Callable

from bench.data.config import DataConfig
from bench.data.loader import PositionalSamples
from bench.data.manifest import ManifestSamples
from bench.data.shapes import TrainSamples

SOURCES: dict[str, Callable[[DataConfig, int], PositionalSamples]] = {
    "shapes": lambda data, seed: TrainSamples(data, seed),
    "manifest": lambda data, seed: ManifestSamples(data.manifest, seed, tuple(data.mixture)),
}


def train_samples(data: DataConfig, seed: int) -> PositionalSamples:
    return SOURCES[data.source](data, seed)


def stage_data(data: DataConfig, stage) -> DataConfig:
    """The data config of one stage (a StagePlan): its data stage, and its own mixture, frames and size
    where it sets them."""
    import dataclasses

    manifest = dataclasses.replace(data.manifest, frames=stage.frames or data.manifest.frames,
                                   size=stage.size or data.manifest.size)
    return dataclasses.replace(data, stage=stage.data_stage, manifest=manifest,
                               mixture=list(stage.datasets) or data.mixture)
