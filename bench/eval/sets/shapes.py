"""The shapes world as eval sets: every task's items from a split's ground truth (bench/data/items.py).

`shapes` names the run's eval split (eval.split); `shapes:<split>` another one (val, test, novel).
At most eval.size items per task (0: the whole split); streams come from the world's stream generator.
"""

from __future__ import annotations

import numpy as np

from bench.data.items import (
    class_names,
    classification_items,
    hard_negatives,
    make_stream,
    retrieval_pairs,
    state_clip,
    vqa_items,
    world_items,
)
from bench.data.shapes import ShapesWorld, WorldClips
from bench.data.text import CLASS_PROMPTS
from bench.eval.sets.kinds import CaptioningSet, ChoiceSet, ClassificationSet, HardNegativeSet, RetrievalSet, Stream, StreamSet


class WorldStates(WorldClips):
    """The split's clips reduced to their first and last states (world prediction)."""

    def clip(self, i: int) -> np.ndarray:
        return state_clip(self.world, self.split, i)

    def identity(self) -> tuple:
        return (*super().identity(), "first_and_last_state")


def _count(world: ShapesWorld, split: str, size: int) -> int:
    return world.size(split) if size == 0 else min(size, world.size(split))


def shapes_set(task: str, name: str, world: ShapesWorld, split: str, size: int, streams: int):
    """The eval set of one task on one split of the world."""
    n = _count(world, split, size)
    clips = WorldClips(world, split)
    if task == "classification":
        items = classification_items(world, split, n)
        return ClassificationSet(name, clips, [it.answer for it in items], class_names(world.cfg.classes),
                                 tuple(CLASS_PROMPTS))
    if task == "retrieval":
        pairs = retrieval_pairs(world, split, n)
        return RetrievalSet(name, clips, [t for _, t in pairs], [i for i, _ in pairs])
    if task == "captioning":
        return CaptioningSet(name, clips, [list(world.references(split, i)) for i in range(n)])
    if task in ("vqa", "world"):
        items = vqa_items(world, split, n) if task == "vqa" else world_items(world, split, n)
        visuals = clips if task == "vqa" else WorldStates(world, split)
        return ChoiceSet(name, visuals, [it.index for it in items], [it.question for it in items],
                         [it.candidates for it in items], [it.answer for it in items], [it.kind for it in items])
    if task == "hardneg":
        items = hard_negatives(world, split, n)
        return HardNegativeSet(name, [h.caption for h in items], [h.positive for h in items],
                               [(h.negative,) for h in items], [h.kind for h in items])
    if task == "streaming":
        out = []
        for i in range(streams):
            s = make_stream(world, i)
            notes = [((a + b) / 2 / s.fps, list(refs)) for (a, b), refs in zip(s.segments, s.references)]
            out.append(Stream(lambda video=s.video: iter(video), s.fps, notes))
        return StreamSet(name, out)
    raise KeyError(f"no shapes-world eval set for task {task!r}")
