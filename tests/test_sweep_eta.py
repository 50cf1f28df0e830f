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


def _run(arm: str, kind: str, **kw):
    """One run's status in a sweep whose conditions are its arms: a budget of 100 samples."""
    from bench.sweep.status import RunStatus

    return RunStatus(kind, kind, kind == "running", 100 if kind == "done" else kw.pop("seen", 0), 100,
                     kw.pop("pace", None), group=arm, arm=arm, **kw)


def test_the_time_left_takes_each_arm_at_its_own_cost_over_the_runs_going_at_once():
    """Two VL-JEPA runs took 60 s side by side, a VLM run 240 s; a second VLM run is half-way through its samples
    after 120 s, two more wait. Its time left is its arm's 240 s less its 120 (its pace alone, 50 s, misses the
    evaluations to come); the two waiting take the two slots the sweep runs (one is free for the moment)."""
    from bench.sweep.status import sweep_eta

    states = [_run("vljepa", "done", elapsed_s=60.0, started=0.0), _run("vljepa", "done", elapsed_s=60.0, started=0.0),
              _run("vlm", "done", elapsed_s=240.0, started=60.0),
              _run("vlm", "running", seen=50, pace=1.0, elapsed_s=120.0, started=180.0),
              _run("vlm", "new"), _run("vlm", "new")]
    assert sweep_eta(states) == 360.0  # slots: 120 + 240 and 240
    assert sweep_eta(states + [_run("clip", "new")]) == 480.0  # an arm not yet timed takes the slowest arm's 240


def test_a_condition_not_yet_finished_takes_no_less_than_the_cheapest_finished_arm():
    """Ablation (j)'s runs train for a minute and then spend two evaluating (the Y-decoder is trained at each
    evaluation): a first run of a new condition, projected at its training pace alone, would read 60 s where
    every finished run took 180; its projection is floored at the cheapest finished arm (replayed, the sweep
    read 3.0x short without the floor)."""
    from bench.sweep.status import sweep_eta

    states = [_run("targets", "done", elapsed_s=180.0, started=0.0),
              _run("both", "running", seen=50, pace=50 / 30, elapsed_s=30.0, started=180.0),
              _run("both", "new"), _run("both", "new")]
    assert sweep_eta(states) == 30.0 + 180.0 + 180.0  # the running run's samples at its pace; not 60 for each waiting
    cheap_first = [_run("frozen", "done", elapsed_s=60.0, started=0.0),
                   _run("tuned", "running", seen=10, pace=10 / 60, elapsed_s=60.0, started=60.0), _run("tuned", "new")]
    assert sweep_eta(cheap_first) == 540.0 + 600.0  # a dearer arm keeps its own projection (600 s)


def test_a_sweeps_statuses_carry_each_runs_condition_and_arm(tmp_path):
    """What sweep_eta groups runs by comes from the sweep's own runs: a tuned sweep's arm is the condition
    without the tuned key."""
    from dataclasses import replace

    from bench.sweep.config import load_sweep_config
    from bench.sweep.plan import expand, sweep_statuses

    sweep, path = load_sweep_config("comparison/jepa_vs_vlm_tuned.yaml")
    sweep = replace(sweep, results=str(tmp_path))
    runs = expand(sweep, path)
    states = sweep_statuses(sweep, runs)
    assert [(s.group, s.arm) for s in states] == [(r.condition, r.arm) for r in runs]
    assert len({s.group for s in states}) == len(runs) // len(sweep.seeds)
    assert {s.arm for s in states} == {"model.name=vljepa, model.lm.layers=-2:", "model.name=vlm, model.lm.layers=:"}


def _launches(runs: list[tuple[dict, list[dict], dict]]) -> list[tuple[float, float]]:
    """(start, end) of each stretch in which some run of the sweep was running: one per launch of the sweep."""
    spans = []
    for started, finished in sorted((r["started"], r["finished"]) for r, _, _ in runs):
        if spans and started <= spans[-1][1] + 60:
            spans[-1] = (spans[-1][0], max(spans[-1][1], finished))
        else:
            spans.append((started, finished))
    return spans


def _replayed_states(runs: list[tuple[dict, list[dict], dict]], t: float):
    """The statuses a sweep's runs had at time t, replayed from their records (run.json's start, end and start-up,
    the times of metrics.jsonl's rows as their heartbeats, the sweep record's condition and arm)."""
    from bench.sweep.status import RunStatus, pace

    states = []
    for rec, rows, member in runs:
        budget = rec["config"]["train"]["budget"]["samples"]
        where = {"group": member["condition"], "arm": member.get("arm", ""), "started": rec["started"]}
        if rec["finished"] <= t:
            states.append(RunStatus("done", "done", False, budget, budget, None, elapsed_s=rec["finished"] - rec["started"],
                                    setup_s=rec.get("setup_s"), **where))
        elif rec["started"] <= t:
            logged = [r for r in rows if r["time"] <= t]
            states.append(RunStatus("running", "running", True, logged[-1]["samples_seen"] if logged else 0, budget,
                                    pace(logged), elapsed_s=t - rec["started"], **where))
        else:
            states.append(RunStatus("new", "new", False, 0, budget, None, group=member["condition"], arm=member.get("arm", "")))
    return states


def _arm_cost_spread(runs: list[tuple[dict, list[dict], dict]]) -> float:
    """The slowest arm's median wall time over the fastest's (start-up excluded)."""
    walls: dict[str, list[float]] = {}
    for rec, _, member in runs:
        walls.setdefault(member.get("arm") or member["condition"], []).append(
            rec["finished"] - rec["started"] - (rec.get("setup_s") or 0.0))
    medians = [sorted(w)[len(w) // 2] for w in walls.values()]
    return max(medians) / min(medians)


def test_the_sweep_eta_holds_when_replayed_over_every_recorded_sweep():
    """Every committed sweep replayed minute by minute, as it ran (one or two runs at a time): while more than 5
    minutes remain, the sweep's time left is within 2.5x of what actually remained, once a run has finished in a
    sweep whose arms take alike times, and once every arm has a finished or timed run in one whose arms do not
    (y_lr_tuned's frozen arm runs 1 minute, its fine-tuned arms 4-10: until one of those has run, nothing can
    tell; the estimate that took every run for a typical one was 6.6x short there, 4.7x on jepa_vs_vlm_tuned)."""
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
            runs.append((json.loads((d / "run.json").read_text()), read_jsonl(d / "metrics.jsonl"), r))
        alike = _arm_cost_spread(runs) <= 2.5
        for start, end in _launches(runs):  # a sweep that grew (a value added to its grid) was launched again
            launched = [run for run in runs if run[0]["started"] <= end]  # the runs the sweep had then
            for t in np.arange(start + 30, end - 300, 60):
                states = _replayed_states(launched, t)
                timed = {s.arm or s.group for s in states if s.kind == "done" or s.pace}
                if any(s.kind == "done" for s in states) and (alike or timed >= {s.arm or s.group for s in states}):
                    eta = sweep_eta(states)
                    assert eta is not None
                    ratio = max(eta / (end - t), (end - t) / eta)
                    worst[record.stem] = max(worst.get(record.stem, 1.0), ratio)
    assert len(worst) >= 12 and max(worst.values()) <= 2.5, worst
    assert {"jepa_vs_vlm_tuned", "y_lr_tuned"} <= set(worst)  # two at a time, arms 2.6x and 7.5x apart
