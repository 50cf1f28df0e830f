"""What a run says about its steps as it trains: a metrics.jsonl row and a log line every train.log_every
optimizer steps (averages over the window, samples/s), the heartbeat, and a progress bar on a terminal.
`run` is bench.train.Run (its cfg, env, dir, heartbeat, log and log_fn)."""

from __future__ import annotations

import sys
import time

from bench.engine import StagePlan
from bench.results import append_jsonl
from bench.step import StepResult
from bench.sweepstatus import duration


class StepLog:
    """The log of a stage's steps: a metrics.jsonl row and a log line every train.log_every steps (averages
    over the window), a progress bar on a terminal."""

    def __init__(self, run, stage: StagePlan, position: int):
        self.run, self.stage = run, stage
        self.window: dict[str, list[float]] = {}
        self.t0, self.samples = time.perf_counter(), 0
        self.bar = None
        if run.env.is_main and sys.stderr.isatty():  # a progress bar when interactive, log lines otherwise
            from tqdm import tqdm

            self.bar = tqdm(total=stage.samples, initial=position, unit="sample", desc=stage.name, leave=False)
            run.log_fn = tqdm.write

    def step(self, step: int, seen: int, result: StepResult, lr: float, last: bool) -> None:
        t = self.run.cfg.train
        self.run.heartbeat.beat("training", seen, force=False)
        for k, v in result.losses.items():
            self.window.setdefault(k, []).append(v)
        self.window.setdefault("grad_norm", []).append(result.grad_norm if result.grad_norm is not None else float("nan"))
        self.samples += t.global_batch
        if self.bar is not None:
            self.bar.update(t.global_batch)
            self.bar.set_postfix(loss=f"{result.losses.get('loss', float('nan')):.4f}")
        if step % t.log_every and not last:
            return
        dt = time.perf_counter() - self.t0
        row = {k: sum(v) / len(v) for k, v in self.window.items()}
        row.update(step=step, samples_seen=seen, stage=self.stage.name, lr=lr,
                   samples_per_s=self.samples / dt if dt > 0 else None, time=round(time.time(), 3))
        if self.run.env.is_main:
            append_jsonl(self.run.dir.metrics, [row])
            self.run.trackers.log_train(row)
        left = (t.budget.samples - seen) / row["samples_per_s"] if row["samples_per_s"] else None
        self.run.log(f"step {step} | {seen:,}/{t.budget.samples:,} samples | loss {row.get('loss', float('nan')):.4f} | "
                     f"lr {row['lr']:.2e} | {row['samples_per_s'] or 0:.0f} samples/s | {duration(left)} of training left")
        self.window, self.t0, self.samples = {}, time.perf_counter(), 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
