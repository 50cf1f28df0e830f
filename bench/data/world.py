"""The shapes world's ground truth: what a scene holds, drawn deterministically from a seed.

A scene has one *actor* that performs a motion and up to two still *distractors*; a scene may
also have a light event. Everything the tasks ask about (captions, classes, questions, states)
is derived from this ground truth, never from pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 185, 70),
    "blue": (55, 95, 235),
    "yellow": (235, 215, 45),
    "purple": (155, 65, 210),
    "orange": (245, 145, 35),
}
SIZES = ("small", "large")
MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "rotate", "still")
EVENTS = ("none", "light_off", "light_on")
OPPOSITE_MOTION = {"left": "right", "right": "left", "up": "down", "down": "up",
                   "grow": "shrink", "shrink": "grow", "rotate": "still", "still": "rotate"}

SPLITS = {"train": 0, "val": 1, "test": 2, "novel": 3, "stream": 4}


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    x: float  # start centre, as a fraction of the frame
    y: float
    motion: str
    angle: float  # start orientation, radians


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]  # objects[0] is the actor; the others stay still
    event: str
    event_at: float  # fraction of the clip at which the light changes

    @property
    def actor(self) -> Obj:
        return self.objects[0]

    def action(self, classes: str = "colour_motion") -> tuple[str, str]:
        """The classification label: the actor's colour (or shape) and its motion."""
        return (self.actor.colour if classes == "colour_motion" else self.actor.shape), self.actor.motion


CLASS_SETS = ("colour_motion", "shape_motion")


def action_classes(classes: str = "colour_motion") -> list[tuple[str, str]]:
    """Every label a scene can show: (colour, motion) pairs, or (shape, motion) pairs without the
    rotating circle (it looks still)."""
    if classes == "colour_motion":
        return [(c, m) for c in COLOURS for m in MOTIONS]
    if classes == "shape_motion":
        return [(s, m) for s in SHAPES for m in MOTIONS if not (s == "circle" and m == "rotate")]
    raise ValueError(f"unknown class set {classes!r}; expected one of {CLASS_SETS}")


def held_out_combos(world_seed: int, n: int) -> frozenset[tuple[str, str]]:
    """(shape, colour) pairs reserved for the novel split: no object of other splits has one."""
    pairs = [(s, c) for s in SHAPES for c in COLOURS]
    rng = np.random.default_rng([world_seed, 977])
    idx = rng.choice(len(pairs), size=min(n, len(pairs) - 1), replace=False)
    return frozenset(pairs[i] for i in idx)


_TILT = 0.15  # radians: the largest start orientation either way

# where a moving object may start so that its path stays inside the frame
_START = {"left": ((0.58, 0.78), (0.2, 0.8)), "right": ((0.22, 0.42), (0.2, 0.8)),
          "up": ((0.2, 0.8), (0.58, 0.78)), "down": ((0.2, 0.8), (0.22, 0.42))}


def sample_scene(rng: np.random.Generator, min_objects: int, max_objects: int, event_prob: float,
                 excluded: frozenset[tuple[str, str]], required: frozenset[tuple[str, str]] | None = None,
                 actor_motion: str | None = None) -> Scene:
    """Draw a scene. ``excluded`` (shape, colour) pairs never appear; with ``required`` the actor's
    pair is drawn from it (the novel split)."""
    n = int(rng.integers(min_objects, max_objects + 1))
    actor_motion = actor_motion or MOTIONS[int(rng.integers(len(MOTIONS)))]
    if required and actor_motion == "rotate" and all(s == "circle" for s, _ in required):
        actor_motion = "still"
    objects: list[Obj] = []
    used: set[tuple[str, str]] = set()
    for k in range(n):
        motion = actor_motion if k == 0 else "still"
        for _ in range(200):
            if k == 0 and required:
                shape, colour = sorted(required)[int(rng.integers(len(required)))]
            else:
                shape = SHAPES[int(rng.integers(len(SHAPES)))]
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            if (shape, colour) in excluded or (shape, colour) in used:
                continue
            if shape == "circle" and motion == "rotate":  # a spinning circle looks still
                continue
            break
        else:
            raise ValueError(f"no (shape, colour) pair is left for a {motion} object; hold out fewer combos")
        used.add((shape, colour))
        size = SIZES[int(rng.integers(len(SIZES)))]
        (x0, x1), (y0, y1) = _START.get(motion, ((0.25, 0.75), (0.25, 0.75)))
        for _ in range(50):  # keep objects apart at the start
            x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
            if all((x - o.x) ** 2 + (y - o.y) ** 2 > 0.3**2 for o in objects):
                break
        # near upright: a square turned by 45 degrees would be a diamond
        objects.append(Obj(shape, colour, size, x, y, motion, float(rng.uniform(-_TILT, _TILT))))
    event = "none"
    if rng.random() < event_prob:
        event = ("light_off", "light_on")[int(rng.integers(2))]
    return Scene(tuple(objects), event, float(rng.uniform(0.3, 0.7)))
