"""Evaluation tasks: one module each, all through the model protocol (score / generate / embed), so
every registered model gets every task. TASKS is the one task registry: a name -> the task's
run(model, ctx, evalset) -> metric records, and the kind of eval set it reads (TASK_SETS is derived from it).

A task runs once per eval set it is given (ctx.sets[task]); each record names its set ("dataset"). When
a task has several sets, their mean is recorded too (dataset "mean", as the paper averages its 8
classification and 8 retrieval sets), for every metric that all of them report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bench.config import EvalConfig, feature_check
from bench.eval.curves import REFERENCE_RATE
from bench.eval.sets.kinds import (
    CaptioningSet,
    ChoiceSet,
    ClassificationSet,
    HardNegativeSet,
    RetrievalSet,
    StreamSet,
)
from bench.eval.tasks import captioning, classification, hardneg, retrieval, streaming, vqa, world_prediction
from bench.eval.tasks.common import EvalContext, metric, split_outcomes
from bench.eval.tasks.unreadable import run_readable


@dataclass(frozen=True)
class Task:
    run: Callable[..., list[dict]]  # run(model, ctx, evalset) -> metric records
    reads: type  # the kind of eval set it is given (bench/eval/sets/kinds.py)


TASKS: dict[str, Task] = {
    "classification": Task(classification.run, ClassificationSet),
    "retrieval": Task(retrieval.run, RetrievalSet),
    "vqa": Task(vqa.run, ChoiceSet),
    "world": Task(world_prediction.run, ChoiceSet),  # the task keeps its recorded name
    "hardneg": Task(hardneg.run, HardNegativeSet),
    "captioning": Task(captioning.run, CaptioningSet),
    "streaming": Task(streaming.run, StreamSet),
}
TASK_SETS: dict[str, type] = {name: task.reads for name, task in TASKS.items()}
MEAN = "mean"


@feature_check("eval")
def check_task_names(cfg: EvalConfig) -> None:
    """eval.tasks, eval.sets and eval.task_size name known tasks; selective decoding's rates hold the reference."""
    known = ", ".join(TASKS)
    for key, names in (("sets", cfg.sets), ("task_size", cfg.task_size)):
        for task in names:
            if task not in TASKS:
                raise ValueError(f"{key} has an unknown task {task!r}; known: {known}")
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks has unknown tasks {unknown}; known: {known}")
    if "streaming" in cfg.tasks and REFERENCE_RATE not in cfg.stream_rates:
        raise ValueError(f"stream_rates {cfg.stream_rates} must include the reference rate {REFERENCE_RATE:g} Hz: "
                         "the reduction factor is read against uniform decoding at it")


def mean_records(task: str, per_set: list[list[dict]], names: list[str]) -> list[dict]:
    """The average over sets of every (metric, rate) that each set reports, in the first set's order."""
    keyed = [{(r["metric"], r.get("rate_hz")): r for r in recs} for recs in per_set]
    out = []
    for key in keyed[0]:
        if not all(key in k for k in keyed[1:]):
            continue
        rows = [k[key] for k in keyed]
        chances = [r["chance"] for r in rows]
        extra = {"rate_hz": key[1]} if key[1] is not None else {}
        skipped = sum(int(r.get("skipped", 0)) for r in rows)  # clips left out of the sets (eval.on_error: skip)
        extra.update({"skipped": skipped} if skipped else {})
        out.append(metric(task, key[0], float(np.mean([r["value"] for r in rows])),
                          None if None in chances else float(np.mean(chances)), dataset=MEAN, sets=list(names),
                          n=sum(int(r.get("n", 0) or 0) for r in rows), **extra))
    return out


def evaluate_task(model, ctx: EvalContext, task: str) -> list[dict]:
    """One task on each of its eval sets (and their mean, with several), each on its items whose clips decode
    (eval.on_error: bench/eval/tasks/unreadable.py)."""
    sets = ctx.sets[task]
    per_set = []
    for s in sets:
        recs, outcomes = split_outcomes(run_readable(TASKS[task].run, model, ctx, task, s))
        if outcomes:
            ctx.keep(task, s, outcomes, kind="outcomes")
        per_set.append([{**r, "dataset": s.name} for r in recs])
    recs = [r for rs in per_set for r in rs]
    if len(sets) > 1:
        recs += mean_records(task, per_set, [s.name for s in sets])
    return recs


TASK_FAILED = "failed"  # the metric of a task's failure record: no value, the error


def failure(task: str, error: BaseException) -> dict:
    """The record of a task whose evaluation failed: its metric is TASK_FAILED, its value none, and the error."""
    return {"task": task, "metric": TASK_FAILED, "value": None, "chance": None, "error": f"{type(error).__name__}: {error}"}


def evaluate(model, ctx: EvalContext, tasks: list[str], on_task: Callable[[str, list[dict]], None] | None = None) -> list[dict]:
    """Every task on each of its eval sets; on_task(task, records) is called as each task finishes. The hits of
    hit-rate metrics leave the records here for the context's per-item outputs (kind "outcomes")."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise KeyError(f"unknown eval tasks {unknown}; known: {', '.join(sorted(TASKS))}")
    missing = [t for t in tasks if not ctx.sets.get(t)]
    if missing:
        raise KeyError(f"no eval set for tasks {missing} (eval.sets)")
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for task in tasks:
                try:
                    recs = evaluate_task(model, ctx, task)
                except Exception as e:  # one task's failure: recorded, the others go on (eval.on_task_error)
                    if ctx.eval.on_task_error == "stop":
                        raise
                    recs = [failure(task, e)]
                if on_task:
                    on_task(task, recs)
                out += recs
        return out
    finally:
        model.train(was_training)
