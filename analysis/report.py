"""Regenerate every figure and table from the results store into one Markdown report.

    python -m analysis.report [--results results] [--out results/report]

Every number comes from the records; re-running after more runs updates everything. The sweeps reported are
the store's sweep records (results/sweeps/<name>.json, bench/sweep/plan.py), in the order of their names; what
each section holds follows from the records, never from a sweep's name: a sweep with several models is a
controlled comparison (sample-efficiency curves and a table per sample count); a sweep with one model is an
ablation (the paper's Class./Retr./VQA table and a chart); a sweep that evaluates streaming gets the
selective-decoding figure. The prose lives in analysis/templates.py; this module computes what fills it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis import captions, evalnoise, figstyle, figures, measured_tables, power, reference_rows, tables, tuning
from analysis import templates as tpl
from analysis.records import metrics, runs, training_curves
from bench.results import SWEEPS, read_json

# The one piece of per-sweep knowledge the report keeps: which group of rows of results/reference/ablations.csv
# (the paper's ablation tables) an ablation sweep reproduces, where that is not the sweep's own name. A sweep
# not named here is looked up under its own name; one the paper has no rows for gets a table without them.
# (attention_random_lm is not here, so its tables carry no paper column, though the README sets the paper's
# attention differences beside it; adding it would give its section the paper's numbers.)
PAPER_ABLATION = {"loss": "loss", "y_lr": "y_lr", "attention": "attention", "attention_tokens": "attention",
                  "attention_cosine": "attention", "attention_visual_scale": "attention", "attention_tuned": "attention",
                  "y_lr_tuned": "y_lr", "depth": "depth",
                  "pretraining": "pretraining", "y_encoder": "y_encoder", "lm_init": "lm_init"}
# a comparison's panels: the first three of these that the sweep evaluates, (task, metric, axis label)
COMPARISON_PANELS = [("captioning", "CIDEr", "CIDEr"), ("classification", "top5", "top-5 (%)"),
                     ("classification", "top1", "top-1 (%)"), ("vqa", "accuracy", "VQA (%)")]


@dataclass(frozen=True)
class Store:
    """What the whole report reads once: the results store's frames, and where the report goes."""

    results: Path
    out: Path
    frame: pd.DataFrame  # analysis.records.metrics: one row per (run, sweep, samples_seen, task, metric)
    run_frame: pd.DataFrame  # analysis.records.runs
    losses: pd.DataFrame  # analysis.records.training_curves
    measured: tuple[reference_rows.MeasuredRun, ...] = ()  # the reference models evaluated without training

    @property
    def figure_dir(self) -> Path:
        return self.out / "figures"


@dataclass(frozen=True)
class Sweep:
    """One sweep record and its rows of the metrics frame, with what they say about the sweep."""

    record: dict  # results/sweeps/<name>.json
    frame: pd.DataFrame
    command: str  # the command that reproduces it
    models: list[str]
    tasks: set[str]
    key: str | None = None  # the column that names an ablation's settings

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def kind(self) -> str:
        return kind(self.models)

    @property
    def labels(self) -> dict[str, str]:
        """Each condition's readable label, in the sweep's order: what its figures title and colour it by."""
        return figstyle.condition_labels(self.frame, self.key)

    @property
    def colours(self) -> dict[str, str]:
        """The sweep's one palette (label -> colour): a condition has the same colour in all its figures."""
        return figstyle.palette(self.labels.values())

    @property
    def names(self) -> dict[str, str] | None:
        """Each condition's name in the tables, where it is not the condition itself."""
        return dict(zip(self.frame["condition"], self.frame[self.key].astype(str))) if self.key else None


def sweep_records(results: Path) -> list[dict]:
    """Every sweep record of the store, one per name, in the order of their names."""
    records: dict[str, dict] = {}
    for path in sorted((results / SWEEPS).glob("*.json")):
        rec = read_json(path)
        records.setdefault(rec.get("name", path.stem), {**rec, "name": rec.get("name", path.stem)})
    return [records[name] for name in sorted(records)]


def _command(record: dict) -> str:
    overrides = " ".join(f"'{o}'" if " " in o else o for o in record.get("overrides", []))
    return tpl.COMMAND.format(file=record.get("file", record["name"]), overrides=f" {overrides}" if overrides else "")


def _wall(f: pd.DataFrame) -> str:
    """The sweep's cost on the machine that ran it, from its runs' start and finish times."""
    per_run = f.drop_duplicates("run_id")["wall_s"].dropna()
    if per_run.empty:
        return ""
    wall = tpl.WALL.format(minutes=per_run.sum() / 60, runs=len(per_run), shortest=per_run.min(), longest=per_run.max())
    setup = f.drop_duplicates("run_id")["setup_s"].dropna()  # recorded since December 2026
    return wall + (tpl.ONE_OFF.format(minutes=setup.sum() / 60, one_off=setup.max() / 60) if len(setup) else "")


def _img(paths: list[Path], out: Path) -> str:
    png = [p for p in paths if p.suffix == ".png"][0]
    return tpl.IMAGE.format(stem=png.stem, png=png.relative_to(out), pdf=png.with_suffix(".pdf").relative_to(out))


def _setting_key(f, swept: list[str]):
    """(frame, the column that names an ablation's settings): the readable names the sweep file gives
    its conditions (a zip group's 'label'), where it gives them; else the first swept key whose values tell
    every condition apart; where none does alone (a zip of several keys), a column "setting" of the
    varying keys' values joined."""
    conditions = f.drop_duplicates("condition")
    if "label" in f.columns and (conditions["label"] != conditions["condition"]).any() \
            and conditions["label"].nunique() == len(conditions):
        return f.assign(setting=f["label"]), "setting"
    keys = [k for k in swept if k in f.columns]
    for k in keys:
        if conditions[k].astype(str).nunique() == len(conditions):
            return f, k
    varying = [k for k in keys if conditions[k].astype(str).nunique() > 1]
    if not varying:
        return f, (keys[0] if keys else None)
    f = f.copy()
    f["setting"] = f[varying].astype(str).agg(" · ".join, axis=1)
    return f, "setting"


def kind(models: list[str]) -> str:
    """What a sweep is, by what its runs vary: "comparison" where they are of several models, else "ablation"."""
    return "comparison" if len(models) > 1 else "ablation"


def _sweep(store: Store, record: dict) -> Sweep:
    """The sweep of a record, with its rows; an ablation's with the column that names its settings."""
    f = store.frame[store.frame["sweep"] == record["name"]].copy()
    models = sorted(f["model"].dropna().unique())
    key = None
    if kind(models) == "ablation" and not f.empty:
        f, key = _setting_key(f, tuning.arm_keys(record))
    return Sweep(record, f, _command(record), models, set(f["task"].dropna()), key)


# -- the page's head --------------------------------------------------------------------------------------------------

def _header(store: Store) -> list[str]:
    frame = store.frame
    return tpl.fill(tpl.HEADER, results=store.results, out=store.out, runs=frame["run_id"].nunique() if len(frame) else 0)


def _runs(store: Store) -> list[str]:
    """Each sweep's runs by status, and the runs not done."""
    frame = store.frame
    if not len(frame):
        return []
    status = frame.drop_duplicates(["run_id", "sweep"]).groupby(["sweep", "status"]).size()
    # runs of no sweep (reference models, single runs) have no row: an empty table says nothing
    lines = (tpl.fill(tpl.RUNS_HEAD) if len(status) else []) + \
        [tpl.RUNS_ROW.format(sweep=s, status=st, runs=n) for (s, st), n in status.items()]
    partial = frame[frame["partial"]].drop_duplicates("run_id")
    if len(partial):
        named = ", ".join(tpl.PARTIAL_RUN.format(run_id=r.run_id, status=r.status) for r in partial.itertuples())
        lines += tpl.fill(tpl.PARTIAL, count=len(partial), runs=named)
    return lines


# -- the sections a sweep can have -------------------------------------------------------------------------------------

def _power(rows: list[dict]) -> list[str]:
    """The power of each paired comparison (analysis/power.py)."""
    return tpl.fill(tpl.POWER, table=power.power_markdown(rows)) if rows else []


def _comparison(store: Store, sweep: Sweep) -> list[str]:
    """Sample-efficiency curves, the table at each sample count, its power and the captions' facts."""
    panels = [(t, m, label) for t, m, label in COMPARISON_PANELS if t in sweep.tasks][:3]
    metric_pairs = [(t, m) for t, m, _ in panels]
    paths = figures.sample_efficiency(sweep.frame, sweep.name, panels, store.figure_dir)
    lines = tpl.fill(tpl.COMPARISON_FIGURE, image=_img(paths, store.out), sweep=sweep.name, models=", ".join(sweep.models),
                   command=sweep.command)
    lines.append(tables.comparison_markdown(tables.comparison_table(sweep.frame, sweep.name, metric_pairs)))
    lines += _power(power.comparison_power(sweep.frame, sweep.name, metric_pairs))
    facts = captions.attribute_markdown(captions.attribute_frame(store.results, sweep.name))
    return lines + (tpl.fill(tpl.COMPARISON_FACTS, table=facts) if facts else []) + _wording(store, sweep, "model")


def _wording(store: Store, sweep: Sweep, by: str) -> list[str]:
    table = captions.wording_markdown(captions.wording_frame(store.results, sweep.name), by=by)
    return tpl.fill(tpl.CAPTION_WORDING, table=table) if table else []


def _ablation(store: Store, sweep: Sweep) -> list[str]:
    """The table of the settings at the final sample count, its chart and LaTeX, its power and the captions' facts."""
    columns = tables.columns_for(sweep.tasks)
    lines = _ablation_table(store, sweep, columns) if sweep.key and columns else []
    if "captioning" in sweep.tasks:
        facts = captions.attribute_markdown(captions.attribute_frame(store.results, sweep.name), by="condition")
        lines += (tpl.fill(tpl.ABLATION_FACTS, table=facts) if facts else []) + _wording(store, sweep, "condition")
    return lines


def _ablation_table(store: Store, sweep: Sweep, columns: list) -> list[str]:
    table = tables.ablation_table(sweep.frame, sweep.name, sweep.key, PAPER_ABLATION.get(sweep.name, sweep.name), columns)
    if table.empty:
        return tpl.fill(tpl.ABLATION_NOT_DONE)
    paths = figures.ablation_chart(table, sweep.name, store.figure_dir, sweep.colours)
    caption = tpl.ABLATION_CAPTION.format(sweep=sweep.name, key=sweep.key, command=sweep.command)
    latex = f"{sweep.name}.tex"
    (store.out / latex).write_text(tables.to_latex(table, tpl.ABLATION_LATEX_CAPTION.format(sweep=sweep.name, key=sweep.key)))
    marks = tpl.ABLATION_MARKS_PAPER if columns is tables.ABLATION_COLUMNS else tpl.ABLATION_MARKS_CAPTIONS
    lines = tpl.fill(tpl.ABLATION, table=tables.to_markdown(table, caption), image=_img(paths, store.out), marks=marks,
                   latex=latex)
    return lines + _power(power.ablation_power(table))


def _selective(store: Store, sweep: Sweep) -> list[str]:
    """Selective decoding: the figure with its reduction factor, each run's own reading, the power of the gap."""
    paths = figures.selective_decoding(sweep.frame, sweep.name, store.figure_dir)
    lines = tpl.fill(tpl.SELECTIVE_FIGURE, image=_img(paths, store.out), sweep=sweep.name, command=sweep.command,
                   factor=figures.selective_factor(sweep.frame))
    per_run = figures.selective_markdown(sweep.frame)
    lines += tpl.fill(tpl.SELECTIVE_RUNS, table=per_run) if per_run else []
    return lines + _power(power.selective_power(sweep.frame, sweep.name))


def _noise(store: Store, sweep: Sweep) -> list[str]:
    """Evaluation noise beside seed noise at each evaluation size the runs kept hits for (analysis/evalnoise.py)."""
    rows = evalnoise.noise_rows(store.results, store.run_frame, sweep.name, names=sweep.names)
    return tpl.fill(tpl.NOISE, table=evalnoise.noise_markdown(rows)) if rows else []


def _training_loss(store: Store, sweep: Sweep) -> list[str]:
    curves = store.losses[store.losses["sweep"] == sweep.name]
    if not len(curves):
        return []
    paths = figures.training_loss(curves, sweep.name, store.figure_dir, sweep.labels, sweep.colours)
    return tpl.fill(tpl.TRAINING_LOSS, image=_img(paths, store.out), sweep=sweep.name)


def _all_runs(store: Store, sweep: Sweep) -> pd.DataFrame:
    """The sweep's rows, a tuned sweep's runs at the values not chosen included (what it cost)."""
    return store.frame[store.frame["sweep"].isin([sweep.name, sweep.name + tuning.TUNING])] if "tune" in sweep.record \
        else sweep.frame


def _tuning(store: Store, sweep: Sweep) -> list[str]:
    """A tuned sweep: each arm's scores at each value on the selection set, and the value chosen (analysis/tuning.py)."""
    tune = sweep.record.get("tune")
    if not tune:
        return []
    return tpl.fill(tpl.TUNING, table=tables.tuning_markdown(store.results, sweep.record), key=tune["key"],
                    metric=tune["metric"], select=tune["select"], report=tune["report"],
                    goal={"max": "highest", "min": "lowest"}[tune.get("goal", "max")])


Section = Callable[[Store, Sweep], list[str]]
BY_KIND: dict[str, Section] = {"comparison": _comparison, "ablation": _ablation}  # by Sweep.kind: what the runs vary
BY_TASK: dict[str, Section] = {"streaming": _selective}  # a section of its own for each task the sweep evaluates
EVERY_SWEEP: tuple[Section, ...] = (_noise, _training_loss)


def sweep_section(store: Store, record: dict) -> list[str]:
    """A sweep's section: its command and cost, then the sections its records call for."""
    sweep = _sweep(store, record)
    lines = tpl.fill(tpl.SWEEP_HEAD, sweep=sweep.name, command=sweep.command, wall=_wall(_all_runs(store, sweep)))
    lines += _tuning(store, sweep)
    if sweep.frame.empty:
        return lines + ([] if "tune" in record else tpl.fill(tpl.NO_RUNS, runs=len(record.get("runs", []))))
    parts = [BY_KIND[sweep.kind]] + [section for task, section in BY_TASK.items() if task in sweep.tasks]
    for section in parts + list(EVERY_SWEEP):
        lines += section(store, sweep)
    return lines


# -- after the sweeps ---------------------------------------------------------------------------------------------------

def _literature(store: Store) -> list[str]:
    measured = reference_rows.sota_rows(store.measured)
    return tpl.fill(tpl.LITERATURE, table=tables.sota_markdown(store.frame, measured))


def _measured(store: Store) -> list[str]:
    """The reference models measured here, and their numbers on the shapes world (apart from every benchmark)."""
    models = measured_tables.models_markdown(store.measured)
    shapes = measured_tables.shapes_markdown(store.measured)
    return (tpl.fill(tpl.MEASURED_MODELS, table=models) if models else []) + \
        (tpl.fill(tpl.MEASURED_SHAPES, tables=shapes) if shapes else [])


def _per_dataset(store: Store) -> list[str]:
    rows = reference_rows.per_dataset_rows(store.measured)
    frame = metrics(store.results, per_dataset=True) if len(store.frame) else pd.DataFrame()
    per_dataset = tables.per_dataset_markdown(frame, rows)
    return tpl.fill(tpl.PER_DATASET, table=per_dataset) if per_dataset else []


def build(results: Path, out: Path) -> Path:
    """The report of the store at results, as out/README.md (figures in out/figures, each ablation's LaTeX beside)."""
    store = Store(results, out, metrics(results), runs(results), training_curves(results),
                  tuple(reference_rows.measured_runs(results)))
    out.mkdir(parents=True, exist_ok=True)
    lines = _header(store) + _runs(store)
    for record in sweep_records(results):
        lines += sweep_section(store, record)
    lines += _literature(store) + _measured(store) + _per_dataset(store)
    page = out / "README.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate the paper's figures and tables from results.")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("results/report"))
    args = p.parse_args(argv)
    print(build(args.results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
