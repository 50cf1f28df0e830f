"""Where a run's samples come from: one object per data source, in a registry keyed by `data.source`.

A source answers everything a run, an evaluation or a tool asks of its data, so that no module compares the
source's name: the positional training samples of a stage, the clip shape the X-encoder reads, whether the
frozen encoders' outputs can be cached, the eval set a task reads when `eval.sets` names none, the shapes
world when there is one, and the training datasets to check before anything is built.

    shapes     the procedural shapes world (bench/data/shapes.py): cached, its own eval splits
    manifest   dataset folders, manifests and shards on disk, alone or as a mixture (bench/data/manifest.py)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.data.config import DataConfig
from bench.data.datasets import RegistryError
from bench.data.loader import PositionalSamples
from bench.data.manifest import ManifestError, ManifestSamples, check_dataset
from bench.data.shapes import ShapesWorld, TrainSamples

if TYPE_CHECKING:  # a type only: bench.config imports bench.data
    from bench.config import RunConfig

@dataclass(frozen=True)
class ShapesSource:
    """The procedural shapes world: samples are rendered on demand, the frozen encoders' outputs cached."""

    name: ClassVar[str] = "shapes"
    cacheable: ClassVar[bool] = True  # data.cache trains on cached X features and Y targets
    default_eval_set: ClassVar[str | None] = "shapes"  # a task that eval.sets leaves out reads the world's split
    has_world: ClassVar[bool] = True  # its clips match the shapes world's eval sets

    def samples(self, data: DataConfig, seed: int) -> PositionalSamples:
        return TrainSamples(data, seed)

    def clip_shape(self, data: DataConfig) -> tuple[int, int]:
        return data.shapes.frames, data.shapes.size

    def world(self, data: DataConfig) -> ShapesWorld | None:
        return ShapesWorld(data.shapes)

    def training_datasets(self, cfg: RunConfig) -> list[tuple[str, str]]:
        return []


@dataclass(frozen=True)
class ManifestSource:
    """Datasets on disk (a manifest, shards, or a mixture of registry names), read and decoded as trained."""

    name: ClassVar[str] = "manifest"
    cacheable: ClassVar[bool] = False
    default_eval_set: ClassVar[str | None] = None  # eval.sets must name every task's sets
    has_world: ClassVar[bool] = False

    def samples(self, data: DataConfig, seed: int) -> PositionalSamples:
        return ManifestSamples(data.manifest, seed, tuple(data.mixture))

    def clip_shape(self, data: DataConfig) -> tuple[int, int]:
        return data.manifest.frames, data.manifest.size

    def world(self, data: DataConfig) -> ShapesWorld | None:
        return None

    def training_datasets(self, cfg: RunConfig) -> list[tuple[str, str]]:
        """(config key, dataset name) of every dataset the run's stages read."""
        out = [(f"train.stages[{i}].datasets", e.name) for i, s in enumerate(cfg.train.stages) for e in s.datasets]
        if not cfg.train.stages or any(not s.datasets for s in cfg.train.stages):
            out += [("data.mixture", e.name) for e in cfg.data.mixture] or [("data.manifest.path", cfg.data.manifest.path)]
        return out


DataSource = ShapesSource | ManifestSource
SOURCES: dict[str, DataSource] = {s.name: s for s in (ShapesSource(), ManifestSource())}


def source_of(data: DataConfig) -> DataSource:
    """The source a data config names (data.source; the config's Literal type has already checked it)."""
    return SOURCES[data.source]


def train_samples(data: DataConfig, seed: int) -> PositionalSamples:
    return source_of(data).samples(data, seed)


def stage_data(data: DataConfig, stage) -> DataConfig:
    """The data config of one stage (a StagePlan): its data stage, and its own mixture, frames and size
    where it sets them."""
    manifest = dataclasses.replace(data.manifest, frames=stage.frames or data.manifest.frames,
                                   size=stage.size or data.manifest.size)
    return dataclasses.replace(data, stage=stage.data_stage, manifest=manifest,
                               mixture=list(stage.datasets) or data.mixture)


def training_data_problems(cfg: RunConfig, checked: dict[str, str | None] | None = None) -> list[str]:
    """What is wrong with a run's training data, one line per dataset (key, name, what): each must resolve,
    parse, name files that exist, and decode (bench.data.manifest.check_dataset). `checked` remembers
    datasets across runs (a sweep checks each once)."""
    checked = {} if checked is None else checked
    out = []
    for key, name in source_of(cfg.data).training_datasets(cfg):
        if name not in checked:
            checked[name] = None
            try:
                check_dataset(name, cfg.data.manifest.on_error)
            except (ManifestError, RegistryError, OSError) as e:
                checked[name] = f"key '{key}', dataset {name!r}: {e}"
        if checked[name]:
            out.append(checked[name])
    return out
