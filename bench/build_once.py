"""Build a shared cache entry once, however many jobs want it at the same moment.

The first job to find an entry (a cache file, a pretrained LM's folder) missing takes its build lock: a file
beside the entry, created exclusively (a hard link: atomic on local disks and on NFS), holding the builder's
host, PID and progress, and renewed as it goes. Every other job waits for the entry, saying in its own log
whom it waits for and how far that build is; a lock not renewed for `stale_s` (its builder was killed) is
taken over. The entry itself is still written under a temporary name and renamed, so a reader never sees
half of one.

    with BuildOnce(path, done=path.is_file, what="the X features", log=log) as build:
        if build:
            ... write path ...
            build.progress("1,280/40,000 rows")
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import read_json, write_json

STALE_S = 120.0  # a build lock not renewed for this long is taken over
POLL_S = 1.0
SAY_EVERY_S = 30.0


class BuildOnce:
    """A context manager that is truthy in the one process that must build the entry (None: all built)."""

    def __init__(self, entry: Path, done: Callable[[], bool], what: str, log=None, stale_s: float = STALE_S,
                 poll_s: float = POLL_S):
        self.entry, self.done, self.what, self.log = entry, done, what, log
        self.stale_s, self.poll_s = stale_s, poll_s
        self.lock = entry.with_name(f".{entry.name}.build")
        self.me = {"host": socket.gethostname(), "pid": os.getpid()}
        self.building = False
        self._progress = "starting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __bool__(self) -> bool:
        return self.building

    def __enter__(self) -> BuildOnce:
        said = 0.0
        while not self.done():
            if self._take():
                self.building = not self.done()  # built by another between its check and our lock
                if not self.building:
                    self._release()
                return self
            holder, age = self._holder()
            if age > self.stale_s:
                self._say(f"taking over the build of {self.what}: {self._who(holder)} has not renewed its lock "
                          f"for {age:.0f} s")
                self.lock.unlink(missing_ok=True)
                continue
            if time.time() - said >= SAY_EVERY_S:
                said = time.time()
                self._say(f"waiting for {self._who(holder)}, building {self.what}: {holder.get('progress', '?')}")
            time.sleep(self.poll_s)
        return self

    def __exit__(self, *exc) -> None:
        if self.building:
            self._release()

    def progress(self, text: str) -> None:
        """What the builder has done so far: written into the lock at its next renewal, for the waiters."""
        self._progress = text

    # ---------------------------------------------------------------- the lock file
    def _take(self) -> bool:
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.lock.with_name(f"{self.lock.name}.{os.getpid()}.{id(self)}")
        write_json(tmp, {**self.me, "what": self.what, "progress": self._progress, "renewed": time.time()})
        try:  # a hard link is created whole or not at all (atomic on local disks and NFS): the lock says its holder
            os.link(tmp, self.lock)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._renew, name="build-lock", daemon=True)
        self._thread.start()
        return True

    def _write(self) -> None:
        write_json(self.lock, {**self.me, "what": self.what, "progress": self._progress, "renewed": time.time()})

    def _renew(self) -> None:
        while not self._stop.wait(min(10.0, self.stale_s / 4)):
            holder, _ = self._holder()
            if {k: holder.get(k) for k in self.me} != self.me:
                return  # taken over (this process was thought dead): the entry's rename still lands whole
            self._write()

    def _release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.lock.unlink(missing_ok=True)

    def _holder(self) -> tuple[dict[str, Any], float]:
        """The lock's holder and how long ago it was last renewed (its file's age while it is being written)."""
        try:
            holder = read_json(self.lock)
            return holder, time.time() - holder.get("renewed", 0.0)
        except (OSError, ValueError):
            try:
                return {}, time.time() - self.lock.stat().st_mtime
            except OSError:
                return {}, 0.0  # released meanwhile

    @staticmethod
    def _who(holder: dict[str, Any]) -> str:
        return f"{holder.get('host', 'another process')}, PID {holder.get('pid', '?')}"

    def _say(self, message: str) -> None:
        if self.log:
            self.log(message)
