"""Evaluation items of the shapes world, every one derived from a scene's ground truth.

- classification: the actor's (shape, motion) among every action class, named in text;
- retrieval: a clip and one of its paraphrases;
- discriminative VQA: colour, shape, counting, existence (POPE-like adversarial negatives), motion;
- world prediction: the first and last state only -> which action happened;
- hard negatives (text only): a caption, a paraphrase of it, and a caption that swaps one attribute
  or relation (SugarCrepe-like);
- streams: concatenated segments of different actions with their boundaries and captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bench.data.render import render
from bench.data.text import (
    COLOUR_WORDS,
    MOTION_WORDS,
    NUMBER_WORDS,
    QUESTIONS,
    SHAPE_WORDS,
    YES_NO,
    caption,
    class_name,
    motion_answer,
    paraphrases,
)
from bench.data.world import COLOURS, MOTIONS, OPPOSITE_MOTION, SHAPES, SPLITS, Obj, Scene, action_classes, sample_scene

if TYPE_CHECKING:  # a type only: bench.data.shapes imports this module
    from bench.data.shapes import ShapesWorld

VQA_TYPES = ("colour", "shape", "counting", "existence", "motion")


@dataclass(frozen=True)
class ChoiceItem:
    """A clip (split, index), a question (may be empty) and candidate answers, one of them correct."""

    split: str
    index: int
    question: str
    candidates: tuple[str, ...]
    answer: int
    kind: str = ""


def class_names(classes: str = "colour_motion") -> list[str]:
    return [class_name(label) for label in action_classes(classes)]


def classification_items(world: ShapesWorld, split: str, n: int) -> list[ChoiceItem]:
    kind = world.cfg.classes
    names, labels = tuple(class_names(kind)), action_classes(kind)
    return [ChoiceItem(split, i, "", names, labels.index(world.scene(split, i).action(kind)), "classification")
            for i in range(min(n, world.size(split)))]


def retrieval_pairs(world: ShapesWorld, split: str, n: int) -> list[tuple[int, str]]:
    """(clip index, text): a paraphrase other than the canonical caption when there is one."""
    out = []
    for i in range(min(n, world.size(split))):
        refs = world.references(split, i)
        out.append((i, refs[1] if len(refs) > 1 else refs[0]))
    return out


def _unique(scene: Scene, attr: str) -> list[Obj]:
    """Objects whose value of attr no other object in the scene shares (so a question is unambiguous)."""
    values = [getattr(o, attr) for o in scene.objects]
    return [o for o in scene.objects if values.count(getattr(o, attr)) == 1]


def vqa_item(scene: Scene, rng: np.random.Generator, qtype: str | None = None,
             split: str = "", index: int = -1) -> ChoiceItem:
    """One question about the scene; qtype None draws one of the types the scene can answer."""
    types = [t for t in VQA_TYPES
             if not (t == "colour" and not _unique(scene, "shape"))
             and not (t == "shape" and not _unique(scene, "colour"))]
    qtype = qtype or types[int(rng.integers(len(types)))]
    if qtype == "colour":
        o = _unique(scene, "shape")[int(rng.integers(len(_unique(scene, "shape"))))]
        q = QUESTIONS["colour"].format(shape=SHAPE_WORDS[o.shape][0])
        cands, ans = tuple(COLOURS), list(COLOURS).index(o.colour)
    elif qtype == "shape":
        o = _unique(scene, "colour")[int(rng.integers(len(_unique(scene, "colour"))))]
        q = QUESTIONS["shape"].format(colour=COLOUR_WORDS[o.colour][0])
        cands, ans = SHAPES, SHAPES.index(o.shape)
    elif qtype == "counting":
        q, cands, ans = QUESTIONS["counting"], tuple(NUMBER_WORDS[1:]), len(scene.objects) - 1
    elif qtype == "existence":
        present = {(o.shape, o.colour) for o in scene.objects}
        if rng.random() < 0.5:
            shape, colour = sorted(present)[int(rng.integers(len(present)))]
            ans = 0
        else:  # adversarial: shares the shape or the colour of an object that is there
            base = scene.objects[int(rng.integers(len(scene.objects)))]
            options = [(base.shape, c) for c in COLOURS] + [(s, base.colour) for s in SHAPES]
            options = [p for p in options if p not in present]
            shape, colour = options[int(rng.integers(len(options)))]
            ans = 1
        q = QUESTIONS["existence"].format(colour=COLOUR_WORDS[colour][0], shape=SHAPE_WORDS[shape][0])
        cands = tuple(YES_NO)
    elif qtype == "motion":
        o = scene.actor
        q = QUESTIONS["motion"].format(colour=COLOUR_WORDS[o.colour][0], shape=SHAPE_WORDS[o.shape][0])
        cands = tuple(MOTION_WORDS[m][0] for m in MOTIONS)
        ans = cands.index(motion_answer(o))
    else:
        raise ValueError(f"unknown VQA type {qtype!r}; expected one of {VQA_TYPES}")
    return ChoiceItem(split, index, q, cands, ans, qtype)


def vqa_items(world: ShapesWorld, split: str, n: int) -> list[ChoiceItem]:
    """n items cycling through the question types, each about its own clip."""
    items = []
    for i in range(min(n, world.size(split))):
        rng = np.random.default_rng([world.cfg.world_seed, SPLITS[split], i, 5])
        scene = world.scene(split, i)
        qtype = VQA_TYPES[i % len(VQA_TYPES)]
        if qtype == "colour" and not _unique(scene, "shape") or qtype == "shape" and not _unique(scene, "colour"):
            qtype = "counting"
        items.append(vqa_item(scene, rng, qtype, split, i))
    return items


def world_items(world: ShapesWorld, split: str, n: int) -> list[ChoiceItem]:
    """Which action led from the first state to the last? Candidates: the actor doing each motion."""
    items = []
    for i in range(min(n, world.size(split))):
        a = world.scene(split, i).actor
        motions = [m for m in MOTIONS if not (a.shape == "circle" and m == "rotate")]
        np_ = f"the {COLOUR_WORDS[a.colour][0]} {SHAPE_WORDS[a.shape][0]}"
        cands = tuple(f"{np_} {MOTION_WORDS[m][0]}" for m in motions)
        items.append(ChoiceItem(split, i, "", cands, motions.index(a.motion), "world"))
    return items


def state_clip(world: ShapesWorld, split: str, index: int) -> np.ndarray:
    """The clip reduced to its first and last states: the first frame for the first half, then the last."""
    clip = world.clip(split, index)
    T = clip.shape[0]
    return np.concatenate([np.repeat(clip[:1], T // 2, 0), np.repeat(clip[-1:], T - T // 2, 0)])


@dataclass(frozen=True)
class HardNegative:
    caption: str
    positive: str  # a paraphrase: same meaning, other words
    negative: str  # one attribute or relation swapped: other meaning, mostly the same words
    kind: str  # "colour", "shape" or "motion"


def hard_negatives(world: ShapesWorld, split: str, n: int) -> list[HardNegative]:
    out = []
    for i in range(min(n, world.size(split))):
        scene, refs = world.scene(split, i), world.references(split, i)
        if len(refs) < 2:
            raise ValueError("hard negatives need data.shapes.paraphrases >= 2")
        rng = np.random.default_rng([world.cfg.world_seed, SPLITS[split], i, 9])
        kind = ("colour", "shape", "motion")[i % 3]
        a = scene.actor
        if kind == "colour":
            swapped = [c for c in COLOURS if c != a.colour][int(rng.integers(len(COLOURS) - 1))]
            new = Obj(a.shape, swapped, a.size, a.x, a.y, a.motion, a.angle)
        elif kind == "shape":
            options = [s for s in SHAPES if s != a.shape and not (s == "circle" and a.motion == "rotate")]
            new = Obj(options[int(rng.integers(len(options)))], a.colour, a.size, a.x, a.y, a.motion, a.angle)
        else:
            new = Obj(a.shape, a.colour, a.size, a.x, a.y, OPPOSITE_MOTION[a.motion], a.angle)
        negative = caption(Scene((new, *scene.objects[1:]), scene.event, scene.event_at))
        out.append(HardNegative(refs[0], refs[1], negative, kind))
    return out


@dataclass
class Stream:
    """A long clip of consecutive segments, each a different action."""

    video: np.ndarray  # (T_total, H, W, 3) uint8
    boundaries: list[int]  # the first frame of every segment after the first
    references: list[list[str]]  # per segment: canonical caption and paraphrases
    fps: float

    @property
    def segments(self) -> list[tuple[int, int]]:
        edges = [0, *self.boundaries, len(self.video)]
        return list(zip(edges[:-1], edges[1:]))


def make_stream(world: ShapesWorld, index: int, segments: tuple[int, int] = (4, 8),
                segment_frames: tuple[int, int] = (12, 28)) -> Stream:
    """Stream ``index``: between segments[0] and segments[1] segments of segment_frames frames each;
    consecutive segments differ in their action."""
    c = world.cfg
    rng = np.random.default_rng([c.world_seed, SPLITS["stream"], index])
    n = int(rng.integers(segments[0], segments[1] + 1))
    clips, refs, bounds, prev, t = [], [], [], None, 0
    for _ in range(n):
        motion = [m for m in MOTIONS if m != prev][int(rng.integers(len(MOTIONS) - (prev is not None)))]
        scene = sample_scene(rng, c.min_objects, c.max_objects, 0.0, world.held_out, actor_motion=motion)
        length = int(rng.integers(segment_frames[0], segment_frames[1] + 1))
        clips.append(render(scene, length, c.size))
        refs.append(paraphrases(scene, c.paraphrases, rng))
        if t:
            bounds.append(t)
        t += length
        prev = motion
    return Stream(np.concatenate(clips), bounds, refs, c.fps)
