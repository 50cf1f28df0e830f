"""Which eval sets a run evaluates on, where they live, and whether they are all there.

`eval.sets` names, per task, one or more eval sets:
- `shapes`, or `shapes:<split>`: the shapes world (bench/evalsets/shapes.py);
- a name in the dataset registry (bench/data/registry.py: names -> dataset folders, set once a cluster);

- a path to a dataset folder (anything with a '/').

A task that `eval.sets` leaves out reads `shapes` when the training data is the shapes world; with any
other training data it is an error, so that a run never ends with an empty evals.jsonl. `validate`
resolves and reads every set (annotations parsed, every media file checked) before anything is built
or submitted; its errors name the config, the key, the set and the missing path.
"""

from __future__ import annotations

import functools
from pathlib import Path

from bench.data.registry import RegistryError, load_registry, registry_file
from bench.data.shapes import ShapesWorld
from bench.evalsets.disk import DatasetError, disk_set, limit
from bench.evalsets.shapes import shapes_set

SHAPES = "shapes"


class EvalSetError(ValueError):
    """An eval set that cannot be used; the message names where it was asked for and what is wrong."""


def planned(cfg) -> dict[str, list[str]]:
    """Task -> the names of its eval sets, for every task the run evaluates."""
    out = {}
    for task in cfg.eval.tasks:
        names = cfg.eval.sets.get(task)
        if not names:
            if cfg.data.source != "shapes":
                raise EvalSetError(
                    f"key 'eval.sets.{task}': task {task!r} has no eval set; the training data is "
                    f"{cfg.data.source!r}, not the shapes world, so name its datasets (registry "
                    f"{registry_file()}, formats in docs/data.md)")
            names = [SHAPES]
        out[task] = list(names)
    return out


def clip_shape(cfg) -> tuple[int, int]:
    """(frames, size) of a clip as the run's X-encoder reads it."""
    src = cfg.data.shapes if cfg.data.source == "shapes" else cfg.data.manifest
    return src.frames, src.size


def locate(name: str, registry: dict[str, Path]) -> Path | str:
    """A set name -> 'shapes:<split>' or a dataset folder."""
    if name == SHAPES or name.startswith(SHAPES + ":"):
        return name
    if name in registry:
        return registry[name]
    if "/" in name or name.startswith("."):
        return Path(name).expanduser().resolve()
    known = ", ".join(sorted(registry)) or "none"
    raise EvalSetError(f"eval set {name!r} is not in the dataset registry {registry_file()} (known: {known}), "
                       f"nor 'shapes[:split]', nor a folder path")


@functools.lru_cache(maxsize=256)
def _read(task: str, name: str, folder: Path, frames: int, size: int, stamp: float):
    return disk_set(task, name, folder, frames, size)


def _disk(task: str, name: str, folder: Path, frames: int, size: int):
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist")
    spec = folder / "dataset.yaml"
    stamp = spec.stat().st_mtime if spec.is_file() else 0.0
    return _read(task, name, folder, frames, size, stamp)


def load_sets(cfg, world=None) -> dict[str, list]:
    """Task -> its eval sets, read (from the world or from disk) and cut to eval.size items (or the task's
    eval.task_size). The shapes world's split must hold them: asking for more is an error, not fewer items."""

    registry = load_registry()
    frames, size = clip_shape(cfg)
    out: dict[str, list] = {}
    for task, names in planned(cfg).items():
        sets = []
        for name in names:
            where = locate(name, registry)
            if isinstance(where, str):
                split = where.partition(":")[2] or cfg.eval.split
                if split not in ("val", "test", "novel"):
                    raise EvalSetError(f"eval set {name!r}: unknown split {split!r}; expected val, test or novel")
                if world is None:
                    if cfg.data.source != "shapes":
                        raise EvalSetError(f"eval set {name!r} is the shapes world, but data.source is "
                                           f"{cfg.data.source!r}: its clips would not match the X-encoder's input")

                    world = ShapesWorld(cfg.data.shapes)
                n = cfg.eval.items(task)
                if n > world.size(split):
                    key = "eval.size" if task not in cfg.eval.task_size else f"eval.task_size.{task}"
                    raise EvalSetError(f"eval set {name!r} of task {task}: {key}={n} asks for more items than the "
                                       f"shapes world's {split} split holds (data.shapes.{split}_size="
                                       f"{world.size(split)}); raise data.shapes.{split}_size to at least {n}")
                sets.append(shapes_set(task, name, world, split, n, cfg.eval.streams))
            else:
                sets.append(limit(_disk(task, name, where, frames, size), cfg.eval.items(task)))
        out[task] = sets
    return out


def validate(cfg, where: str = "") -> None:
    """Every eval set of the run resolves and reads; raises one EvalSetError naming, for each set that does
    not, the config, the key, the set and the path."""
    prefix = f"{where}: " if where else ""
    try:
        plan = planned(cfg)
        registry = load_registry()
    except (EvalSetError, RegistryError) as e:
        raise EvalSetError(prefix + str(e)) from None
    frames, size = clip_shape(cfg)
    problems = []
    for task, names in plan.items():
        for name in names:
            key = f"key 'eval.sets.{task}', set {name!r}"
            try:
                found = locate(name, registry)
                if isinstance(found, str):
                    if cfg.data.source != "shapes":
                        raise EvalSetError(f"the shapes world, but data.source is {cfg.data.source!r}")
                    continue
                if not found.is_dir():
                    via = f" (registry {registry_file()})" if name in registry else ""
                    raise EvalSetError(f"dataset folder {found} does not exist{via}")
                _disk(task, name, found, frames, size)
            except (EvalSetError, DatasetError) as e:
                problems.append(f"{prefix}{key}: {e}")
    if problems:
        raise EvalSetError("\n  - ".join(problems))
