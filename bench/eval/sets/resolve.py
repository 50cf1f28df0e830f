"""Which eval sets a run evaluates on, where they live, and whether they are all there.

`eval.sets` names, per task, one or more eval sets:
- `shapes`, or `shapes:<split>`: the shapes world (bench/eval/sets/shapes.py);
- a name in the dataset registry (bench/data/datasets.py: names -> dataset folders, set once a cluster);
- a path to a dataset folder (anything with a '/').

A task that `eval.sets` leaves out reads its data source's default set (`shapes` for the shapes world); a
source with none (datasets on disk) makes it an error, so that a run never ends with an empty evals.jsonl.
`resolve` is the one resolution pass: `validate` reads every set it finds (annotations parsed, every
media file checked, a sample of its clips decoded) before anything is built or submitted, and `load_sets`
reads them for a run; errors name the config, the key, the set and the missing path or unreadable file.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.data.datasets import DatasetError, RegistryError, load_registry, registry_file, resolve_name
from bench.data.sources import source_of
from bench.eval.sets import micro  # noqa: F401  registers the builtin:micro_* datasets (paper_micro.yaml)
from bench.eval.sets.disk import disk_set, limit
from bench.eval.sets.media import probe_picks, unreadable_sample
from bench.eval.sets.shapes import shapes_set

SHAPES = "shapes"
SPLITS = ("val", "test", "novel")


class EvalSetError(ValueError):
    """An eval set that cannot be used; the message names where it was asked for and what is wrong."""


@dataclass(frozen=True)
class PlannedSet:
    """One eval set of one task, resolved: the shapes world's split, or a dataset folder."""

    task: str
    name: str
    split: str | None  # the shapes world's split; None for a folder
    folder: Path | None  # the dataset folder; None for the shapes world
    via_registry: bool = False

    @property
    def key(self) -> str:
        return f"key 'eval.sets.{self.task}', set {self.name!r}"


def planned(cfg) -> dict[str, list[str]]:
    """Task -> the names of its eval sets, for every task the run evaluates."""
    out = {}
    for task in cfg.eval.tasks:
        names = cfg.eval.sets.get(task)
        if not names:
            default = source_of(cfg.data).default_eval_set
            if default is None:
                raise EvalSetError(
                    f"key 'eval.sets.{task}': task {task!r} has no eval set; the training data is "
                    f"{cfg.data.source!r}, not the shapes world, so name its datasets (registry "
                    f"{registry_file()}, formats in docs/data.md)")
            names = [default]
        out[task] = list(names)
    return out


def clip_shape(cfg) -> tuple[int, int]:
    """(frames, size) of a clip as the run's X-encoder reads it."""
    return source_of(cfg.data).clip_shape(cfg.data)


def locate(task: str, name: str, registry: dict[str, Path], default_split: str) -> PlannedSet:
    """A set name -> where it is (the shapes world's split, or a dataset folder)."""
    if name == SHAPES or name.startswith(SHAPES + ":"):
        split = name.partition(":")[2] or default_split
        if split not in SPLITS:
            raise EvalSetError(f"eval set {name!r}: unknown split {split!r}; expected val, test or novel")
        return PlannedSet(task, name, split, None)
    folder = resolve_name(name, registry)
    if folder is None:
        known = ", ".join(sorted(registry)) or "none"
        raise EvalSetError(f"eval set {name!r} is not in the dataset registry {registry_file()} (known: {known}), "
                           f"nor 'shapes[:split]', nor a folder path")
    in_registry = name in registry
    return PlannedSet(task, name, None, folder if in_registry else folder.resolve(), via_registry=in_registry)


def resolve(cfg, where: str = "") -> list[PlannedSet]:
    """Every eval set of the run, resolved; one EvalSetError names every set that does not resolve."""
    found, problems = _resolve(cfg, f"{where}: " if where else "")
    if problems:
        raise EvalSetError("\n  - ".join(problems))
    return found


def _resolve(cfg, prefix: str) -> tuple[list[PlannedSet], list[str]]:
    """(the sets that resolve, a line for each that does not)."""
    try:
        plan = planned(cfg)
        registry = load_registry()
    except (EvalSetError, RegistryError) as e:
        raise EvalSetError(prefix + str(e)) from None
    out, problems = [], []
    for task, names in plan.items():
        for name in names:
            try:
                out.append(locate(task, name, registry, cfg.eval.split))
            except EvalSetError as e:
                problems.append(f"{prefix}key 'eval.sets.{task}', set {name!r}: {e}")
    return out, problems


@functools.lru_cache(maxsize=256)
def _read(task: str, name: str, folder: Path, frames: int, size: int, stamp: float):
    return disk_set(task, name, folder, frames, size)


def _disk(s: PlannedSet, frames: int, size: int):
    if not s.folder.is_dir():
        via = f" (registry {registry_file()})" if s.via_registry else ""
        raise DatasetError(f"dataset folder {s.folder} does not exist{via}")
    return _read(s.task, s.name, s.folder, frames, size, _stamp(s.folder))


def _stamp(folder: Path) -> float:
    """dataset.yaml's modification time: a set read (or probed) before it changed is read again."""
    spec = folder / "dataset.yaml"
    return spec.stat().st_mtime if spec.is_file() else 0.0


def _shapes(cfg, s: PlannedSet, world):
    n = cfg.eval.items(s.task)
    if n > world.size(s.split):
        key = "eval.size" if s.task not in cfg.eval.task_size else f"eval.task_size.{s.task}"
        raise EvalSetError(f"eval set {s.name!r} of task {s.task}: {key}={n} asks for more items than the "
                           f"shapes world's {s.split} split holds (data.shapes.{s.split}_size="
                           f"{world.size(s.split)}); raise data.shapes.{s.split}_size to at least {n}")
    return shapes_set(s.task, s.name, world, s.split, n, cfg.eval.streams)


def load_sets(cfg, world=None) -> dict[str, list]:
    """Task -> its eval sets, read (from the world or from disk) and cut to eval.size items (or the task's
    eval.task_size). The shapes world's split must hold them: asking for more is an error, not fewer items."""
    frames, size = clip_shape(cfg)
    out: dict[str, list] = {task: [] for task in planned(cfg)}
    for s in resolve(cfg):
        if s.folder is not None:
            out[s.task].append(limit(_disk(s, frames, size), cfg.eval.items(s.task)))
            continue
        world = world or source_of(cfg.data).world(cfg.data)
        if world is None:
            raise EvalSetError(f"eval set {s.name!r} is the shapes world, but data.source is "
                               f"{cfg.data.source!r}: its clips would not match the X-encoder's input")
        out[s.task].append(_shapes(cfg, s, world))
    return out


def validate(cfg, where: str = "", log: Callable[[str], None] | None = None) -> list[str]:
    """Every eval set of the run resolves and reads, and a sample of each set's clips decodes (probe); raises
    one EvalSetError naming, for each set that does not, the config, the key, the set and the path or file.
    Returns notes (also given to `log`, default stderr): unreadable clips that eval.on_error: skip will leave
    out, which stop nothing unless every clip probed is unreadable."""
    prefix = f"{where}: " if where else ""
    frames, size = clip_shape(cfg)
    found, problems = _resolve(cfg, prefix)
    notes = []
    for s in found:
        try:
            if s.folder is None:
                if not source_of(cfg.data).has_world:
                    raise EvalSetError(f"the shapes world, but data.source is {cfg.data.source!r}")
                continue
            note = probe(cfg, *_sample_errors(s, frames, size, cfg.eval.items(s.task), _stamp(s.folder)))
            if note:
                notes.append(f"{prefix}{s.key}: {note}")
        except (EvalSetError, DatasetError) as e:
            problems.append(f"{prefix}{s.key}: {e}")
    if problems:
        raise EvalSetError("\n  - ".join(problems))
    for note in notes:
        (log or (lambda m: print(f"note: {m}", file=sys.stderr)))(note)
    return notes


@functools.lru_cache(maxsize=256)
def _sample_errors(s: PlannedSet, frames: int, size: int, items: int, stamp: float) -> tuple[int, tuple[str, ...]]:
    """(clips probed, the errors of those that cannot be decoded) of a set cut to `items`: the first few clips
    and a seeded few more (media.probe_picks), as training data is probed before a run. Once per set and
    dataset.yaml version: a sweep validates every run's sets, most of them the same. A set without clips
    (hard negatives, streams) has none to probe."""
    visuals = getattr(limit(_disk(s, frames, size), items), "visuals", None)
    if visuals is None or not len(visuals):
        return 0, ()
    picks = probe_picks(len(visuals))
    return len(picks), tuple(unreadable_sample(visuals, picks))


def probe(cfg, probed: int, bad: tuple[str, ...]) -> str | None:
    """The verdict on a set's probed clips: unreadable ones are an error with eval.on_error: fail, or when none
    of them decodes; otherwise a note (what skip will leave out)."""
    if not bad:
        return None
    shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
    text = f"{len(bad)} of {probed} clips probed cannot be decoded: {shown}"
    if cfg.eval.on_error == "fail" or len(bad) == probed:
        raise EvalSetError(text + (" (eval.on_error: fail)" if cfg.eval.on_error == "fail" else " (none decodes)"))
    return text + " (eval.on_error: skip leaves them out)"
