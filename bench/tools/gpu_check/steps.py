"""The plan of a check: its steps in order, each a subprocess with its command and budget; choosing steps
(--only); the plan as printed."""

from __future__ import annotations

import fnmatch
import shlex
import sys
from dataclasses import dataclass
from typing import Literal

from bench.tools.gpu_check.scales import DEADLINE_S, GPU, KNOBS, TWINS_SWEEP, Scale
from bench.tools.gpu_check.settings import Folders, overrides_of, perf_settings, train_settings, twins
from models import registry
from models.protocol import offers_step_targets

Kind = Literal["probe", "export", "perf", "knob", "train"]


@dataclass(frozen=True)
class Step:
    """One subprocess of the plan: its command, its budget, and where it leaves what it measured."""

    name: str
    kind: Kind
    what: str
    argv: tuple[str, ...]
    budget_s: int
    twin: str = ""
    knob: str = ""
    report: str = ""  # the JSON it writes (probe, perf, knob) or the folder its run goes in (train)
    extra: bool = False  # outside the default plan and its 9 minutes: run when --only names it


def _python(*args: str) -> tuple[str, ...]:
    return (sys.executable, *args)


def _encodes_targets(twin: str) -> bool:
    return offers_step_targets(registry.get(twin)) is not False


def _setup_steps(scale: Scale, folders: Folders) -> list[Step]:
    probe = str(folders.out / "probe.json")
    n = scale.eval_items
    export = ["--out", str(folders.data), "--config", scale.preset, "--size", str(n), "--train", str(scale.train_clips),
              "--streams", str(scale.streams), "data.source=shapes", f"data.shapes.frames={scale.frames}",
              f"data.shapes.size={scale.size}", f"data.shapes.train_size={scale.train_clips}",
              f"data.shapes.val_size={n}", f"data.shapes.test_size={n}", f"data.shapes.novel_size={n}"]
    return [
        Step("probe", "probe", f"the device, {scale.precision} and the process group's backend",
             _python("-m", "bench.tools.gpu_check", "probe", "--device", scale.device, "--precision", scale.precision,
                     "--json", probe), scale.budget("probe"), report=probe),
        Step("export", "export", f"the shapes world as dataset folders, {scale.frames} frames at {scale.size} px: "
             f"{n} items a task, {scale.train_clips} training clips",
             _python("-m", "bench.tools.export_world", *export), scale.budget("export"), report=str(folders.data)),
    ]


def _twin_steps(scale: Scale, folders: Folders, twin: str) -> list[Step]:
    sweep = str(folders.work / "sweeps" / f"{twin}.yaml")
    settings = perf_settings(scale)
    perf_out = folders.out / "perf" / twin
    steps = [Step(f"perf:{twin}", "perf", f"python -m bench.perf of {twin}, {scale.perf_steps} timed steps",
                  _python("-m", "bench.perf", "--sweep", sweep, "--steps", str(scale.perf_steps), "--out", str(perf_out),
                          "--set", *settings), scale.budget("perf", twin), twin, report=str(perf_out / "latest.json"))]
    for knob in KNOBS:
        if knob.needs_step_targets and not _encodes_targets(twin):
            continue
        report = str(folders.out / "knobs" / f"{twin}_{knob.name}.json")
        steps.append(Step(
            f"knob:{twin}:{knob.name}", "knob", f"{twin}'s training step with {' '.join(knob.overrides)}",
            _python("-m", "bench.tools.gpu_check", "time-step", "--sweep", sweep, "--steps", str(scale.perf_steps),
                    "--warmup", str(scale.warmup), "--json", report, "--set", *settings, *knob.overrides),
            scale.budget("knob", twin, knob.name), twin, knob.name, report))
    return steps


def plan(scale: Scale, folders: Folders) -> list[Step]:
    """Every step in order: the probe and the export, each twin's bench.perf, the 200-step run of the preset as
    written (VL-JEPA) with its evaluation, then the knobs (compile last): what matters most gets its time first.
    The other twin's run comes last, an extra step (--only train:vlm): with it the check takes longer than 9 min."""
    changes = twins()
    steps = _setup_steps(scale, folders)
    by_twin = {t: _twin_steps(scale, folders, t) for t in changes}
    steps += [by_twin[t][0] for t in changes]
    runs = []
    for t, change in changes.items():
        argv = _python("-m", "bench.train", scale.preset, *overrides_of(change), *train_settings(scale, folders, t))
        runs.append(Step(f"train:{t}", "train", f"python -m bench.train of {t}: {scale.train_steps} steps of "
                         f"{scale.train_batch[0]}, then every task on {scale.eval_items} items each", argv,
                         scale.budget("train", t), t, report=str(folders.work / "runs" / t), extra=bool(change)))
    knobs = [s for t in changes for s in by_twin[t][1:]]
    ordered = steps + [r for r in runs if not r.extra] + sorted(knobs, key=lambda s: s.knob == "compile")
    return ordered + [r for r in runs if r.extra]


def select(steps: list[Step], only: list[str]) -> list[Step]:
    """The steps whose names match any of the patterns (fnmatch: an extra step too); without patterns, every
    step but the extra ones."""
    if not only:
        return [s for s in steps if not s.extra]
    chosen = [s for s in steps if any(fnmatch.fnmatch(s.name, p) for p in only)]
    if not chosen:
        raise SystemExit(f"error: --only {' '.join(only)} matches no step; the steps: {', '.join(s.name for s in steps)}")
    return chosen


def describe(scale: Scale, steps: list[Step], extra: list[Step]) -> str:
    """The plan as printed: the twins, then each step's budget, what it does and its command; the extra steps."""
    total = sum(s.budget_s for s in steps)
    twin_lines = [f"  {t}: {' '.join(overrides_of(c)) or '(the preset as written)'}" for t, c in twins().items()]
    within = f", under the {DEADLINE_S // 60} min of a GPU loan" if scale is GPU and total < DEADLINE_S else ""
    lines = [f"GPU check, {scale.name}: {scale.preset}, {scale.precision}, {scale.frames} frames at {scale.size} px, "
             f"on {scale.device}; the twins as {TWINS_SWEEP} configures them:", *twin_lines,
             f"{len(steps)} steps; their budgets sum to {total} s ({total / 60:.1f} min{within}):"]
    for i, s in enumerate(steps, 1):
        lines += [f"{i:3d}. {s.name:<40} {s.budget_s:4d} s  {s.what}", "     " + shlex.join(s.argv)]
    if extra:
        lines.append("Extra steps, run when --only names them (with the export step): "
                     + ", ".join(f"{s.name} ({s.budget_s} s)" for s in extra))
    return "\n".join(lines)
