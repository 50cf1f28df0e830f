"""The distributed environment of one run: torchrun's variables, Slurm's, or a single process.

DeepSpeed's accelerator is chosen before DeepSpeed is imported: CUDA when a GPU is visible
(NCCL), the CPU accelerator otherwise (gloo). While DeepSpeed starts (it loads, and may build, a JIT op
behind a lock file), a watchdog removes build locks a killed process left (bench/buildlocks.py), so a
start never waits forever.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from bench.buildlocks import clear_stale_locks


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_master() -> str:
    nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST", "localhost")
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True)
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodes.split(",")[0]


def detect() -> DistEnv:
    """torchrun (RANK, WORLD_SIZE, ...) first, then submitit's local tasks, then a Slurm task
    (SLURM_PROCID, SLURM_NTASKS, ...), else one process on this machine."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)),
                       env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", 29500)))
    if int(env.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1:  # submitit's local executor, several tasks
        job = env.get("SUBMITIT_LOCAL_JOB_ID", "0")
        return DistEnv(int(env["SUBMITIT_LOCAL_GLOBALID"]), int(env["SUBMITIT_LOCAL_NTASKS"]),
                       int(env.get("SUBMITIT_LOCAL_LOCALID", 0)), "127.0.0.1", 20000 + int(job) % 20000)
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        job = int(env.get("SLURM_JOB_ID", "0"))
        return DistEnv(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)),
                       _slurm_master(), 20000 + job % 20000)
    return DistEnv(0, 1, 0, "127.0.0.1", _free_port())


_EXPORTED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_saved_env: dict[str, str | None] = {}


def setup(env: DistEnv) -> torch.device:
    """Export the variables torch.distributed and DeepSpeed read, pick the accelerator, init the group.
    teardown() puts the variables back as they were: a process that runs training in-process and then
    starts others (a test, a notebook) must not hand them this run's rank and its taken port."""
    if not _saved_env:
        _saved_env.update({k: os.environ.get(k) for k in _EXPORTED})
    os.environ.update(RANK=str(env.rank), WORLD_SIZE=str(env.world_size), LOCAL_RANK=str(env.local_rank),
                      MASTER_ADDR=env.master_addr, MASTER_PORT=str(env.master_port))
    cuda = torch.cuda.is_available()
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if cuda else "cpu")
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        with stale_lock_watchdog():
            deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False)
    if cuda:
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


@contextlib.contextmanager
def stale_lock_watchdog(every_s: float = 10.0, log=None):
    """For the with-block: clear stale JIT build locks now, and every every_s seconds while it lasts (a
    builder killed while this process waits on its lock is noticed too: the wait then ends, and loading
    the op says what is wrong instead of waiting forever)."""
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    done = threading.Event()
    clear_stale_locks(log=say)  # before DeepSpeed looks: then this process takes the lock and builds itself

    def watch() -> None:
        while not done.wait(every_s):
            try:
                clear_stale_locks(log=say)
            except RuntimeError as e:  # cannot remove it: say so (the wait would otherwise be silent)
                say(f"error: {e}")

    thread = threading.Thread(target=watch, name="stale-build-locks", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=every_s)


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()


# ---------------------------------------------------------------- collectives every stage uses
def world_size() -> int:
    """Processes in the run's process group (1 when there is none)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every process (a no-op alone)."""
    if world_size() > 1:
        dist.barrier()


def sum_across(values: list, device: torch.device) -> list[float]:
    """Each value summed over the processes, in one all-reduce, brought to the host."""
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device) for v in values])
    if world_size() > 1:
        dist.all_reduce(packed)
    return packed.tolist()


def any_across(flag: bool, device: torch.device) -> bool:
    """Whether the flag is set on any process (so that every process takes the same branch)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
