"""Settings of the data: the shapes world, the manifest reader and the training mix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ShapesConfig:
    """The procedural shapes world. The world itself is fixed by world_seed, like a real data set;
    a run's own seed only changes the order of samples and the paraphrase each one draws."""

    world_seed: int = 0
    frames: int = field(default=8, metadata={"ge": 2})
    size: int = field(default=64, metadata={"ge": 16, "help": "frame height and width in pixels"})
    min_objects: int = field(default=1, metadata={"ge": 1, "le": 3})
    max_objects: int = field(default=3, metadata={"ge": 1, "le": 3})
    event_prob: float = field(default=0.25, metadata={"ge": 0.0, "le": 1.0, "help": "chance of a light event"})
    paraphrases: int = field(default=5, metadata={"ge": 1, "help": "reference texts per clip"})
    classes: Literal["colour_motion", "shape_motion"] = field(
        default="colour_motion",
        metadata={"help": "classification labels: the actor's colour or shape, with its motion. The tiny preset's "
                          "random frozen encoder carries no shape a probe can find (docs/results.md)"})
    held_out_combos: int = field(default=4, metadata={"ge": 0, "help": "shape-colour pairs seen only in the novel split"})
    train_size: int = field(default=10000, metadata={"ge": 1})
    val_size: int = field(default=400, metadata={"ge": 1})
    test_size: int = field(default=400, metadata={"ge": 1})
    novel_size: int = field(default=200, metadata={"ge": 1})
    fps: float = field(default=4.0, metadata={"gt": 0.0, "help": "frames per second, for streams"})

    def check(self) -> None:
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects={self.min_objects} is above max_objects={self.max_objects}")


@dataclass
class ManifestConfig:
    """Real data: a JSONL manifest of {video|image, query, target, candidates?, label?}."""

    path: str = ""
    frames: int = field(default=16, metadata={"ge": 1})
    size: int = field(default=256, metadata={"ge": 16})
    on_error: Literal["fail", "skip"] = field(default="fail", metadata={"help": "a bad line or file: stop, or skip and count"})


@dataclass
class MixtureEntry:
    """One training dataset of a mixture and its share of the samples."""

    name: str = field(default="", metadata={"help": "a dataset-registry name, a dataset folder, a manifest .jsonl, "
                                                    "or a folder or glob of tar shards"})
    weight: float = field(default=1.0, metadata={"gt": 0.0, "help": "relative share of the samples"})

    def check(self) -> None:
        if not self.name:
            raise ValueError("a mixture entry needs a 'name'")


@dataclass
class DataConfig:
    source: Literal["shapes", "manifest"] = "shapes"
    stage: Literal["pretrain", "sft"] = field(
        default="pretrain", metadata={"help": "pretrain: query-free captions; sft: the query-conditioned mix"}
    )
    sft_mix: dict[str, float] = field(
        default_factory=lambda: {"caption": 1.0, "classification": 1.0, "vqa": 1.0},
        metadata={"help": "relative weights of the SFT item kinds"},
    )
    shapes: ShapesConfig = field(default_factory=ShapesConfig)
    manifest: ManifestConfig = field(default_factory=ManifestConfig)
    mixture: list[MixtureEntry] = field(default_factory=list, metadata={
        "identity": "unless_default",
        "help": "real training data as a weighted mixture of datasets (replaces manifest.path; a stage may set "
                "its own: train.stages[i].datasets)"})
    num_workers: int = field(default=0, metadata={"ge": 0, "identity": False})
    cache: bool = field(default=True, metadata={"help": "train on cached frozen X features and Y targets (bench/cache.py)"})

    def check(self) -> None:
        unknown = set(self.sft_mix) - {"caption", "classification", "vqa"}
        if unknown:
            raise ValueError(f"sft_mix has unknown kinds {sorted(unknown)}; expected caption, classification, vqa")
        if any(w < 0 for w in self.sft_mix.values()) or sum(self.sft_mix.values()) <= 0:
            raise ValueError(f"sft_mix weights must be >= 0 with a positive sum, got {self.sft_mix}")
        if self.source == "manifest" and not (self.manifest.path or self.mixture):
            raise ValueError("source is 'manifest' but neither manifest.path nor mixture names any data")
