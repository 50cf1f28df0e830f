"""Every run record and metric record of a results store, as one tidy pandas DataFrame.

Reads files only (results/runs/*/run.json, evals.jsonl and metrics.jsonl, results/sweeps/*.json), so a report can be
built on a laptop from results copied off a cluster. Partial and failed runs stay in the frame, with
their status, never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis import tuning
from bench.results import RUNS, SWEEPS, RunDir, read_jsonl, run_dirs  # the store's own layout and reader: standard library only

COLUMNS = ["run_id", "sweep", "condition", "model", "seed", "status", "stage", "samples_seen", "task", "metric",
           "value", "chance", "prior", "rate_hz", "budget", "wall_s", "setup_s", "dataset", "sets", "train_flops", "train_s"]
# train_flops, train_s: the run's training FLOPs and seconds in optimizer steps up to the evaluation
EVAL_KEYS = ["run_id", "stage", "samples_seen", "task", "metric", "value", "chance", "prior", "rate_hz", "dataset",
             "sets", "train_flops", "train_s", "lo", "hi", "se"]
# prior: the no-vision prior (bench/eval/tasks/vqa.py, classification.py), in records written since it was added;
# lo, hi: a run's own 95% interval where its task computes one (selective decoding's bootstrap over streams);
# se: the standard error over items of a metric that is a mean over them (the evaluation's own noise)
MEAN = "mean"  # the dataset of a task's average over its eval sets (bench/tasks)


def _flat(prefix: str, obj, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = obj


def sweeps(results: Path) -> dict[str, list[dict]]:
    """run_id -> the sweeps it belongs to: [{sweep, condition, label, seed, point, swept}] (label: the
    condition's readable name where the sweep file gives one, else the condition). A tuned sweep's run at its arm's
    chosen value belongs as the arm, with the set its numbers are read on (report_set); its other runs belong to
    the sweep's tuning (analysis/tuning.py)."""
    out: dict[str, list[dict]] = {}
    for f in sorted((results / SWEEPS).glob("*.json")):
        rec = json.loads(f.read_text())
        tuned = tuning.membership(results, rec) if rec.get("tune") else {}  # a tuned sweep: its arms at their choice
        for order, r in enumerate(rec.get("runs", [])):  # order: the sweep's own (grid) order
            row = {"sweep": rec["name"], "condition": r["condition"], "order": order,
                   "label": r.get("label") or r["condition"], "seed": r["seed"], "point": r.get("point", {}),
                   "swept": tuning.arm_keys(rec)}
            out.setdefault(r["run_id"], []).append({**row, **tuned.get(r["run_id"], {})})
    return out


def runs(results: str | Path) -> pd.DataFrame:
    """One row per run (and per sweep it belongs to): status, model, seed, budget, sweep point."""
    results = Path(results)
    membership = sweeps(results)
    rows = []
    swept: set[str] = set()
    for run in run_dirs(results):
        rec = run.read_record()
        base = {"run_id": rec["run_id"], "model": rec.get("model"), "seed": rec.get("seed"),
                "status": rec.get("status"), "budget": rec.get("config", {}).get("train", {}).get("budget", {}).get("samples"),
                "samples_done": rec.get("samples_seen"),
                "wall_s": rec["finished"] - rec["started"] if rec.get("finished") and rec.get("started") else None,
                "setup_s": rec.get("setup_s")}  # the start-up before the first step, one-off work included
        for m in membership.get(rec["run_id"], [{"sweep": None, "condition": None, "point": {}}]):
            row = {**base, "sweep": m["sweep"], "condition": m["condition"], "label": m.get("label"),
                   "order": m.get("order"), "report_set": m.get("report_set")}
            for k, v in m.get("point", {}).items():
                row[k] = v if not isinstance(v, (list, dict)) else json.dumps(v)
                swept.add(k)
            rows.append(row)
    frame = pd.DataFrame(rows)
    for k in swept:  # a swept value as the sweep wrote it (64000, not the 64000.0 of a float column with gaps)
        frame[k] = pd.Series([r.get(k) for r in rows], index=frame.index, dtype=object)
    return frame


def metrics(results: str | Path, per_dataset: bool = False) -> pd.DataFrame:
    """One row per (run, sweep, samples_seen, task, metric), with the run's columns and the grid's keys.
    A run with no metric yet appears once with task and value empty (its status says why).

    A task evaluated on several eval sets has a record per set and their mean (dataset "mean"): by default
    only the task's summary is kept (the mean, or its one set's record), so every table and figure reads
    one number per task and metric; per_dataset=True keeps every set's own record too."""
    results = Path(results)
    run_frame = runs(results)
    if run_frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    evals = []
    for rid in run_frame["run_id"].unique():
        for r in read_jsonl(RunDir(results / RUNS / rid).evals):
            row = {k: r.get(k) for k in EVAL_KEYS}
            row["sets"] = json.dumps(row["sets"]) if row["sets"] is not None else None
            evals.append(row)
    ev = pd.DataFrame(evals, columns=EVAL_KEYS)
    ev["summary"] = summary_rows(ev) if len(ev) else pd.Series(dtype=bool)
    frame = run_frame.merge(ev, on="run_id", how="left")
    if not per_dataset and len(ev):  # a tuned sweep's arm reads its report set; every other row the summary
        tuned = frame["report_set"].notna()
        frame = frame[(~tuned & frame["summary"].fillna(True).astype(bool)) | (tuned & (frame["dataset"] == frame["report_set"]))]
    frame = frame.drop(columns="summary")
    frame["partial"] = frame["status"] != "done"
    return frame


def training_curves(results: str | Path) -> pd.DataFrame:
    """One row per (run, sweep, logged window of steps): samples_seen and the training loss, with the run's
    sweep, condition, its label and place in the sweep's order, seed and model (metrics.jsonl; runs without
    logged steps have no rows)."""
    results = Path(results)
    run_frame = runs(results)
    columns = ["run_id", "sweep", "condition", "label", "order", "seed", "model", "samples_seen", "loss"]
    if run_frame.empty:
        return pd.DataFrame(columns=columns)
    rows = [{"run_id": rid, "samples_seen": r["samples_seen"], "loss": r["loss"]}
            for rid in run_frame["run_id"].unique()
            for r in read_jsonl(RunDir(results / RUNS / rid).metrics) if "loss" in r]
    steps = pd.DataFrame(rows, columns=["run_id", "samples_seen", "loss"])
    return run_frame[columns[:-2]].merge(steps, on="run_id")[columns]


def summary_rows(ev: pd.DataFrame) -> pd.Series:
    """True for a task's summary record: the mean over its sets where there is one, else its only set's."""
    has_mean = ev.assign(m=ev["dataset"] == MEAN).groupby(["run_id", "samples_seen", "task"])["m"].transform("any")
    return ev["dataset"].isna() | (ev["dataset"] == MEAN) | ~has_mean


def interval(values: pd.Series) -> tuple[float, float, int]:
    """(mean, half-width of the 95% t-interval over seeds, n); half-width 0 for one seed."""
    from scipy import stats

    v = values.dropna().astype(float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v.iloc[0]), 0.0, 1
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / n ** 0.5)
    return float(v.mean()), half, n
