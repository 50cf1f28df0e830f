"""What a check did, as OUT/summary.json and OUT/summary.md: each step's outcome; the tables of the steps, of
the speed-ups against each twin's baseline, and of the run's tasks with their times."""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench.results import write_atomic, write_json
from bench.run.provenance import git_commit
from bench.tools.gpu_check.scales import Scale
from bench.tools.gpu_check.settings import Folders, twins
from bench.tools.gpu_check.steps import Kind, Step


@dataclass
class Outcome:
    """What one step did: passed, failed or timeout (or skipped by --only), its time, and its numbers."""

    name: str
    kind: Kind
    twin: str
    knob: str
    status: Literal["passed", "failed", "timeout", "not run"]
    budget_s: int
    limit_s: float = 0.0
    wall_s: float = 0.0
    returncode: int | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    log: str = ""


def _fmt(value: Any, spec: str = ".1f", scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def _memory(n: dict[str, Any]) -> str:
    if n.get("cuda_max_allocated_gb") is not None:
        return f"{n['cuda_max_allocated_gb']:.1f} GB"
    return f"{n['peak_rss_gb']:.2f} GB RSS" if n.get("peak_rss_gb") is not None else "-"


def _steps_table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| step | status | wall s (limit) | samples/s | MFU | peak memory | note |", "|---|---|---:|---:|---:|---:|---|"]
    for o in outcomes:
        n = o.numbers
        note = o.error.splitlines()[0] if o.error else ""
        mfu = _fmt(n.get("mfu"), ".1f", 100) + "%" if n.get("mfu") is not None else "-"
        lines.append(f"| {o.name} | {o.status} | {o.wall_s:.0f} ({o.limit_s:.0f}) | {_fmt(n.get('samples_per_s'))} | "
                     f"{mfu} | {_memory(n) if o.kind in ('perf', 'knob') else '-'} | {note} |")
    return lines


def _knob_row(o: Outcome, baseline: dict[str, Any]) -> str:
    name = o.knob or "baseline (bench.perf)"
    n = o.numbers
    if o.status != "passed" or not n.get("samples_per_s"):
        return f"| {o.twin} | {name} | {o.status} | - | - | - | - |"
    sps = n["samples_per_s"]
    ratio = f"{sps / baseline['samples_per_s']:.2f}x" if baseline.get("samples_per_s") else "-"
    ms = n.get("step_ms", {})
    parts = " / ".join(_fmt(ms.get(k), ".0f") for k in ("data", "forward", "backward", "optimizer"))
    return f"| {o.twin} | {name} | {sps:.1f} | {ratio} | {100 * n['mfu']:.1f}% | {parts} | {_memory(n)} |"


def _knob_table(outcomes: list[Outcome]) -> list[str]:
    baseline = {o.twin: o.numbers for o in outcomes if o.kind == "perf" and o.status == "passed"}
    rows = sorted((o for o in outcomes if o.kind in ("perf", "knob")), key=lambda o: o.twin)  # stable: perf first
    return ["| twin | knob | samples/s | against the baseline | MFU | step ms (data / fwd / bwd / opt) | peak memory |",
            "|---|---|---:|---:|---:|---|---:|", *(_knob_row(o, baseline.get(o.twin, {})) for o in rows)]


def _train_table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| twin | status | training samples/s | final loss | task | metric | value | items | seconds |",
             "|---|---|---:|---:|---|---|---:|---:|---:|"]
    for o in (o for o in outcomes if o.kind == "train"):
        n = o.numbers
        head = f"| {o.twin} | {o.status} | {_fmt(n.get('samples_per_s'))} | {_fmt(n.get('final_loss'), '.3f')}"
        tasks = n.get("tasks") or {"-": {}}
        for task, r in tasks.items():
            value = "failed" if "error" in r else _fmt(r.get("value"), ".2f")
            lines.append(f"{head} | {task} | {r.get('metric', '-')} | {value} | {r.get('items') or '-'} | "
                         f"{_fmt(r.get('seconds'))} |")
            head = "| | | |"
    return lines


def markdown(summary: dict[str, Any], outcomes: list[Outcome]) -> str:
    s = summary
    counts = ", ".join(f"{sum(o.status == k for o in outcomes)} {k}" for k in ("passed", "failed", "timeout", "not run")
                       if any(o.status == k for o in outcomes))
    g, m = s["perf_batch"]
    return "\n".join([
        f"# GPU check ({s['mode']}): {s['device']}", "",
        f"`{s['command']}` at {s['commit']}, {s['started']}: "
        f"{s['preset']} with random weights, {s['precision']}, {s['frames']} frames at {s['size']} px; "
        f"{s['wall_s']:.0f} s of a {s['budget_s']} s budget; {counts}.", "",
        "## Steps", "", *_steps_table(outcomes), "",
        f"## The training step with each speed-up (global batch {g}, micro-batch {m}; {s['perf_steps']} timed steps "
        f"after {s['warmup']} warm-up steps)", "", *_knob_table(outcomes), "",
        f"## {s['train_steps']} training steps, then every task from the exported files (seconds: each task's "
        "evaluation, its clips' encoding included)", "", *_train_table(outcomes), ""])


def write_summary(scale: Scale, steps: list[Step], outcomes: list[Outcome], folders: Folders, started: float) -> dict:
    probe = next((o.numbers for o in outcomes if o.kind == "probe" and o.numbers), {})
    summary = {
        "mode": scale.name, "device": probe.get("name", "unknown (the probe did not run)"), "probe": probe,
        "command": " ".join(["python -m bench.tools.gpu_check", shlex.join(sys.argv[1:])]).strip(),
        "commit": git_commit(), "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
        "wall_s": round(time.time() - started, 1), "budget_s": sum(s.budget_s for s in steps),
        "preset": scale.preset, "precision": scale.precision, "frames": scale.frames, "size": scale.size,
        "perf_batch": scale.perf_batch, "perf_steps": scale.perf_steps, "warmup": scale.warmup,
        "train_batch": scale.train_batch, "train_steps": scale.train_steps, "twins": twins(),
        "plan": [{"name": s.name, "budget_s": s.budget_s, "command": shlex.join(s.argv)} for s in steps],
        "steps": [asdict(o) for o in outcomes],
    }
    write_json(folders.out / "summary.json", summary)
    write_atomic(folders.out / "summary.md", markdown(summary, outcomes))
    return summary
