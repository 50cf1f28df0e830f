"""Data config -> the positional training samples every model reads (a registry, not an if-chain)."""

from __future__ import annotations

from typing import Callable

from bench.data.config import DataConfig
from bench.data.loader import PositionalSamples
from bench.data.manifest import ManifestSamples
from bench.data.shapes import TrainSamples

SOURCES: dict[str, Callable[[DataConfig, int], PositionalSamples]] = {
    "shapes": lambda data, seed: TrainSamples(data, seed),
    "manifest": lambda data, seed: ManifestSamples(data.manifest, seed),
}


def train_samples(data: DataConfig, seed: int) -> PositionalSamples:
    return SOURCES[data.source](data, seed)
