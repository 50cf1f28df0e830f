"""Stopping a run on a signal: SIGUSR1, SIGUSR2 or SIGTERM finish the step, checkpoint and exit (Preempted),
so that a launcher can requeue the run."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class Preempted(Exception):
    """The run checkpointed on a signal and stopped; running it again resumes it."""


class StopFlag:
    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: the launcher handles signals
                pass
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def forward(self) -> None:
        """After our checkpoint: hand the signal to the handler that was there before (submitit's
        requeue on SIGUSR2, its bypass on SIGTERM), if there was one."""
        old = self._old.get(self.signum)
        if callable(old):
            old(self.signum, None)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
