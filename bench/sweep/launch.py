"""Executors of a sweep's runs, through submitit: slurm, local, or inline (in this process, in order).

Each run is one submitit job running TrainJob: with launch.processes > 1 the job has that many tasks
(one per GPU, or per CPU process), and bench.dist reads the rank and world size from Slurm or from
submitit's local executor. TrainJob implements submitit's checkpoint(): a preempted or timed-out job
is requeued with the same arguments and resumes from the run's latest checkpoint.
(submitit's DebugExecutor is not used: it drops into pdb on errors, which hangs unattended runs.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import LaunchConfig, RunConfig
from bench.configlib import from_dict, to_dict
from bench.results import RunDir
from bench.run.liveness import Heartbeat, liveness, read_heartbeat

EXECUTORS = ("slurm", "local", "inline")


class TrainJob:
    """The callable a job runs: one run from its resolved config (a plain dict, so it pickles)."""

    def __init__(self, config: dict[str, Any], threads: int | None = None):
        self.config, self.threads = config, threads  # threads: torch's intra-op threads (None: its default)

    def __call__(self) -> str:
        announced = self.announce()
        try:
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            # lazy: the job process needs the trainer (torch, DeepSpeed: ~9 s to import); the sweep command that
            # pickles this job, and its --status, do not
            from bench.run.train import Preempted, run
        except BaseException:
            self.withdraw(announced)
            raise
        try:
            return run(from_dict(RunConfig, self.config))["status"]
        except Preempted:
            # checkpointed on a signal: end without a result, so the requeued job's result is the one kept
            raise SystemExit(-1) from None
        except BaseException:
            self.withdraw(announced)
            raise

    def announce(self) -> Path | None:
        """Say at once that the run is launching (its heartbeat), before the trainer's imports and checks, so
        that --status shows it as running from its first second, not as new. A live heartbeat (another
        process holds the run) is left alone: the run itself then refuses to start, naming its holder."""
        env = os.environ
        if int(env.get("RANK", env.get("SUBMITIT_LOCAL_GLOBALID", env.get("SLURM_PROCID", "0")))) != 0:
            return None  # one writer: the main process (bench/dist.py reads the same variables)
        cfg = from_dict(RunConfig, self.config)
        path = RunDir.of(cfg.output_dir, cfg.run_id).heartbeat
        if liveness(path, cfg.train.stall_after_s) is not None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        Heartbeat(path).beat("launching")
        return path

    @staticmethod
    def withdraw(announced: Path | None) -> None:
        """A job that failed before its run took over the heartbeat (an import, a refused config, a run busy
        elsewhere) takes back its 'launching': the run shows as it was, not as running until it goes stale."""
        beat = read_heartbeat(announced) if announced else None
        if beat and beat.get("phase") == "launching":
            announced.unlink(missing_ok=True)

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.config, self.threads))


def default_executor() -> tuple[str, str]:
    """(executor, why): slurm where sbatch is on PATH and a Slurm controller answers (`scontrol ping`), else local.
    A machine with Slurm's commands but no running controller (a stopped local cluster) runs locally instead of
    failing at its first submission."""
    if not shutil.which("sbatch"):
        return "local", "no sbatch on PATH"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        up = ping.returncode == 0 and "UP" in ping.stdout
    except (OSError, subprocess.TimeoutExpired):
        up = False
    return ("slurm", "sbatch found, its controller answers") if up else \
        ("local", "sbatch found, but no Slurm controller answers `scontrol ping`")


def _slurm_parameters(launch: LaunchConfig, max_parallel: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "nodes": launch.nodes, "tasks_per_node": max(1, launch.processes // launch.nodes),
        "cpus_per_task": launch.cpus_per_task, "mem_gb": launch.mem_gb, "timeout_min": launch.time_min,
        "slurm_array_parallelism": max_parallel or launch.array_parallelism,
    }
    if launch.gpus_per_node:
        params["gpus_per_node"] = launch.gpus_per_node
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(launch, key):
            params[f"slurm_{key}"] = getattr(launch, key)
    return params


DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@contextlib.contextmanager
def without_dist_env():
    """Jobs inherit this process's environment: keep out the distributed variables an earlier run in this
    process exported (its MASTER_PORT is taken, and a job must find its own rank)."""
    saved = {k: os.environ.pop(k) for k in DIST_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def submit(runs: list[RunConfig], executor: str, folder: Path, max_parallel: int | None,
           log: Callable[[str], None] = print, progress: Callable[[], None] | None = None) -> list[Any]:
    """Submit every run; returns submitit jobs (for inline: the statuses, runs done in order). Local jobs are
    waited for, with progress() called every PROGRESS_EVERY_S seconds and when a job ends."""
    if executor != "inline":
        with without_dist_env():
            return _submit(runs, executor, folder, max_parallel, log, progress)
    return _submit(runs, executor, folder, max_parallel, log, progress)


PROGRESS_EVERY_S = 60.0


def _submit(runs: list[RunConfig], executor: str, folder: Path, max_parallel: int | None,
            log: Callable[[str], None], progress: Callable[[], None] | None) -> list[Any]:
    if executor == "inline":
        statuses = []
        for cfg in runs:
            log(f"inline: {cfg.name} ({cfg.run_id})")
            statuses.append(TrainJob(to_dict(cfg))())
        return statuses
    import submitit

    folder.mkdir(parents=True, exist_ok=True)
    if executor == "slurm":
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
        ex.update_parameters(**_slurm_parameters(runs[0].launch, max_parallel), name=runs[0].name.split("/")[0])
        with ex.batch():
            jobs = [ex.submit(TrainJob(to_dict(cfg))) for cfg in runs]
        return jobs
    if executor == "local":
        return LocalQueue(folder, max_parallel or 1, log, progress).run(runs)
    raise ValueError(f"unknown executor {executor!r}; expected one of {EXECUTORS}")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a Slurm allocation or taskset, not the machine)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalQueue:
    """submitit's LocalExecutor, at most max_parallel jobs at a time (it has no array throttle). The usable
    CPUs are shared out: each job's torch runs usable_cpus() // max_parallel threads (at least 1), where each
    would otherwise take them all and max_parallel jobs would oversubscribe the machine. On the tiny preset a
    run at 1 thread logged the same losses and metrics as at 2 (measured on one CPU; run.json records the
    count), and its small matrices use a second thread poorly: two 1-thread runs at a time
    finish a sweep sooner than one 2-thread run at a time."""

    def __init__(self, folder: Path, max_parallel: int, log: Callable[[str], None],
                 progress: Callable[[], None] | None = None):
        self.folder, self.max_parallel, self.log = folder, max_parallel, log
        self.progress = progress or (lambda: None)
        self.threads = max(1, usable_cpus() // max_parallel)

    def run(self, runs: list[RunConfig]) -> list[Any]:
        import submitit

        pending, running, jobs = list(runs), [], []
        said = time.time()
        while pending or running:
            while pending and len(running) < self.max_parallel:
                cfg = pending.pop(0)
                ex = submitit.LocalExecutor(folder=self.folder / cfg.run_id)  # (it would keep "%j" literally)
                ex.update_parameters(timeout_min=cfg.launch.time_min, tasks_per_node=cfg.launch.processes)
                job = ex.submit(TrainJob(to_dict(cfg), self.threads))
                self.log(f"local job {job.job_id}: {cfg.name} ({cfg.run_id}), {self.threads} thread(s)")
                running.append((job, cfg))
                jobs.append(job)
            time.sleep(1.0)
            ended = [jc for jc in running if jc[0].done()]
            for job, cfg in ended:
                running.remove((job, cfg))
                self.log(f"{cfg.name} ({cfg.run_id}): {describe_outcome(job)}")
            if ended or time.time() - said >= PROGRESS_EVERY_S:
                self.progress()
                said = time.time()
        return jobs


def describe_outcome(job) -> str:
    """'done', or 'failed' with the last lines of the job's error log."""
    try:
        return str(job.result())
    except Exception as e:  # submitit re-raises the job's failure: report it, keep the sweep going
        tail = "\n".join((job.stderr() or "").strip().splitlines()[-8:])
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}\n{tail}"
