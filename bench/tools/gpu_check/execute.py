"""Running the plan: each step a subprocess in its own process group, offline, limited to its budget plus what
the steps before it left unused; its numbers read and its verdict given; the summary rewritten after each."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench.config import REPO_ROOT
from bench.tools.gpu_check.numbers import TaskClock, numbers_of, verdict
from bench.tools.gpu_check.scales import Scale
from bench.tools.gpu_check.settings import Folders
from bench.tools.gpu_check.steps import Step
from bench.tools.gpu_check.summary import Outcome, write_summary

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def step_env(scale: Scale) -> dict[str, str]:
    env = {**os.environ, **OFFLINE_ENV}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # each step is its own single-process run
    if scale.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the smoke runs on the CPU, also on a machine with a GPU
    return env


def execute(step: Step, limit_s: float, log: Path, env: dict[str, str]) -> tuple[int | None, float, TaskClock | None]:
    """Run the step's command in its own process group until it exits or its limit passes (then the group is
    killed: SIGKILL, so that a run does not start writing a checkpoint); (returncode or None, seconds, clock)."""
    clock = TaskClock(Path(step.report)) if step.kind == "train" else None
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(step.argv, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while proc.poll() is None and time.monotonic() - t0 < limit_s:
                if clock:
                    clock.poll()
                time.sleep(0.05 if clock else 0.2)  # often enough to see each task's records arrive alone
        finally:  # past its limit, or the check itself interrupted (Ctrl-C): the step's whole group goes
            timed_out = proc.poll() is None
            if timed_out:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if clock:
        clock.poll()
    return None if timed_out else proc.returncode, time.monotonic() - t0, clock


def run_step(step: Step, limit_s: float, folders: Folders, env: dict[str, str]) -> Outcome:
    log = folders.work / "logs" / f"{step.name.replace(':', '_')}.log"
    rc, wall, clock = execute(step, limit_s, log, env)
    out = Outcome(step.name, step.kind, step.twin, step.knob, "passed", step.budget_s, round(limit_s, 1),
                  round(wall, 1), rc, log=str(log))
    try:
        out.numbers = numbers_of(step, clock)
    except (OSError, ValueError, KeyError) as e:  # nothing (readable) written: the step's log says why
        out.error = f"no numbers: {e}"
    if step.kind == "train":  # random weights: its checkpoint (12 GB at paper scale) is of no use, and fills the disk
        for folder in Path(step.report).glob("*/checkpoints"):
            shutil.rmtree(folder, ignore_errors=True)
    out.status, error = verdict(step, rc, out.numbers)
    out.error = "; ".join(e for e in (error, out.error) if e)
    if out.status != "passed" or out.error:
        out.error += f"\n--- the last lines of {log} ---\n{_tail(log)}"
    return out


def run_plan(scale: Scale, steps: list[Step], folders: Folders, log=print) -> list[Outcome]:
    """Every step in order, each limited to its budget plus what the steps before it left unused; the summary
    is rewritten after each (a killed check keeps what it measured)."""
    env = step_env(scale)
    started = time.time()
    outcomes = [Outcome(s.name, s.kind, s.twin, s.knob, "not run", s.budget_s) for s in steps]
    spare = 0.0
    for i, step in enumerate(steps):
        limit = step.budget_s + spare
        log(f"[{i + 1}/{len(steps)}] {step.name}: up to {limit:.0f} s")
        outcomes[i] = run_step(step, limit, folders, env)
        spare = max(0.0, limit - outcomes[i].wall_s)
        first = outcomes[i].error.splitlines()[0] if outcomes[i].error else ""
        log(f"    {outcomes[i].status} in {outcomes[i].wall_s:.0f} s" + (f": {first} (log: {outcomes[i].log})" if first else ""))
        write_summary(scale, steps, outcomes, folders, started)
    return outcomes
