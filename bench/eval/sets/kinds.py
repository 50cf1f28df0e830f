"""The eval sets tasks read: one dataclass per kind of item, and the visuals (clips) they point at.

A task never sees where a set comes from: the shapes world and a dataset on disk give the same types.
Items point at visuals by index, so many questions can share one video (GQA, POPE) and the frozen
X-encoder's features of a set's visuals can be cached once, keyed by `Visuals.identity`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
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


class Subset:
    """Clips `keep` of another set's visuals, in order: a set with its unreadable clips left out. Its clips are
    the parent's, and so are its cached features (a task reads the parent's rows: bench/eval/tasks/common.py),
    so leaving clips out never builds a second cache."""

    def __init__(self, parent: Visuals, keep: Sequence[int]):
        self.parent, self.keep = parent, list(keep)

    def __len__(self) -> int:
        return len(self.keep)

    def clip(self, i: int) -> np.ndarray:
        return self.parent.clip(self.keep[i])

    def identity(self) -> tuple:
        return ("subset", *self.parent.identity(), ",".join(map(str, self.keep)))


def views_of(visuals: Visuals, clips: int, crops: int) -> list[Visuals]:
    """The views of a set's clips that a multi-view evaluation averages over (eval.views): those of clips read
    from files (their `views`: FileVisuals), a Subset's those of its parent in its rows; any other visuals (the
    shapes world renders one clip an item) have one view: themselves, as with 1 clip x 1 crop."""
    if (clips, crops) == (1, 1):
        return [visuals]
    if isinstance(visuals, Subset):
        return [Subset(v, visuals.keep) for v in views_of(visuals.parent, clips, crops)]
    views = getattr(visuals, "views", None)
    return views(clips, crops) if views is not None else [visuals]


def without(evalset: EvalSet, bad: Collection[int]) -> tuple[EvalSet, list[int]]:
    """(the set without clips `bad` and every item of theirs, the original index of each item kept). A retrieval
    set drops the videos and their texts (the gallery shrinks with them); a set of questions drops those about
    them. Sets without clips, and sets with none bad, are returned as they are."""
    if not bad or not hasattr(evalset, "visuals"):
        return evalset, list(range(items_of(evalset)))
    keep = [i for i in range(len(evalset.visuals)) if i not in bad]
    new = {old: j for j, old in enumerate(keep)}  # renumbered clips
    visuals = Subset(evalset.visuals, keep)
    if isinstance(evalset, ClassificationSet):
        return (ClassificationSet(evalset.name, visuals, [evalset.labels[i] for i in keep], evalset.class_names,
                                  evalset.templates), keep)
    if isinstance(evalset, CaptioningSet):
        return CaptioningSet(evalset.name, visuals, [evalset.references[i] for i in keep]), keep
    if isinstance(evalset, RetrievalSet):
        texts = [j for j, v in enumerate(evalset.text_video) if v in new]
        return (RetrievalSet(evalset.name, visuals, [evalset.texts[j] for j in texts],
                             [new[evalset.text_video[j]] for j in texts]), texts)
    if isinstance(evalset, ChoiceSet):
        items = [j for j, v in enumerate(evalset.visual) if v in new]
        return (ChoiceSet(evalset.name, visuals, [new[evalset.visual[j]] for j in items],
                          *([seq[j] for j in items] for seq in (evalset.questions, evalset.candidates,
                                                                evalset.answers, evalset.kinds))), items)
    raise TypeError(f"eval set {evalset.name!r}: cannot leave clips out of a {type(evalset).__name__}")



def items_of(evalset: EvalSet) -> int:
    """The items a task scores in a set (retrieval: its texts, each a query)."""
    for attr in ("labels", "texts", "references", "answers", "anchors", "streams"):
        if hasattr(evalset, attr):
            return len(getattr(evalset, attr))
    return 0
