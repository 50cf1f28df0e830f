"""What a run says about its steps as it trains: a metrics.jsonl row and a log line every train.log_every
optimizer steps (averages over the window, samples/s), the heartbeat, and a progress bar on a terminal.
A Console carries the run's log lines, through the bar while one is shown so that lines never break it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.config import TrainConfig
from bench.results import append_jsonl
from bench.run.engine import StagePlan
from bench.run.liveness import Heartbeat
from bench.run.step import StepResult


def duration(seconds: float | None) -> str:
    """A time left as a person reads it: 40 s, 12 min, 1.5 h."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Console:
    """Where a run's log lines go: `write` (print by default), or through the progress bar while one is open."""

    def __init__(self, write: Callable[[str], None] = print):
        self._write = write
        self.bar = None

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        else:
            self._write(line)

    def open_bar(self, total: int, initial: int, desc: str):
        """A progress bar on an interactive terminal (None otherwise: log lines carry the progress)."""
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="sample", desc=desc, leave=False)
        return self.bar

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StepLog:
    """The log of a stage's steps: a metrics.jsonl row and a log line every train.log_every steps (averages
    over the window), a progress bar on a terminal. Only the main process writes (is_main)."""

    def __init__(self, train: TrainConfig, stage: StagePlan, position: int, *, is_main: bool, metrics: Path,
                 heartbeat: Heartbeat, trackers, console: Console, log: Callable[[str], None],
                 window: dict[str, list[float]] | None = None):
        self.train, self.stage, self.is_main = train, stage, is_main
        self.metrics, self.heartbeat, self.trackers, self.console, self.log = metrics, heartbeat, trackers, console, log
        # the steps since the last row: a resume inside a window carries its losses on (RunState.log_window)
        self.window: dict[str, list[float]] = {k: list(v) for k, v in (window or {}).items()}
        self.samples, self.busy = 0, 0.0  # samples and seconds of optimizer steps in the window
        self.bar = console.open_bar(stage.samples, position, stage.name) if is_main else None

    def step(self, step: int, seen: int, result: StepResult, lr: float, last: bool, step_s: float = 0.0) -> None:
        """One optimizer step taken (step_s: its seconds): its losses into the window, a row when the window ends.
        samples_per_s and the time left are the training's own pace: evaluations and checkpoints apart."""
        t = self.train
        self.heartbeat.beat("training", seen, force=False)
        for k, v in result.losses.items():
            self.window.setdefault(k, []).append(v)
        self.window.setdefault("grad_norm", []).append(result.grad_norm if result.grad_norm is not None else float("nan"))
        self.samples += t.global_batch
        self.busy += step_s
        if self.bar is not None:
            self.bar.update(t.global_batch)
            self.bar.set_postfix(loss=f"{result.losses.get('loss', float('nan')):.4f}")
        if step % t.log_every and not last:
            return
        dt = self.busy
        row = {k: sum(v) / len(v) for k, v in self.window.items()}
        row.update(step=step, samples_seen=seen, stage=self.stage.name, lr=lr,
                   samples_per_s=self.samples / dt if dt > 0 else None, time=round(time.time(), 3))
        if self.is_main:
            append_jsonl(self.metrics, [row])
            self.trackers.log_train(row)
        left = (t.budget.samples - seen) / row["samples_per_s"] if row["samples_per_s"] else None
        self.log(f"step {step} | {seen:,}/{t.budget.samples:,} samples | loss {row.get('loss', float('nan')):.4f} | "
                 f"lr {row['lr']:.2e} | {row['samples_per_s'] or 0:.0f} samples/s | {duration(left)} of training left")
        self.window, self.samples, self.busy = {}, 0, 0.0

    def close(self) -> None:
        self.console.close_bar()
