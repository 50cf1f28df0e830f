"""A tuned sweep's choice (bench/sweep/tune.py): for each arm, the value of the tuned key with the best mean over
seeds of the tuning metric on the selection set at the full budget; the arms' verdicts are then read at their
chosen values on the report set, which the choice never saw.

Reads files only: the sweep record and its runs' run.json and evals.jsonl. A value counts only when every seed
the sweep lists for it is done and scored (no choice from a partial set of seeds); an arm with no such value has
no choice yet, and the table says what it waits for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.results import DONE, RUNS, RunDir, read_jsonl

TUNING = " (tuning)"  # the sweep name a tuned sweep's runs at the values not chosen are listed under


@dataclass(frozen=True)
class Choice:
    """One arm's tuning: each value's selection-set scores per seed, and the value chosen (None: not yet)."""

    arm: str
    label: str
    scores: dict[str, dict[int, float]]  # json of the value -> seed -> metric on the selection set
    expected: dict[str, list[int]]  # json of the value -> the seeds the sweep runs it with
    chosen: Any = None
    chosen_key: str | None = None  # json of the chosen value
    waits: list[str] = field(default_factory=list)  # what a value still lacks

    def mean(self, key: str) -> float | None:
        s = self.scores.get(key, {})
        return sum(s.values()) / len(s) if s else None


def value_key(value: Any) -> str:
    return json.dumps(value)


def _final_score(results: Path, run_id: str, task: str, metric: str, dataset: str) -> float | None:
    """The run's metric on the set at its full budget, where the run is done; else None."""
    folder = RunDir(results / RUNS / run_id)
    if not folder.record.is_file():
        return None
    rec = folder.read_record()
    budget = rec.get("config", {}).get("train", {}).get("budget", {}).get("samples")
    if rec.get("status") != DONE:
        return None
    values = [r["value"] for r in read_jsonl(folder.evals)
              if r.get("task") == task and r.get("metric") == metric and r.get("dataset") == dataset
              and r.get("samples_seen") == budget]
    return float(values[-1]) if values else None


def choose(results: str | Path, record: dict) -> list[Choice]:
    """Each arm's choice, in the sweep's order (empty for a sweep without a tune block)."""
    tune = record.get("tune")
    if not tune:
        return []
    results = Path(results)
    task, _, metric = tune["metric"].partition("/")
    order = [value_key(v) for v in tune["values"]]
    arms: dict[str, dict] = {}
    for r in record.get("runs", []):
        arm = arms.setdefault(r["arm"], {"label": r.get("arm_label") or r["arm"], "scores": {}, "expected": {}})
        value = value_key(r["point"][tune["key"]])
        arm["expected"].setdefault(value, []).append(r["seed"])
        score = _final_score(results, r["run_id"], task, metric, tune["select"])
        if score is not None:
            arm["scores"].setdefault(value, {})[r["seed"]] = score
    sign = 1 if tune.get("goal", "max") == "max" else -1
    out = []
    for name, a in arms.items():
        complete = [v for v in order if v in a["expected"] and len(a["scores"].get(v, {})) == len(a["expected"][v])]
        waits = [f"{tune['key']}={json.loads(v)}: {len(a['expected'][v]) - len(a['scores'].get(v, {}))} of "
                 f"{len(a['expected'][v])} seed(s) not done" for v in order if v in a["expected"] and v not in complete]
        choice = Choice(name, a["label"], a["scores"], a["expected"], waits=waits)
        if complete and not waits:  # max() keeps the first of equal means: the first value in the sweep's order
            best = max(complete, key=lambda v: sign * choice.mean(v))
            choice = Choice(name, a["label"], a["scores"], a["expected"], json.loads(best), best, waits)
        out.append(choice)
    return out


def membership(results: str | Path, record: dict) -> dict[str, dict]:
    """run_id -> how a tuned sweep's run enters the tables: a run at its arm's chosen value as the arm (its
    condition, label and point without the tuned key, its numbers read on the report set); every other run under
    the sweep's name + TUNING, so the status lists it and no verdict reads it."""
    tune = record["tune"]
    chosen = {c.arm: c.chosen_key for c in choose(results, record)}
    out = {}
    for r in record.get("runs", []):
        if chosen.get(r["arm"]) is not None and value_key(r["point"][tune["key"]]) == chosen[r["arm"]]:
            out[r["run_id"]] = {"sweep": record["name"], "condition": r["arm"], "label": r.get("arm_label") or r["arm"],
                                "point": {k: v for k, v in r["point"].items() if k != tune["key"]},
                                "report_set": tune["report"]}
        else:
            out[r["run_id"]] = {"sweep": record["name"] + TUNING, "condition": r["condition"],
                                "label": r.get("label") or r["condition"], "point": r["point"]}
    return out


def edge(choice: Choice, values: list[Any]) -> str | None:
    """"largest" or "smallest" where the chosen value is the end of a numeric range of values (the best may then
    lie beyond the values tried: a choice at the edge is not yet a tuned value); else None."""
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if choice.chosen_key is None or len(numeric) < 2 or len(numeric) != len(values):
        return None
    if choice.chosen == max(numeric):
        return "largest"
    return "smallest" if choice.chosen == min(numeric) else None


def arm_keys(record: dict) -> list[str]:
    """The keys whose values are the arms (the swept keys without the tuned one)."""
    tuned = (record.get("tune") or {}).get("key")
    return [k for k in record.get("swept", []) if k != tuned]
