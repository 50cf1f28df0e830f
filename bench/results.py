"""The results store: one folder per run id, every file written so that a reader never sees half of it.

    results/runs/<run_id>/          RunDir below: the one place that spells this layout
        run.json        the run record: resolved config, run_id, git commit, versions, parity, status
        metrics.jsonl   one line per logged optimizer step (loss, lr, grad norm, samples/s, samples_seen)
        evals.jsonl     one line per (samples_seen, task, metric): value and chance level
        log.txt         the run's log lines, with wall-clock times
        heartbeat.json  what a running run is doing, rewritten as it moves (bench/run/liveness.py)
        scalars.csv     tracking.trackers csv: samples_seen, tag, value, wall_time (bench/run/trackers.py)
        wandb/          tracking.trackers wandb: the W&B run's files (offline: `wandb sync` them)
        predictions/    per evaluation, each task's per-item outputs on each eval set (captions, choices),
                        and the hits of its hit-rate metrics (<task>__<set>.outcomes.jsonl)
        checkpoints/    DeepSpeed checkpoints and their LATEST pointer (bench/run/checkpoint.py owns the inside)
        ondemand/       bench.tools.evaluate's records (<tag>.jsonl, or <tag>.<name>.jsonl with --name) and per-item
                        outputs (<tag>[.<name>].predictions/)
    results/sweeps/<name>.json      a sweep's runs, conditions and job ids (bench/sweep/plan.py)
    results/tensorboard/<name>/<run_id>/   TensorBoard event files, one folder per run named by its sweep,
                    condition and seed, so `tensorboard --logdir results/tensorboard` compares a sweep's runs

analysis/ reads these files (through RunDir and read_jsonl below, standard library only) and nothing
else of the suite.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_RECORD = "run.json"
PREDICTIONS = "predictions"
ONDEMAND = "ondemand"
METRICS = "metrics.jsonl"
EVALS = "evals.jsonl"
LOG = "log.txt"
RUNS, SWEEPS = "runs", "sweeps"  # the store's folders of run folders and of sweep records
RECORD_FILES = (RUN_RECORD, EVALS, METRICS)  # what a committed snapshot of a run keeps (no checkpoints)

# run.json "status" values
RUNNING, DONE, FAILED, PREEMPTED = "running", "done", "failed", "preempted"


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a temporary file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append whole lines, flushed to disk (a crash loses at most the lines being written). A write that
    fails (a full disk) is cut back to the file's previous end, so the lines before it stay whole, and the
    error names the file."""
    text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
    if not text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        end = f.tell()
        try:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            try:
                f.truncate(end)
            except OSError:
                pass  # read_jsonl still skips a torn last line
            raise OSError(e.errno, f"{e.strerror}: {len(rows) if isinstance(rows, list) else 'some'} record(s) could "
                                   f"not be appended to {path}; the {end:,} bytes before them are intact") from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (a crash mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Every complete row of a CSV file with a header (a torn last line is ignored), as strings."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    return [dict(zip(header, cells)) for cells in csv.reader(lines[1:]) if len(cells) == len(header)]


def truncate_jsonl(path: Path, keep) -> None:
    """Rewrite a JSONL file atomically with only the rows for which keep(row) is true (used on resume:
    lines logged after the checkpoint being resumed from are dropped, then logged again)."""
    if path.is_file():
        write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in read_jsonl(path) if keep(r)))


@dataclass(frozen=True)
class RunDir:
    """One run's folder: where each of its files lives, and reading its record."""

    path: Path

    @classmethod
    def of(cls, output_dir: str | Path, run_id: str) -> RunDir:
        return cls(Path(output_dir) / run_id)

    @property
    def record(self) -> Path:
        return self.path / RUN_RECORD

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def evals(self) -> Path:
        return self.path / EVALS

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def heartbeat(self) -> Path:
        return self.path / "heartbeat.json"

    @property
    def lease(self) -> Path:
        return self.path / "lease.json"  # bench/run/lease.py: who writes the run

    @property
    def scalars(self) -> Path:
        return self.path / "scalars.csv"

    @property
    def wandb(self) -> Path:
        return self.path / "wandb"

    def tensorboard(self, name: str) -> Path:
        """The run's TensorBoard folder, beside the store's runs/: tensorboard/<name>/<run_id>, where name is
        the run's name (a sweep's: sweep/condition/seedN), so a sweep's runs group under its name."""
        parts = [_folder_name(p) for p in name.split("/") if p not in ("", ".", "..")] or ["run"]
        return self.path.parent.parent / "tensorboard" / Path(*parts) / self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def predictions(self, samples_seen: int) -> Path:
        """The per-item outputs of the evaluation at samples_seen."""
        return self.path / PREDICTIONS / f"{samples_seen:012d}"

    def ondemand(self, tag: str, name: str | None = None) -> tuple[Path, Path]:
        """(records file, per-item outputs folder) of bench.tools.evaluate on checkpoint `tag`; `name` keeps evaluations
        of one checkpoint with different settings apart (bench.tools.evaluate --name)."""
        stem = f"{tag}.{name}" if name else tag
        return self.path / ONDEMAND / f"{stem}.jsonl", self.path / ONDEMAND / f"{stem}.predictions"

    def exists(self) -> bool:
        return self.record.is_file()

    def read_record(self) -> dict[str, Any]:
        return read_json(self.record)

    def status(self) -> str | None:
        """run.json's status, or None before the run first wrote it."""
        return self.read_record().get("status") if self.exists() else None


MAX_FOLDER_NAME = 120  # bytes; file systems refuse names over 255, and a sweep condition can be longer


def _folder_name(part: str) -> str:
    """part, or where it is too long for a folder name, its start and a hash of the whole (distinct parts stay
    distinct)."""
    raw = part.encode()
    if len(raw) <= MAX_FOLDER_NAME:
        return part
    return raw[:MAX_FOLDER_NAME - 9].decode(errors="ignore") + "~" + hashlib.sha256(raw).hexdigest()[:8]


def run_dirs(results: str | Path) -> Iterator[RunDir]:
    """Every run folder of a results store that has a run record, in run_id order."""
    for rec in sorted((Path(results) / RUNS).glob(f"*/{RUN_RECORD}")):
        yield RunDir(rec.parent)


OUTCOMES = "outcomes"  # per-item hits of a task's hit-rate metrics, beside its predictions


def set_file_name(evalset: str) -> str:
    """An eval set's name as its prediction files spell it ("shapes:test" -> "shapes_test"; a path flattened)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", evalset).strip("_") or "set"


def prediction_writer(folder: Path):
    """(task, eval set, rows, kind) -> folder/<task>__<set>.jsonl (kind "predictions": the task's outputs) or
    folder/<task>__<set>.outcomes.jsonl (kind "outcomes": each metric's per-item hits), written whole (a set
    named by a path is flattened to one file name): what EvalContext.predictions expects."""
    def write(task: str, evalset: str, rows: list[dict], kind: str = "predictions") -> None:
        name = set_file_name(evalset)
        suffix = f".{OUTCOMES}.jsonl" if kind == OUTCOMES else ".jsonl"
        write_atomic(folder / f"{task}__{name}{suffix}", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    return write
