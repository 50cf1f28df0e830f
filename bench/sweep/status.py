"""Where each run of a sweep is, read from the results store (and Slurm's queue): its state, samples seen of
its budget, pace and time left; the sweep's counts and overall time left. bench.sweep.plan's --status, --watch
and its launch (what not to submit again) read these; nothing here writes.

A run's pace is samples per wall-clock second over its latest logged steps (metrics.jsonl rows carry their
time), evaluations and checkpoints included, so time left counts them too. A sweep's time left (sweep_eta)
takes each run not started at the wall time finished runs of its condition or arm took, their one-off work
apart (`setup_s` in run.json: pretraining the LM and building caches, done once per machine), queued behind
the running runs on as many slots as the sweep has run at once.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any

from bench.results import DONE, FAILED, PREEMPTED, RUNNING, RunDir, read_jsonl
from bench.run.checkpoint import read_latest
from bench.run.liveness import liveness
from bench.run.progress import duration

LIVE_SLURM = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED")
ENDED_SLURM = ("CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
KINDS = ("done", "running", "queued", "stalled", "failed", "cancelled", "preempted", "new")  # the counts, in this order
PACE_ROWS = 20  # the latest logged windows a pace is measured over
PACE_GAP_S = 600.0  # a longer gap between two rows is a restart: the pace is measured after it


@dataclass
class RunStatus:
    state: str  # the table's words: "done", "running: training, at 1,024 samples; resumes at 0", ...
    kind: str  # one of KINDS
    live: bool  # queued or moving: not to be submitted again
    seen: int  # samples seen (live position, else the latest checkpoint's)
    budget: int
    pace: float | None  # samples per second, recently
    error: str = ""  # a failed run's error and last log lines
    phase: str = ""  # a live run's heartbeat phase: what it is doing now
    elapsed_s: float | None = None  # wall time since the run started (a live or finished run)
    setup_s: float | None = None  # the run's start-up before its first step (one-off work included), when known
    group: str = ""  # the run's condition (its point without the seed): runs of one group take about one time
    arm: str = ""  # a tuned sweep's arm (the condition without the tuned key); its runs take about one time too
    started: float | None = None  # when the run started (epoch seconds), where recorded

    @property
    def eta_s(self) -> float | None:
        if self.kind == "done":
            return 0.0
        return (self.budget - self.seen) / self.pace if self.pace and self.kind == "running" else None


def run_state(cfg: Any, run_id: str) -> str:
    """new / done / running (its live position) / stalled / <status>, resumes at N, from the results store."""
    d = RunDir.of(cfg.output_dir, run_id)
    status = d.status()
    if status is None and not d.heartbeat.is_file():
        return "new"
    if status == DONE:
        return "done"
    latest = read_latest(d.checkpoints, verify=False)
    resumes = f"resumes at {latest['meta']['samples_seen'] if latest else 0:,}"
    live = liveness(d.heartbeat, cfg.train.stall_after_s)
    if status in (RUNNING, None) and live:
        kind, beat = live
        where = f"{beat.get('phase', '?')}, at {beat.get('samples_seen', 0):,} samples"
        if kind == "alive":
            return f"running: {where}; {resumes}"
        return f"stalled: no progress for {beat['age_s'] / 60:.0f} min ({where}); {resumes}"
    return f"{status or 'new'}, {resumes}"


def is_live(state: str, slurm_state: str | None) -> bool:
    """A run not to submit again: moving in some process, or waiting or running in the scheduler."""
    return state.startswith("running:") or (slurm_state or "").split(" ")[0] in LIVE_SLURM


def pace(rows: list[dict[str, Any]]) -> float | None:
    """Samples per wall-clock second over the latest metrics rows (after the last restart), or None."""
    timed = [r for r in rows[-PACE_ROWS:] if "time" in r]
    for i in range(len(timed) - 1, 0, -1):
        if timed[i]["time"] - timed[i - 1]["time"] > PACE_GAP_S:
            timed = timed[i:]
            break
    if len(timed) < 2 or timed[-1]["time"] <= timed[0]["time"]:
        return None
    return (timed[-1]["samples_seen"] - timed[0]["samples_seen"]) / (timed[-1]["time"] - timed[0]["time"])


def samples_seen(d: RunDir, budget: int, kind: str) -> int:
    if kind == "done":
        return budget
    beat = liveness(d.heartbeat, float("inf"))
    if beat and kind in ("running", "stalled"):
        return int(beat[1].get("samples_seen", 0))
    latest = read_latest(d.checkpoints, verify=False)
    return latest["meta"]["samples_seen"] if latest else 0


def status_of(cfg: Any, run_id: str, slurm_state: str | None, job: str | None, detail: bool = False) -> RunStatus:
    d = RunDir.of(cfg.output_dir, run_id)
    state = run_state(cfg, run_id)
    record_status = d.status()
    scheduler = (slurm_state or "").split(" ")[0]
    ended = scheduler in ENDED_SLURM  # the scheduler says the job is over: a fresh heartbeat is a dead run's last
    live = state != "done" and not ended and is_live(state, slurm_state)
    if state == "done":
        kind = "done"
    elif ended:
        kind = {"CANCELLED": "cancelled", "PREEMPTED": "preempted"}.get(
            scheduler, "preempted" if record_status == PREEMPTED else "failed")
    elif state.startswith("running:"):
        kind = "running"
    elif state.startswith("stalled:"):
        kind = "stalled"
    elif scheduler in LIVE_SLURM:
        kind = "running" if scheduler == "RUNNING" else "queued"
    elif record_status == FAILED:
        kind = "failed"
    elif record_status == PREEMPTED:
        kind = "preempted"
    else:
        kind = "new"
    if slurm_state and state != "done":
        state = f"slurm {slurm_state} (job {job}); {state}"
    error = ""
    if detail and record_status == FAILED and kind == "failed":
        tail = " | ".join(d.log.read_text().splitlines()[-3:]) if d.log.is_file() else ""
        error = d.read_record().get("error", "")
        state = f"failed: {error} [{tail}]"
    budget = cfg.train.budget.samples
    run_pace = pace(read_jsonl(d.metrics)) if kind == "running" else None
    beat = liveness(d.heartbeat, float("inf")) if kind == "running" else None
    record = d.read_record() if d.exists() else {}
    end = record.get("finished") if kind == "done" else time.time()
    elapsed = end - record["started"] if record.get("started") and end else None
    return RunStatus(state, kind, live, samples_seen(d, budget, kind), budget, run_pace, error,
                     phase=beat[1].get("phase", "") if beat else "", elapsed_s=elapsed, setup_s=record.get("setup_s"),
                     started=record.get("started") if elapsed is not None else None)


def slurm_states(job_ids: list[str]) -> dict[str, str]:
    """job id -> Slurm state (PENDING, RUNNING, ... and, for jobs that ended, CANCELLED, TIMEOUT, ...) for
    the jobs Slurm knows; empty without Slurm."""
    if not job_ids:
        return {}
    states = queued_states(job_ids)
    missing = [j for j in job_ids if j not in states]
    return {**ended_states(missing), **states} if missing else states


def ended_states(job_ids: list[str]) -> dict[str, str]:
    """job id -> how it ended (CANCELLED, TIMEOUT, ...), from accounting (sacct), or where a cluster keeps
    none, from the controller's memory of recent jobs (scontrol: MinJobAge, 5 min by default)."""
    try:
        done = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            job, _, state = line.partition("|")
            if job in job_ids and state:
                out[job] = state.split()[0]
        return out
    for job in job_ids:  # no accounting: ask the controller, job by job
        try:
            shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return out
        for field in shown.stdout.split():
            if field.startswith("JobState="):
                out[job] = field.removeprefix("JobState=")
                break
    return out


def queued_states(job_ids: list[str]) -> dict[str, str]:
    """job id -> state (and reason) of the jobs in Slurm's queue."""
    try:
        # --array: one line per array element, so pending elements show as 71_3, not 71_[1-17%16]
        out = subprocess.run(["squeue", "-h", "--array", "-j", ",".join(sorted({j.split("_")[0] for j in job_ids})),
                              "-o", "%i %T %r"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in out.splitlines():
        job, state, *reason = line.split()
        reason = " ".join(reason)
        states[job] = state if reason in ("", "None") else f"{state} ({reason})"
    return states


def statuses(runs: list[Any], jobs: dict[str, str], detail: bool = False) -> list[RunStatus]:
    """Each run's status (runs: bench.sweep.plan.SweepRun, whose .condition and .arm group the runs of alike
    cost; jobs: run_id -> Slurm job id). Slurm is asked
    only about the jobs of runs not done."""
    open_jobs = {jobs[r.run_id] for r in runs if r.run_id in jobs and RunDir.of(r.cfg.output_dir, r.run_id).status() != DONE}
    queue = slurm_states(sorted(open_jobs))
    return [replace(status_of(r.cfg, r.run_id, queue.get(jobs.get(r.run_id, "")), jobs.get(r.run_id), detail),
                    group=r.condition, arm=r.arm) for r in runs]


def run_wall_s(s: RunStatus) -> float | None:
    """A finished run's wall time without its one-off start-up (where recorded)."""
    if s.kind != "done" or s.elapsed_s is None:
        return None
    return s.elapsed_s - (s.setup_s or 0.0)


def sweep_eta(states: list[RunStatus]) -> float | None:
    """Seconds until every run is done, or None before anything can tell. Runs of one condition (other seeds)
    and of one arm (other values of a tuned key) take about one time, and arms may not (a VLM twin takes twice
    VL-JEPA's time, a fine-tuned Y-encoder five times a frozen one's): each run's whole wall time, one-off
    start-up excluded, is expected from its own condition or arm first (_expected_walls). A running run has
    left its expected time less its elapsed where finished runs tell, else its samples left at its pace; the
    runs not started then take, in order, the first free of as many slots as the sweep has run at once."""
    expected = _expected_walls(states)
    running = [s for s in states if s.kind in ("running", "stalled", "queued")]
    waiting = [s for s in states if s.kind not in ("done", "running", "stalled", "queued")]
    slots = []
    for s in running:
        so_far = max(0.0, (s.elapsed_s or 0.0) - (s.setup_s or 0.0))
        guess = expected(s)
        if guess is not None and (guess[1] or not s.pace):  # finished runs' time includes the evaluations to come
            left = max(0.0, guess[0] - so_far)
        elif s.pace:
            left = (s.budget - s.seen) / s.pace
        else:
            return None
        if s.kind != "queued":
            slots.append(left)
    slots += [0.0] * (_most_at_once(states) - len(slots))  # a run just ended and the next not yet started
    for s in waiting + [s for s in running if s.kind == "queued"]:
        guess = expected(s)
        if guess is None:
            return None
        free = slots.index(min(slots))
        slots[free] += guess[0]
    return max(slots)


def _most_at_once(states: list[RunStatus]) -> int:
    """The most runs that have run at one time (at least 1): as many as the sweep runs at once."""
    spans = [(s.started, s.started + s.elapsed_s) for s in states if s.started is not None and s.elapsed_s is not None]
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return max(1, most)


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def _expected_walls(states: list[RunStatus]):
    """run status -> its expected whole wall time (sweep_eta's rule), or None when nothing tells yet: the median
    finished run of its condition, else of its arm (a tuned sweep's condition without the tuned key), else a
    running run of its condition or arm projected at its pace, which misses the evaluations to come, so no less
    than the cheapest finished arm (ablation (j) evaluates for twice its training: its projection read a third of
    a run), else the slowest arm known."""
    finished: dict[tuple[str, str], list[float]] = {}
    projected: dict[tuple[str, str], list[float]] = {}
    for s in states:
        wall = run_wall_s(s)
        keys = [("group", s.group), ("arm", s.arm or s.group)]
        if wall is not None:
            for k in keys:
                finished.setdefault(k, []).append(wall)
        elif s.pace and s.kind == "running":  # a whole run at its pace, from where its training began
            so_far = s.seen / s.pace if s.elapsed_s is None else max(0.0, s.elapsed_s - (s.setup_s or 0.0))
            for k in keys:
                projected.setdefault(k, []).append(so_far + (s.budget - s.seen) / s.pace)

    arms = [_median(finished.get(k) or projected[k]) for k in set(finished) | set(projected) if k[0] == "arm"]
    slowest = (max(arms), False) if arms else None
    done_arms = [_median(v) for k, v in finished.items() if k[0] == "arm"]
    floor = min(done_arms) if done_arms else 0.0  # a projection misses the evaluations: no less than the cheapest arm

    def expected(s: RunStatus) -> tuple[float, bool] | None:
        """(expected whole wall time, whether finished runs say so) or None."""
        keys = [("group", s.group), ("arm", s.arm or s.group)]
        for k in keys:
            if k in finished:
                return _median(finished[k]), True
        for k in keys:
            if k in projected:
                return max(_median(projected[k]), floor), False
        return slowest
    return expected


def summary(states: list[RunStatus], labels: list[str] | None = None) -> str:
    """One line: the counts, samples done of all, the time left, and what each live run is doing now."""
    counts = {k: sum(s.kind == k for s in states) for k in KINDS}
    seen, budget = sum(s.seen for s in states), sum(s.budget for s in states)
    left = sweep_eta(states)
    if all(s.kind == "done" for s in states):
        eta = "nothing left"
    elif left is not None:
        eta = f"about {duration(left)} left"
    else:
        eta = "time left unknown until a run logs its pace"
    shown = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    line = f"{len(states)} runs: {shown}; {seen:,}/{budget:,} samples ({100 * seen / max(budget, 1):.0f}%); {eta}"
    doing = [f"{labels[i] if labels else i}: {s.phase}" for i, s in enumerate(states) if s.kind == "running" and s.phase]
    return line + ("; now " + "; ".join(doing[:3]) if doing else "")


def table(runs: list[Any], states: list[RunStatus]) -> str:
    rows = ["| run_id | seed | condition | samples | time left | state |", "|---|---:|---|---:|---:|---|"]
    for r, s in zip(runs, states):
        left = "" if s.kind == "done" else duration(s.eta_s) if s.eta_s is not None else ""
        rows.append(f"| {r.run_id} | {r.seed} | {r.label or r.condition} | {s.seen:,}/{s.budget:,} | {left} | {s.state} |")
    return "\n".join(rows)


def clock() -> str:
    return time.strftime("%H:%M:%S")
