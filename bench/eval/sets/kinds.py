"""The eval sets tasks read: one dataclass per kind of item, and the visuals (clips) they point at.

A task never sees where a set comes from: the shapes world and a dataset on disk give the same types.
Items point at visuals by index, so many questions can share one video (GQA, POPE) and the frozen
X-encoder's features of a set's visuals can be cached once, keyed by `Visuals.identity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Visuals(Protocol):
    """Clips of one set: (T, H, W, 3) uint8 each, all of one shape."""

    def __len__(self) -> int: ...

    def clip(self, i: int) -> np.ndarray: ...

    def identity(self) -> tuple:
        """What the clips depend on (content, frames, size): the feature cache's key."""


@dataclass(frozen=True)
class ClassificationSet:
    """Clip i is of class labels[i]; each class name is scored in every template ("a video of {}.")."""

    name: str
    visuals: Visuals
    labels: Sequence[int]
    class_names: Sequence[str]
    templates: Sequence[str] = ("{}",)


@dataclass(frozen=True)
class RetrievalSet:
    """Texts and the clip each describes (several texts may describe one clip)."""

    name: str
    visuals: Visuals
    texts: Sequence[str]
    text_video: Sequence[int]

    @property
    def n_videos(self) -> int:
        """The gallery: clips 0 .. n-1, every one described by at least one text."""
        return max(self.text_video, default=-1) + 1


@dataclass(frozen=True)
class CaptioningSet:
    """Clip i and its reference captions."""

    name: str
    visuals: Visuals
    references: Sequence[Sequence[str]]


@dataclass(frozen=True)
class ChoiceSet:
    """Multiple-choice items (discriminative VQA, world prediction): item j asks questions[j] about
    clip visual[j]; answers[j] indexes candidates[j]; kinds[j] groups items in per-kind scores."""

    name: str
    visuals: Visuals
    visual: Sequence[int]
    questions: Sequence[str]
    candidates: Sequence[tuple[str, ...]]
    answers: Sequence[int]
    kinds: Sequence[str]

    def __len__(self) -> int:
        return len(self.answers)


@dataclass(frozen=True)
class HardNegativeSet:
    """Text only: is each anchor closer to its positive than to every one of its negatives?"""

    name: str
    anchors: Sequence[str]
    positives: Sequence[str]
    negatives: Sequence[tuple[str, ...]]
    kinds: Sequence[str]

    def encoded_texts(self) -> list[str]:
        """Every text the task encodes: what a frozen Y-encoder's cache can hold before an evaluation."""
        return [*self.anchors, *self.positives, *(t for ns in self.negatives for t in ns)]


@dataclass(frozen=True)
class Stream:
    """A long video read in order at `fps` frames per second, and its time-stamped annotations: each a
    time in seconds and the reference captions of what happens then."""

    frames: Callable[[], Iterator[np.ndarray]]
    fps: float
    annotations: Sequence[tuple[float, Sequence[str]]]


@dataclass(frozen=True)
class StreamSet:
    name: str
    streams: Sequence[Stream] = field(default_factory=list)


EvalSet = ClassificationSet | RetrievalSet | CaptioningSet | ChoiceSet | HardNegativeSet | StreamSet
