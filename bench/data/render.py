"""Numpy rendering of a scene into frames: (T, H, W, 3) uint8, deterministic, vectorised over time."""

from __future__ import annotations

import numpy as np

from bench.data.world import COLOURS, Obj, Scene

BACKGROUND = np.array([38, 40, 46], dtype=np.float32)
DIM = 0.22  # brightness when the light is out
_RADIUS = {"small": 0.11, "large": 0.17}  # of the frame size
_TRAVEL = 0.34  # of the frame size, over the whole clip
_GROW, _SHRINK, _SPIN = 1.6, 0.55, np.pi * 0.75


def object_track(o: Obj, t: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Centre x, y, radius and angle at times t in [0, 1]."""
    cx = np.full_like(t, o.x * size)
    cy = np.full_like(t, o.y * size)
    r = np.full_like(t, _RADIUS[o.size] * size)
    ang = np.full_like(t, o.angle)
    step = _TRAVEL * size * t
    if o.motion == "left":
        cx = cx - step
    elif o.motion == "right":
        cx = cx + step
    elif o.motion == "up":
        cy = cy - step
    elif o.motion == "down":
        cy = cy + step
    elif o.motion == "grow":
        r = r * (1 + (_GROW - 1) * t)
    elif o.motion == "shrink":
        r = r * (1 + (_SHRINK - 1) * t)
    elif o.motion == "rotate":
        ang = ang + _SPIN * t
    return cx, cy, r, ang


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Inside-test in the object's own rotated frame (u, v); r broadcasts over (T, 1, 1)."""
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "square":
        s = 0.8 * r
        return (np.abs(u) <= s) & (np.abs(v) <= s)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= r
    if shape == "cross":
        w = 0.33 * r
        return ((np.abs(u) <= w) & (np.abs(v) <= r)) | ((np.abs(u) <= r) & (np.abs(v) <= w))
    if shape == "triangle":  # equilateral, pointing up in its own frame
        return (v <= 0.5 * r) & (np.sqrt(3) * u - v <= r) & (-np.sqrt(3) * u - v <= r)
    if shape == "star":
        theta = np.arctan2(v, u)
        rho = np.sqrt(u * u + v * v)
        return rho <= r * (0.62 + 0.38 * np.cos(5 * theta))
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, frames: int, size: int) -> np.ndarray:
    """The clip as (frames, size, size, 3) uint8."""
    t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None]
    grid = np.arange(size, dtype=np.float32) + 0.5
    ys, xs = grid[None, :, None], grid[None, None, :]
    img = np.broadcast_to(BACKGROUND, (frames, size, size, 3)).copy()
    for o in reversed(scene.objects):  # the actor is drawn last, on top
        cx, cy, r, ang = object_track(o, t, size)
        dx, dy = xs - cx, ys - cy
        c, s = np.cos(ang), np.sin(ang)
        u, v = c * dx + s * dy, -s * dx + c * dy
        mask = shape_mask(o.shape, u, v, r)
        img[mask] = np.asarray(COLOURS[o.colour], dtype=np.float32)
    if scene.event != "none":
        switch = t[:, 0, 0] >= scene.event_at
        dark = switch if scene.event == "light_off" else ~switch
        img[dark] *= DIM
    return img.astype(np.uint8)
