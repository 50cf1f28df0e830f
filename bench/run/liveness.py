"""Whether a run is alive and moving: its heartbeat file, and a watchdog that says when it stops moving.

A running run rewrites `heartbeat.json` in its folder (RunDir.heartbeat) as it goes: what it is doing
(starting, training, evaluating, checkpointing), the samples seen and the time. Readers (bench.sweep.plan's
--status and its launch) tell a live run from a dead one by the heartbeat's age; a run whose heartbeat is
older than `stall_s` is stalled. Inside the run, a watchdog thread logs a line when the run has not moved
for stall_s (hung at start-up, in a collective, on a file system), and marks the heartbeat stalled.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bench.results import read_json, write_json

BEAT_EVERY_S = 5.0  # at most one write per this many seconds while training


class Heartbeat:
    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled
        self.state: dict[str, Any] = {"phase": "starting", "samples_seen": 0}
        self.moved = time.time()  # when the run last made progress
        self._written, self._written_phase = 0.0, None
        self._lock = threading.Lock()

    def beat(self, phase: str, samples_seen: int | None = None, force: bool = True) -> None:
        """The run moved: record what it is doing now (written at once when the phase changes or force is
        true, else at most every BEAT_EVERY_S seconds)."""
        now = time.time()
        with self._lock:
            self.moved = now
            self.state.update(phase=phase, stalled=False)
            if samples_seen is not None:
                self.state["samples_seen"] = samples_seen
            if force or phase != self._written_phase or now - self._written >= BEAT_EVERY_S:
                self._write(now)

    def mark_stalled(self, idle_s: float) -> None:
        with self._lock:
            self.state.update(stalled=True, idle_s=round(idle_s))
            self._write(time.time())

    def _write(self, now: float) -> None:
        if self.enabled:
            write_json(self.path, {**self.state, "time": now, "moved": self.moved})
            self._written, self._written_phase = now, self.state["phase"]


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def liveness(path: Path, stall_s: float, now: float | None = None) -> tuple[str, dict[str, Any]] | None:
    """("alive" | "stalled", heartbeat) of a run folder's heartbeat, or None without one."""
    beat = read_heartbeat(path)
    if beat is None:
        return None
    age = (now or time.time()) - beat.get("moved", beat.get("time", 0))
    return ("stalled" if beat.get("stalled") or age > stall_s else "alive"), {**beat, "age_s": age}


class Watchdog:
    """A daemon thread that, every check_s, logs once per stall when the heartbeat has not moved for stall_s."""

    def __init__(self, heartbeat: Heartbeat, stall_s: float, log, check_s: float | None = None):
        self.heartbeat, self.stall_s, self.log = heartbeat, stall_s, log
        self.check_s = check_s if check_s is not None else min(60.0, stall_s / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="run-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.check_s + 1)

    def _watch(self) -> None:
        said_for = None  # the heartbeat's `moved` time already reported
        while not self._stop.wait(self.check_s):
            hb = self.heartbeat
            idle = time.time() - hb.moved
            if idle > self.stall_s and said_for != hb.moved:
                said_for = hb.moved
                self.log(f"no progress for {idle:.0f} s (since: {hb.state['phase']}, at "
                         f"{hb.state['samples_seen']:,} samples); still waiting")
                hb.mark_stalled(idle)
