"""Off-the-shelf reference models measured here (`python -m bench.eval hf:...`, bench/tools/reference.py: run.json
with `reference: true`), as rows of the report's literature and per-dataset tables, each labelled with what it
was measured on: the eval set, the clip shape the model read, the items.

Where a measured number may sit is decided by the name of its eval set, never by its task alone:
- beside a literature row of results/reference/sota.csv only where the set *is* that benchmark by its dataset
  registry name (GQA: `gqa`), or, for the paper's "(8 sets)" averages, where the number is the mean over exactly
  the sets the paper averages (results/reference/per_dataset.csv);
- in the per-dataset table for every set on disk (a registry name, a built-in dataset, a folder path), the
  paper's number beside it only where the registry name is the paper's dataset (tables.paper_beside);
- the shapes world (`shapes`, `shapes:<split>`) in tables of its own, one per set: its procedural clips are no
  benchmark, so a CLIP's top-1 on them never reads as a Kinetics number.
A folder given by its path never fills a benchmark's row, whatever the folder is called: only the registry says
which benchmark a folder holds. Tasks the model cannot do (`not_applicable` records) and tasks that failed are
named in the table of the reference models, with the reason or the error in a footnote.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis import tables
from analysis.records import MEAN
from bench.results import DONE, read_jsonl, run_dirs

NOT_APPLICABLE = "not_applicable"  # the metric of a task the model cannot do (bench/tools/reference.py)
FAILED = "failed"  # the metric of a task whose evaluation failed (bench/eval/tasks TASK_FAILED)
SHAPES = "shapes"  # the shapes world's eval set, `shapes` or `shapes:<split>` (bench/eval/sets/resolve.py)
BUILTIN = "builtin:"  # datasets the suite writes itself (bench/data/datasets.py BUILTIN_DATASETS)
PAPER_SETS = "the paper's sets"  # a benchmark that is the mean over the sets the paper averages
MARKS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")  # footnote marks

# each benchmark of results/reference/sota.csv -> (task, the metric our records name, the eval set it is: a
# registry name of experiments/datasets.yaml, or PAPER_SETS). A benchmark not named here gets no measured rows.
SOTA_SETS: dict[str, tuple[str, str, str]] = {
    "classification (8 sets)": ("classification", "top1", PAPER_SETS),
    "retrieval (8 sets)": ("retrieval", "t2v_R@1", PAPER_SETS),
    "GQA": ("vqa", "accuracy", "gqa"), "TallyQA": ("vqa", "accuracy", "tallyqa"),
    "POPE": ("vqa", "accuracy", "pope"), "POPEv2": ("vqa", "accuracy", "popev2"),
    "WorldPrediction-WM": ("world", "accuracy", "worldprediction_wm"),
    "SugarCrepe++": ("hardneg", "accuracy", "sugarcrepepp"), "VISLA": ("hardneg", "accuracy", "visla"),
}


@dataclass(frozen=True)
class MeasuredRun:
    """One reference model's evaluation: its run record's provenance and its records (evals.jsonl)."""

    run_id: str
    spec: str
    status: str
    weights: str
    adapter: dict
    records: tuple[dict, ...]

    @property
    def model(self) -> str:
        """The model's name in the tables: the last part of its spec's path or hub id, marked as measured here."""
        return f"{self.spec.partition(':')[2].rstrip('/').rsplit('/', 1)[-1] or self.spec} (measured here)"

    @property
    def clip(self) -> str:
        """The clip shape the model read its eval sets at (its own frames and image size)."""
        return f"{self.adapter.get('frames', '?')} frames × {self.adapter.get('image_size', '?')} px"

    @property
    def values(self) -> list[dict]:
        """Its records with a value, from a finished evaluation only (a failed one's records are partial)."""
        if self.status != DONE:
            return []
        return [r for r in self.records if r.get("value") is not None and r.get("metric") not in (NOT_APPLICABLE, FAILED)]

    def of(self, metric: str) -> list[dict]:
        """Its records of a metric without a value (NOT_APPLICABLE, FAILED)."""
        return [r for r in self.records if r.get("metric") == metric]


def measured_runs(results: str | Path) -> list[MeasuredRun]:
    """Every reference run of the store, by model name and run id."""
    found = []
    for run in run_dirs(results):
        rec = run.read_record()
        if rec.get("reference") is not True:
            continue
        found.append(MeasuredRun(rec["run_id"], rec.get("spec") or str(rec.get("model")), rec.get("status") or "unknown",
                                 rec.get("weights_hash") or "", rec.get("adapter") or {}, tuple(read_jsonl(run.evals))))
    return sorted(found, key=lambda m: (m.model, m.run_id))


def is_shapes(name: str) -> bool:
    return name == SHAPES or name.startswith(SHAPES + ":")


def _sets(record: dict) -> list[str]:
    sets = record.get("sets") or []
    return json.loads(sets) if isinstance(sets, str) else list(sets)


def on_shapes(record: dict) -> bool:
    """Whether a record was measured on the shapes world (one of its splits, or a mean over them only)."""
    name = str(record.get("dataset"))
    if name == MEAN:
        return bool(_sets(record)) and all(is_shapes(s) for s in _sets(record))
    return is_shapes(name)


@functools.cache
def paper_sets(task: str) -> frozenset[str]:
    """The sets the paper averages for a task (its per-dataset rows in results/reference/per_dataset.csv)."""
    ref = tables.reference("per_dataset")
    return frozenset(ref[(ref["task"] == task) & (ref["dataset"] != MEAN)]["dataset"])


def set_label(record: dict) -> str:
    """What a record's eval set is, in words: the shapes world and its split, a registry name, a built-in
    dataset, a folder's path, or a mean over sets."""
    name = str(record.get("dataset"))
    if name == MEAN:
        sets = _sets(record)
        paper = " (the paper's sets)" if set(sets) == paper_sets(str(record.get("task"))) else ""
        return f"mean of {len(sets)} sets{paper}: {', '.join(sets)}"
    if is_shapes(name):
        split = name.partition(":")[2] or record.get("split") or "val"
        return f"the shapes world, {split} split (procedural clips, not a benchmark)"
    if name.startswith(BUILTIN):
        return f"`{name}` (a dataset the suite writes itself)"
    if "/" in name:
        return f"folder {name} (a path, not a registry name)"
    return f"`{name}` (registry name)"


def measured_on(run: MeasuredRun, record: dict) -> str:
    """The label of a measured number: its eval set, the clip shape the model read, its items, the run."""
    n = record.get("n")
    items = f", {int(n):,} items" if n else ""
    return f"measured here on {set_label(record)}, {run.clip}{items}; run {run.run_id}"


def _is_benchmark(record: dict, task: str, metric: str, name: str) -> bool:
    if record.get("task") != task or record.get("metric") != metric:
        return False
    if name == PAPER_SETS:
        return record.get("dataset") == MEAN and set(_sets(record)) == paper_sets(task)
    return record.get("dataset") == name


def sota_rows(runs: Sequence[MeasuredRun]) -> dict[str, list[dict]]:
    """benchmark of sota.csv -> the measured rows that sit beside its literature rows (SOTA_SETS decides which)."""
    metric_label = dict(zip(tables.reference("sota")["benchmark"], tables.reference("sota")["metric"]))
    out: dict[str, list[dict]] = {}
    for benchmark, (task, metric, name) in SOTA_SETS.items():
        for run in runs:
            for r in run.values:
                if _is_benchmark(r, task, metric, name):
                    out.setdefault(benchmark, []).append(
                        {"model": run.model, "benchmark": benchmark, "metric": metric_label.get(benchmark, metric),
                         "value": f"{r['value']:.1f}", "source": measured_on(run, r)})
    return out


def per_dataset_rows(runs: Sequence[MeasuredRun]) -> list[dict]:
    """The per-dataset table's measured rows: each task's headline metric on every set that is not the shapes
    world, with the paper's number where the set is the paper's dataset by its registry name."""
    rows = []
    for run in runs:
        for r in run.values:
            task, dataset = str(r.get("task")), str(r.get("dataset"))
            if r.get("metric") != tables.PER_DATASET_METRICS.get(task) or r.get("dataset") is None or on_shapes(r):
                continue
            paper, cite = tables.paper_beside(task, dataset, r["metric"], _sets(r))
            rows.append({"sweep": "-", "model": run.model, "task": task, "dataset": measured_on(run, r),
                         "metric": r["metric"], "ours": f"{r['value']:.1f}", "paper": paper, "cite": cite})
    return rows
