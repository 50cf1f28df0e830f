"""Freeing a finished sweep's disk: `python -m bench.sweep FILE --clean checkpoints`.

A finished run's records (run.json, metrics.jsonl, evals.jsonl, predictions) are what the report reads;
its checkpoints only serve resuming and evaluating it again (`python -m bench.eval RUN`, `bench.export`).
Cleaning removes the checkpoints of the sweep's finished runs only: a run that is not done (queued,
running, failed, preempted) keeps them, since it resumes from them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.results import RunDir

CLEANABLE = ("checkpoints",)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def clean_checkpoints(rundirs: list[RunDir], done: list[bool]) -> tuple[int, int, list[str]]:
    """Remove the checkpoints of the done runs: (runs cleaned, bytes freed, run_ids kept because not done)."""
    cleaned, freed, kept = 0, 0, []
    for rd, is_done in zip(rundirs, done):
        ckpts = rd.checkpoints
        if not ckpts.is_dir():
            continue
        if not is_done:
            kept.append(rd.path.name)
            continue
        size = folder_bytes(ckpts)
        shutil.rmtree(ckpts)
        cleaned, freed = cleaned + 1, freed + size
    return cleaned, freed, kept


def describe(cleaned: int, freed: int, kept: list[str]) -> str:
    line = f"removed the checkpoints of {cleaned} finished run(s): {freed / 2**20:,.0f} MiB freed"
    if kept:
        line += f"; kept those of {len(kept)} run(s) not done (they resume from them): {', '.join(kept)}"
    return line + ". Their records stay; python -m bench.eval and bench.export need a checkpoint."
