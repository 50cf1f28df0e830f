"""One writer per run: a lease in the run folder that its writer renews and no other process takes while fresh.

`lease.json` names the holder (host, PID, a token unique to the process) and when it last renewed it. A run
takes the lease before it writes anything (bench/run/train.py); while another process holds a fresh one, it
stops at once in one line naming that holder, and writes nothing. The holder renews it every `renew_s` from
a thread, so a live run keeps it through long evaluations and cache builds; a lease not renewed for
`train.lease_s` is stale (its holder was killed) and is taken over; so is, at once, the lease of a holder
that ran on this machine and whose process is gone. `--force` (bench.train) takes a fresh
one too: the old holder sees, at its next renewal, that the lease is no longer its own, and stops at its next
step without writing more.

No file locks: they are unreliable on NFS and Lustre, where runs of a sweep share the results store. The lease
is written by an atomic rename and read back after `settle_s`: of two processes racing for a stale lease,
the one whose write landed last keeps it, and the other stops.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.results import read_json, write_json

RENEW_S = 10.0
SETTLE_S = 0.5


class RunBusy(RuntimeError):
    """Another process holds the run's lease (or took it over); the message names it."""


def describe(holder: dict[str, Any], now: float | None = None) -> str:
    age = (now or time.time()) - holder.get("renewed", 0.0)
    return f"{holder.get('host', '?')}, PID {holder.get('pid', '?')} (lease renewed {age:.0f} s ago)"


class Lease:
    def __init__(self, path: Path, lease_s: float, renew_s: float = RENEW_S, settle_s: float = SETTLE_S):
        self.path, self.lease_s = path, lease_s
        self.renew_s, self.settle_s = min(renew_s, lease_s / 3), settle_s
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        self.lost: dict[str, Any] | None = None  # the holder that took the lease from this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict[str, Any] | None:
        try:
            return read_json(self.path)
        except (OSError, ValueError):
            return None  # none, or replaced while read

    def _mine(self, holder: dict[str, Any] | None) -> bool:
        return holder is not None and holder.get("token") == self.me["token"]

    def acquire(self, force: bool = False) -> None:
        """Take the lease, or raise RunBusy naming its live holder (force: take a fresh one too)."""
        held = self.holder()
        if held and not self._mine(held) and not force and self._live(held):
            raise RunBusy(f"{self.path.parent} is being written by {describe(held)}; "
                          f"wait for it, or stop it, or take over with --force")
        self._write()
        time.sleep(self.settle_s)
        held = self.holder()
        if not self._mine(held):
            raise RunBusy(f"{self.path.parent}: another process took the run at the same time: "
                          f"{describe(held or {})}")
        self._thread = threading.Thread(target=self._renew, name="run-lease", daemon=True)
        self._thread.start()

    def _live(self, holder: dict[str, Any]) -> bool:
        """A holder is live while its lease is fresh, unless it ran on this host and its process is gone."""
        if time.time() - holder.get("renewed", 0.0) >= self.lease_s:
            return False
        if holder.get("host") == self.me["host"] and isinstance(holder.get("pid"), int):
            try:
                os.kill(holder["pid"], 0)
            except ProcessLookupError:
                return False  # killed on this machine: no need to wait for its lease to go stale
            except PermissionError:
                return True  # alive, another user's
        return True

    def _write(self) -> None:
        write_json(self.path, {**self.me, "renewed": time.time()})

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            held = self.holder()
            if held is not None and not self._mine(held):
                self.lost = held
                return
            self._write()

    def check(self) -> None:
        """Raise RunBusy when another process has taken the lease over."""
        if self.lost:
            raise RunBusy(f"{self.path.parent} was taken over by {describe(self.lost)}; this process stops")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_s + 1)
        if self._mine(self.holder()):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
