"""The report's two tables of reference models measured here (analysis/reference_rows.py reads them): the models
themselves (spec, weights, the clip shape they read, what they were evaluated on, and the tasks they cannot do
as n/a with the reason in a footnote), and one table per shapes-world eval set, apart from every benchmark."""

from __future__ import annotations

from collections.abc import Sequence

from analysis import tables
from analysis.records import MEAN
from analysis.reference_rows import FAILED, MARKS, NOT_APPLICABLE, MeasuredRun, on_shapes, set_label
from analysis.templates import MEASURED_SHAPES_SET
from bench.results import DONE


class Footnotes:
    """Numbered footnotes, one per distinct text, in the order they are first cited."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return str(self.texts.index(text) + 1).translate(MARKS)

    def markdown(self) -> str:
        """One line per footnote (an error's own line breaks folded), each ending in a Markdown line break."""
        return "\n".join(f"{str(i).translate(MARKS)} {' '.join(t.split())}  " for i, t in enumerate(self.texts, 1))


def _evaluated(run: MeasuredRun) -> str:
    """Each task the run measured, with its sets (a mean's own record aside); why nothing is shown if not done."""
    if run.status != DONE:
        return f"status {run.status}: no values shown"
    sets: dict[str, dict[str, None]] = {}  # task -> its sets, in the records' order
    for r in run.values:
        if r.get("dataset") not in (None, MEAN):
            sets.setdefault(str(r["task"]), {})[str(r["dataset"])] = None
    return "; ".join(f"{task}: {', '.join(names)}" for task, names in sets.items()) or "-"


def _without_value(run: MeasuredRun, notes: Footnotes) -> str:
    """The tasks the model cannot do (n/a, the reason in a footnote), then those whose evaluation failed."""
    cells: list[str] = []
    for r in run.of(NOT_APPLICABLE):
        cells.append(f"{r['task']} n/a" + notes.mark(f"{r['task']}: {r.get('reason') or 'no reason recorded'}"))
    for r in run.of(FAILED):
        cells.append(f"{r['task']} failed" + notes.mark(f"{r['task']} failed: {r.get('error') or 'no error recorded'}"))
    return ", ".join(cells) or "-"


def models_markdown(runs: Sequence[MeasuredRun]) -> str:
    """One row per reference run: its spec, weights, the clip shape it read, what it was evaluated on, the tasks
    it cannot do (n/a) or that failed, each with a footnote; empty without reference runs."""
    if not runs:
        return ""
    notes = Footnotes()
    lines = ["| model | spec | weights (sha256) | clips read as | evaluated on | not measured | run |",
             "|---|---|---|---|---|---|---|"]
    for run in runs:
        reading = ", ".join(str(run.adapter[k]) for k in ("video_pooling", "video_input", "score") if k in run.adapter)
        lines.append(f"| {run.model} | `{run.spec}` | {run.weights[:12] or '-'} | {run.clip}"
                     f"{', ' + reading if reading else ''} | {_evaluated(run)} | {_without_value(run, notes)} | "
                     f"{run.run_id} |")
    return "\n".join(lines) + ("\n\n" + notes.markdown() if notes.texts else "")


def _cell(records: list[dict]) -> str:
    if not records:
        return ""
    r = records[0]
    chance = f" ({r['chance']:.1f})" if r.get("chance") is not None else ""
    return f"{r['value']:.1f}{chance}"


def shapes_markdown(runs: Sequence[MeasuredRun]) -> str:
    """A table per shapes-world eval set: a row per reference model, each task's headline metric (chance in
    brackets), blank where the model was not evaluated on it; empty when no reference run read the world."""
    groups: dict[str, list[tuple[MeasuredRun, dict]]] = {}
    for run in runs:
        for r in run.values:
            if on_shapes(r) and r.get("metric") == tables.PER_DATASET_METRICS.get(str(r.get("task"))):
                groups.setdefault(set_label(r), []).append((run, r))
    parts = []
    for where, pairs in groups.items():
        columns = [(t, m) for t, m in tables.PER_DATASET_METRICS.items() if any(r["task"] == t for _, r in pairs)]
        lines = ["| model | clips read as | items | " + " | ".join(f"{t} {m}" for t, m in columns) + " | run |",
                 "|---|---|---:|" + "---:|" * len(columns) + "---|"]
        for run in {run.run_id: run for run, _ in pairs}.values():
            mine = [r for other, r in pairs if other.run_id == run.run_id]
            items = "/".join(dict.fromkeys(f"{int(r['n']):,}" for r in mine if r.get("n"))) or "-"
            cells = [_cell([r for r in mine if r["task"] == t]) for t, _ in columns]
            lines.append(f"| {run.model} | {run.clip} | {items} | " + " | ".join(cells) + f" | {run.run_id} |")
        parts.append(MEASURED_SHAPES_SET.format(where=where, table="\n".join(lines)))
    return "\n\n".join(parts)
