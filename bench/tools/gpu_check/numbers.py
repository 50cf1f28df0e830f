"""What each step measured, read off what it wrote: bench.perf's report, the knob and probe JSON, the run's
folder (each task's evaluation time read while the run runs); and whether the step passed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.eval.tasks import TASK_FAILED
from bench.results import read_json, read_jsonl
from bench.tools.gpu_check.steps import Step


@dataclass
class TaskClock:
    """Each task's evaluation time, read off the run's folder while it runs. The run's heartbeat says
    "evaluating at N samples" as its evaluation starts and "evaluated TASK at N samples" as each task ends, with
    the time; then it appends the task's records to evals.jsonl. A task's time runs from the end of the one
    before it (the first's from the start). A look that finds several tasks' new records cannot tell when the
    earlier ones ended: they have no time of their own (None), and the last is timed from the file's change."""

    runs: Path
    start: float | None = None
    lines: int = 0
    last: float | None = None
    seconds: dict[str, float | None] = field(default_factory=dict)

    def poll(self) -> None:
        found = sorted(self.runs.glob("*/run.json"))
        if not found:
            return
        folder = found[0].parent
        beat = _read_json_quietly(folder / "heartbeat.json") or {}
        phase = str(beat.get("phase", ""))
        if self.start is None and phase.startswith("evaluating"):
            self.start = float(beat["time"])
        tasks, end = self._finished(folder / "evals.jsonl", phase, beat.get("time"))
        begin = self.last if self.last is not None else self.start
        for task in tasks:
            self.seconds[task] = round(end - begin, 2) if len(tasks) == 1 and begin is not None else None
        if tasks:
            self.last = end

    def _finished(self, evals: Path, phase: str, beat_time: float | None) -> tuple[list[str], float]:
        """The tasks whose first records appeared since the last look, and when the last of them ended."""
        if not evals.is_file():
            return [], 0.0
        stamp = evals.stat().st_mtime
        text = evals.read_text()
        whole = text[:text.rfind("\n") + 1].splitlines()  # a line being appended is read at the next look
        new = [json.loads(line)["task"] for line in whole[self.lines:]]
        self.lines = len(whole)
        tasks = [t for t in dict.fromkeys(new) if t not in self.seconds]
        exact = tasks and beat_time and phase.startswith(f"evaluated {tasks[-1]} ")
        return tasks, float(beat_time) if exact else stamp


def _read_json_quietly(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def perf_numbers(report: Path) -> dict[str, Any]:
    """bench.perf's record of the twin: throughput, MFU, the step's phases, scoring and memory."""
    rep = read_json(report)
    if not rep.get("records"):
        raise ValueError(f"{report} holds no record: bench.perf stopped before it measured the twin")
    r = rep["records"][0]
    keep = ("model", "precision", "global_batch", "micro_batch", "samples_per_s", "mfu", "flops_per_sample",
            "cache_speedup", "score_K10_ms_per_sample", "score_K100_ms_per_sample", "generate_ms_per_sample",
            "cuda_max_allocated_gb", "trainable_params")
    out = {k: r[k] for k in keep if k in r}
    out["step_ms"] = {k: round(1e3 * v, 1) for k, v in r["step_cached"].items() if isinstance(v, float)}
    out.update(device=rep["device"], matmul_peak_flops=rep["matmul_peak_flops"], peak_rss_gb=rep.get("peak_rss_gb"))
    return out


def train_numbers(runs: Path, clock: TaskClock | None) -> dict[str, Any]:
    """The run's status, its training throughput, and each task's headline (its first metric), items and time."""
    found = sorted(runs.glob("*/run.json"))
    if not found:
        raise ValueError(f"{runs} holds no run folder: the run stopped before it started")
    folder = found[0].parent
    rec = read_json(folder / "run.json")
    metrics = read_jsonl(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else []
    evals = read_jsonl(folder / "evals.jsonl") if (folder / "evals.jsonl").is_file() else []
    tasks: dict[str, dict[str, Any]] = {}
    for r in evals:
        task = tasks.setdefault(r["task"], {"metric": r["metric"], "value": r["value"], "items": r.get("n"),
                                            "seconds": (clock.seconds if clock else {}).get(r["task"])})
        if r["metric"] == TASK_FAILED:
            task["error"] = r.get("error", "")
    train_s = rec.get("train_s") or 0
    return {"run": str(folder), "status": rec.get("status"), "samples_seen": rec.get("samples_seen"),
            "setup_s": rec.get("setup_s"), "train_s": train_s,
            "samples_per_s": rec["samples_seen"] / train_s if train_s and rec.get("samples_seen") else None,
            "final_loss": metrics[-1]["loss"] if metrics else None,
            "eval_start_seen": clock is not None and clock.start is not None, "tasks": tasks}


def numbers_of(step: Step, clock: TaskClock | None) -> dict[str, Any]:
    if step.kind == "perf":
        return perf_numbers(Path(step.report))
    if step.kind == "train":
        return train_numbers(Path(step.report), clock)
    if step.kind in ("probe", "knob"):
        return read_json(Path(step.report))
    return {"folder": step.report}


def verdict(step: Step, rc: int | None, numbers: dict[str, Any]) -> tuple[str, str]:
    """(status, error): a train step passes when its run is done and no task failed."""
    if rc is None:
        return "timeout", f"stopped at its time limit (budget {step.budget_s} s plus what earlier steps left)"
    if rc != 0:
        return "failed", f"exit status {rc}"
    if step.kind == "train":
        failed = [t for t, r in numbers.get("tasks", {}).items() if "error" in r]
        if numbers.get("status") != "done":
            return "failed", f"the run's status is {numbers.get('status')!r}, not 'done'"
        if failed:
            return "failed", f"tasks failed: {', '.join(failed)}"
    return "passed", ""
