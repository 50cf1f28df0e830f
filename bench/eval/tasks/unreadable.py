"""Eval items whose clips cannot be decoded (a broken file in a dataset): left out of the metric and counted
(eval.on_error: skip), or the task stopped with one line naming the file, the set and the task (fail: the
task's failure record, and the other tasks go on, eval.on_task_error).

With the feature cache (data.cache) the broken clips are known once the set's cache is built (bench/cache.py
keeps them beside the features), so the task runs once, on the rest. A task reading pixels meets them as it
goes and runs again on the set without the clip: once per broken clip, which is rare, where finding them
first would decode every clip twice.

Left out: a classification or captioning clip and its item; a retrieval video and its texts (the gallery
shrinks with it); every question about a clip. Each record of the set then carries `skipped` (the clips left
out) beside `n` (the items scored); the skipped files are in the set's predictions and in the log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

from bench.eval.sets.kinds import items_of, without
from bench.eval.tasks.common import EvalContext, UnreadableClip


class UnreadableMedia(ValueError):
    """A clip of an eval set cannot be decoded and eval.on_error is fail; the message is one line."""


def run_readable(run: Callable[..., list[dict]], model, ctx: EvalContext, task: str, s) -> list[dict]:
    """run(model, ctx, s) on the items of `s` whose clips decode (see the module's docstring)."""
    bad = known_unreadable(ctx, s)
    while True:
        if bad and ctx.eval.on_error == "fail":
            raise stop(task, s, bad)
        part, items = without(s, bad)
        keeper = _Keeper(ctx, task, s, bad, items)
        try:
            recs = run(model, replace(ctx, predictions=keeper.keep) if bad and ctx.predictions else ctx, part)
            break
        except UnreadableClip as e:
            if e.visuals is not getattr(s, "visuals", None):
                raise  # not a clip of this set (the training clips a decoder reads): not this set's to skip
            bad[e.index] = e.error
    if not bad:
        return recs
    keeper.finish()
    report(ctx, task, s, bad)
    return [{**r, "n": r.get("n", items_of(part)), "skipped": len(bad)} for r in recs]


def known_unreadable(ctx: EvalContext, s) -> dict[int, str]:
    """The set's clips the feature cache could not decode when it was built (none known without a cache)."""
    visuals = getattr(s, "visuals", None)
    lookup = getattr(ctx.features, "unreadable", None)
    return dict(lookup(visuals)) if visuals is not None and len(visuals) and lookup else {}


def clip_name(s, i: int, error: str) -> str:
    """Clip i's file (and segment) as the set names it, else its error, which names the file."""
    visuals = s.visuals
    return visuals.name(i) if hasattr(visuals, "name") else error


def stop(task: str, s, bad: dict[int, str]) -> UnreadableMedia:
    """The one-line error of eval.on_error: fail, naming the first unreadable file, the set and the task."""
    first = min(bad)
    more = f" (and {len(bad) - 1} more unreadable clips)" if len(bad) > 1 else ""
    return UnreadableMedia(f"task {task}, eval set {s.name!r}: {bad[first]}{more}; eval.on_error: fail "
                           "(skip leaves such items out and counts them)")


def report(ctx: EvalContext, task: str, s, bad: dict[int, str], shown: int = 20) -> None:
    """A line for the set, and one for each of the first `shown` files left out, in the run's log."""
    say = ctx.log or (lambda line: print(f"note: {line}", file=sys.stderr))
    say(f"task {task}, eval set {s.name!r}: {len(bad)} of {len(s.visuals)} clips cannot be decoded and are left "
        f"out (eval.on_error: skip); the files are in its predictions")
    for i in sorted(bad)[:shown]:
        say(f"  skipped clip {i}: {bad[i]}")
    if len(bad) > shown:
        say(f"  ... and {len(bad) - shown} more")


class _Keeper:
    """The set's kept predictions with its items numbered as in the whole set (not the set without its broken
    clips), and a row for each clip left out: {"skipped": file, "clip": index, "error": ...}."""

    def __init__(self, ctx: EvalContext, task: str, s, bad: dict[int, str], items: list[int]):
        self.write, self.task, self.s, self.items = ctx.predictions, task, s, items
        self.skipped = [{"skipped": clip_name(s, i, bad[i]), "clip": i, "error": bad[i]} for i in sorted(bad)]
        self.wrote = False

    def keep(self, task: str, evalset: str, rows: list[dict], kind: str = "predictions") -> None:
        if kind == "predictions":
            rows = [{**r, "item": self.items[r["item"]]} if "item" in r else r for r in rows] + self.skipped
            self.wrote = True
        self.write(task, evalset, rows, kind)

    def finish(self) -> None:
        """The skipped clips' rows, where the task keeps no predictions of its own (retrieval)."""
        if self.write is not None and not self.wrote:
            self.write(self.task, self.s.name, self.skipped, "predictions")
