"""Torch's JIT-extension build locks: find the ones a killed process left, so no run waits forever.

DeepSpeed loads its CPU shared-memory op (deepspeed_shm_comm) through torch.utils.cpp_extension in every
process that starts, building it first when needed. Every load takes a lock file in the op's build
folder (`<torch extensions>/[<py>_<device>/]<op>/lock`, created with O_EXCL) and deletes it when done; a
process killed while holding it leaves it behind, and every later process then waits on it forever at
0% CPU (torch's FileBaton.wait). A lock is stale when it is older than a grace period and no process is
working in its folder (the compiler and ninja run there); stale locks are removed, and each removal is
said with the file's path. `python -m bench.buildlocks` lists the locks and what holds them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

GRACE_S = 60.0  # a lock younger than this may belong to a process about to start its build


def extensions_root() -> Path:
    """Where torch builds JIT extensions: $TORCH_EXTENSIONS_DIR or its default under ~/.cache."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def build_locks(root: Path) -> list[Path]:
    """Every build lock under root: <root>/<op>/lock ($TORCH_EXTENSIONS_DIR) or <root>/<py>_<device>/<op>/lock."""
    return sorted({*root.glob("*/lock"), *root.glob("*/*/lock")}) if root.is_dir() else []


def builders_in(folder: Path) -> list[int]:
    """PIDs of live processes whose working directory is `folder` (a build: ninja, the compiler)."""
    pids = []
    target = os.path.realpath(folder)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.path.realpath(entry / "cwd") == target:
                    pids.append(int(entry.name))
            except OSError:  # gone, or another user's
                continue
    return pids


def stale_locks(root: Path | None = None, grace_s: float = GRACE_S) -> list[Path]:
    """The build locks under root that no live build holds and that are older than grace_s seconds."""
    root = extensions_root() if root is None else root
    now = time.time()
    out = []
    for lock in build_locks(root):
        try:
            age = now - lock.stat().st_mtime
        except FileNotFoundError:  # released meanwhile
            continue
        if age > grace_s and not builders_in(lock.parent):
            out.append(lock)
    return out


def clear_stale_locks(root: Path | None = None, grace_s: float = GRACE_S, log=None) -> list[Path]:
    """Remove the stale build locks (see stale_locks); returns them. Each removal is logged with its path."""
    removed = []
    for lock in stale_locks(root, grace_s):
        try:
            lock.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise RuntimeError(f"{lock} is a build lock left by a killed process (no build is running in "
                               f"{lock.parent}), and removing it failed ({e}): delete it by hand, or every run "
                               "on this machine waits on it forever") from e
        removed.append(lock)
        if log:
            log(f"removed a stale build lock left by a killed process: {lock} (no build was running there)")
    return removed


def main() -> int:
    root = extensions_root()
    locks = build_locks(root)
    if not locks:
        print(f"no build locks under {root}")
    for lock in locks:
        pids = builders_in(lock.parent)
        age = time.time() - lock.stat().st_mtime
        state = f"held by a build (pids {pids})" if pids else "stale (no build running)" if age > GRACE_S else "new"
        print(f"{lock}: {age:.0f} s old, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
