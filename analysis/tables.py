"""Tables from the metrics frame: each ablation in the paper's format (Class. / Retr. / VQA, mean +- 95%
interval over seeds, best in bold, the paper's number beside ours), the controlled comparison at each
sample count, and a SOTA table of the literature's numbers with their sources. Markdown and LaTeX."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from analysis import tuning
from analysis.records import interval

# the paper's three ablation columns, in our tasks' terms
ABLATION_COLUMNS = [("Class.", "classification", "top1", "classification_top1"),
                    ("Retr.", "retrieval", "t2v_R@1", "retrieval_r1"),
                    ("VQA", "vqa", "accuracy", "vqa")]
# an ablation scored by its captions (the Y-decoder's recipe): the captions, the decoder's ceiling and the
# nearest training caption, CIDEr x100 (no chance level, no paper number)
CAPTION_COLUMNS = [("CIDEr", "captioning", "CIDEr", None),
                   ("CIDEr ceiling", "captioning", "CIDEr_decoder_ceiling", None),
                   ("CIDEr nearest caption", "captioning", "CIDEr_nearest_caption", None)]
REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference"


def reference(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / f"{name}.csv")


def final_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's metrics at its full budget; a run that has not reached it (partial, failed) is left
    out of final tables, and the report lists it."""
    f = frame.dropna(subset=["task"])
    return f[f["samples_seen"] == f["budget"]]


def _fmt(mean: float, half: float, n: int, bold: bool) -> str:
    if n == 0:
        return "-"
    text = f"{mean:.1f} ± {half:.1f}" if n > 1 else f"{mean:.1f}"
    return f"**{text}**" if bold else text


def setting_label(value):
    """A swept value as a table shows it: a list of training stages by their names ("pretrain+sft"),
    anything else as it is."""
    stages = value
    if isinstance(value, str) and value.startswith("["):
        try:
            stages = json.loads(value)
        except ValueError:
            return value
    if isinstance(stages, list) and stages and all(isinstance(st, dict) and "name" in st for st in stages):
        return "+".join(st["name"] for st in stages)
    return value


def columns_for(tasks: set[str]) -> list[tuple[str, str, str, str | None]]:
    """The columns an ablation's table shows: the paper's three where the sweep evaluates any of their
    tasks, else the captioning columns where it captions; none otherwise."""
    if {"classification", "retrieval", "vqa"} & tasks:
        return ABLATION_COLUMNS
    return CAPTION_COLUMNS if "captioning" in tasks else []


def labels_of(table: pd.DataFrame) -> list[str]:
    """The metric columns of an ablation table, in order."""
    return [c.removesuffix(" per seed") for c in table.columns if c.endswith(" per seed")]


def ablation_table(frame: pd.DataFrame, sweep: str, key: str, ablation: str | None = None,
                   columns=ABLATION_COLUMNS) -> pd.DataFrame:
    """Rows: the values of the swept key; columns (default: Class./Retr./VQA): ours, mean ± 95% CI over
    seeds, n, with the paper's numbers beside ours where results/reference/ablations.csv has the setting."""
    f = final_values(frame[frame["sweep"] == sweep]).sort_values("order", kind="stable")
    ref = reference("ablations")
    ref = ref[ref["ablation"] == (ablation or sweep)]
    rows = []
    for value, g in f.groupby(key, sort=False):
        setting = setting_label(value)
        row = {"setting": setting, "seeds": g["seed"].nunique()}
        for label, task, metric, refcol in columns:
            vals = g[(g["task"] == task) & (g["metric"] == metric)].groupby("seed")["value"].mean()
            chance = g[(g["task"] == task) & (g["metric"] == metric)]["chance"].mean()
            prior = g[(g["task"] == task) & (g["metric"] == metric)]["prior"].mean() if "prior" in g else float("nan")
            row[f"{label} prior"] = prior  # the no-vision prior (records since it was added; NaN before)
            se = g[(g["task"] == task) & (g["metric"] == metric)]["se"] if "se" in g else pd.Series(dtype=float)
            row[f"{label} se"] = float((se.astype(float) ** 2).mean() ** 0.5) if se.notna().any() else float("nan")
            row[label] = interval(vals)
            row[f"{label} per seed"] = vals.to_dict()
            row[f"{label} chance"] = chance
            match = ref[ref["setting"].astype(str) == str(setting)] if refcol else ref.iloc[:0]
            row[f"{label} paper"] = float(match[refcol].iloc[0]) if len(match) else None
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, caption: str = "") -> str:
    labels = labels_of(table)
    best = {lab: max((r[lab][0] for _, r in table.iterrows() if r[lab][2]), default=None) for lab in labels}
    priors = any(not pd.isna(r.get(f"{lab} prior", float("nan"))) for _, r in table.iterrows() for lab in labels)
    chances = {lab: table[f"{lab} chance"].notna().any() for lab in labels}  # none for CIDEr
    bracket = {lab: (" (chance; prior)" if priors else " (chance)") if chances[lab] else "" for lab in labels}
    papers = {lab: table[f"{lab} paper"].notna().any() for lab in labels}  # a column only where the paper has one
    head = "| setting | seeds | " + " | ".join(f"{lab}{bracket[lab]}" + (f" | {lab} paper" if papers[lab] else "")
                                              for lab in labels) + " |"
    sep = "|---|---:|" + "".join("---:|---:|" if papers[lab] else "---:|" for lab in labels)
    lines = [head, sep]
    for _, r in table.iterrows():
        cells = []
        for lab in labels:
            mean, half, n = r[lab]
            chance = r[f"{lab} chance"]
            prior = r.get(f"{lab} prior", float("nan"))
            shown = f" ({chance:.1f}" + (f"; {prior:.1f}" if priors and not pd.isna(prior) else "") + ")" if chances[lab] else ""
            cells.append(f"{_fmt(mean, half, n, mean == best[lab])}{shown}" if n else "-")
            paper = r[f"{lab} paper"]
            if papers[lab]:
                cells.append("-" if paper is None or pd.isna(paper) else f"{paper:.1f}")
        lines.append(f"| {r['setting']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + paired_differences(table, labels)


def paired_differences(table: pd.DataFrame, labels: list[str]) -> str:
    """A second table: each setting minus the first row's, per seed (same seed: same data order and
    initialisation), mean ± 95% interval. An interval that excludes 0 is a difference the seeds agree on."""
    if len(table) < 2:
        return ""
    first = table.iloc[0]
    lines = ["", "", f"Paired by seed, each setting minus **{first['setting']}**:", "",
             "| setting | " + " | ".join(f"Δ {lab}" for lab in labels) + " |", "|---|" + "---:|" * len(labels)]
    for _, r in table.iloc[1:].iterrows():
        cells = []
        for lab in labels:
            a, b = pd.Series(r[f"{lab} per seed"], dtype=float), pd.Series(first[f"{lab} per seed"], dtype=float)
            cells.append(_fmt(*interval((a - b).dropna()), bold=False))
        lines.append(f"| {r['setting']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    labels = labels_of(table)
    best = {lab: max((r[lab][0] for _, r in table.iterrows() if r[lab][2]), default=None) for lab in labels}
    lines = ["\\begin{table}[t]\\centering", f"\\caption{{{caption}}}" if caption else "",
             "\\begin{tabular}{l" + "rr" * len(labels) + "}", "\\toprule",
             "setting & " + " & ".join(f"{lab} & paper" for lab in labels) + " \\\\", "\\midrule"]
    for _, r in table.iterrows():
        cells = []
        for lab in labels:
            mean, half, n = r[lab]
            text = f"{mean:.1f} $\\pm$ {half:.1f}" if n > 1 else (f"{mean:.1f}" if n else "-")
            cells.append(f"\\textbf{{{text}}}" if n and mean == best[lab] else text)
            paper = r[f"{lab} paper"]
            cells.append("-" if paper is None or pd.isna(paper) else f"{paper:.1f}")
        lines.append(f"{str(r['setting']).replace('_', chr(92) + '_')} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(x for x in lines if x)


def comparison_table(frame: pd.DataFrame, sweep: str, metrics: list[tuple[str, str]]) -> pd.DataFrame:
    """Rows: sample counts; columns: each model's mean ± interval for each (task, metric), the chance
    level, and with two models their difference paired by seed (same seed: same data order), so an
    interval that excludes 0 is a difference the seeds agree on."""
    f = frame[(frame["sweep"] == sweep)].dropna(subset=["task"])
    models = sorted(f["model"].dropna().unique())
    rows = []
    for seen, g in f.groupby("samples_seen"):
        row = {"samples_seen": int(seen)}
        for task, metric in metrics:
            gm = g[(g["task"] == task) & (g["metric"] == metric)]
            per_seed = {m: gm[gm["model"] == m].groupby("seed")["value"].mean() for m in models}
            for m in models:
                row[f"{m} {task}/{metric}"] = interval(per_seed[m])
            chance = gm["chance"].dropna()
            row[f"chance {task}/{metric}"] = float(chance.mean()) if len(chance) else None
            if len(models) == 2:
                a, b = per_seed[models[0]], per_seed[models[1]]
                row[f"{models[0]} - {models[1]} {task}/{metric}"] = interval((a - b).dropna())
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_markdown(table: pd.DataFrame) -> str:
    cols = [c for c in table.columns if c != "samples_seen"]

    def cell(v) -> str:
        if isinstance(v, tuple):
            return _fmt(*v, bold=False)
        return "-" if v is None or pd.isna(v) else f"{v:.1f}"

    lines = ["| samples seen | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
    lines += [f"| {r['samples_seen']:,} | " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(lines)


SOTA_METRICS = [("classification", "top1", "top1"), ("retrieval", "t2v_R@1", "R@1")]


def _evaluated_on(rows: pd.DataFrame) -> str:
    """What a task's summary rows were measured on: the shapes world, one dataset, or a mean over sets."""
    datasets = rows["dataset"].dropna().unique() if "dataset" in rows else []
    if len(datasets) == 0 or all(str(d) == "shapes" or str(d).startswith("shapes:") for d in datasets):
        return "shapes world"
    if list(datasets) == ["mean"]:
        sets = json.loads(rows["sets"].dropna().iloc[0])
        return f"mean of {len(sets)} sets: {', '.join(sets)}"
    return ", ".join(str(d) for d in datasets)


def suite_rows(frame: pd.DataFrame) -> list[dict]:
    """The suite's own runs in the SOTA table's terms: per sweep and model, classification top-1 and
    text-to-video R@1 at the full budget, mean ± interval over seeds, on the data the runs used."""
    f = final_values(frame.dropna(subset=["sweep"]))
    rows = []
    for (sweep, model), g in f.groupby(["sweep", "model"]):
        if g["condition"].nunique() > 1:
            continue  # an ablation's arms are not one model's result
        for task, metric, label in SOTA_METRICS:
            picked = g[(g["task"] == task) & (g["metric"] == metric)]
            vals = picked.groupby("seed")["value"].mean()
            if len(vals):
                mean, half, n = interval(vals)
                on = _evaluated_on(picked)
                who = f"{model} (tiny preset)" if on == "shapes world" else f"{model} (this suite)"
                rows.append({"model": who, "benchmark": f"{task} ({on})", "metric": label,
                             "value": _fmt(mean, half, n, bold=False), "source": f"this suite: sweep {sweep}, {n} seeds"})
    return rows


# the metric of each task that the paper reports per dataset
PER_DATASET_METRICS = {"classification": "top1", "retrieval": "t2v_R@1", "vqa": "accuracy", "world": "accuracy",
                       "hardneg": "accuracy", "captioning": "CIDEr"}


def paper_beside(task: str, dataset: str, metric: str, sets: list[str]) -> tuple[str, str]:
    """(the paper's number, its model and source) for a dataset of results/reference/per_dataset.csv, matched by
    its name; a mean over sets only where they are exactly the sets the paper averages. ("-", "-") otherwise."""
    ref = reference("per_dataset")
    paper = ref[(ref["dataset"] == dataset) & (ref["task"] == task) & (ref["metric"] == metric)]
    if dataset == "mean" and set(sets) != set(ref[(ref["task"] == task) & (ref["dataset"] != "mean")]["dataset"]):
        paper = paper.iloc[0:0]  # the paper's average is over other sets
    if not len(paper):
        return "-", "-"
    return f"{paper['value'].iloc[0]:.1f}", f"{paper['model'].iloc[0]}; {paper['source'].iloc[0]}"


def _suite_dataset_rows(full: pd.DataFrame) -> list[dict]:
    """The suite's runs on each dataset on disk, at the full budget, mean ± interval over seeds."""
    if "dataset" not in full:
        return []
    f = final_values(full.dropna(subset=["dataset", "sweep"]))
    world = r"shapes(:\w+)?"  # the world itself, not files; and a mean over its splits (a tuned sweep's val and test)
    in_memory = f["dataset"].astype(str).str.fullmatch(world) | f["sets"].map(
        lambda s: isinstance(s, str) and all(re.fullmatch(world, x) for x in json.loads(s)))
    f = f[~in_memory]
    rows = []
    for (sweep, model, task, dataset), g in f.groupby(["sweep", "model", "task", "dataset"], sort=False):
        metric = PER_DATASET_METRICS.get(task)
        picked = g[g["metric"] == metric]
        vals = picked.groupby("seed")["value"].mean()
        if metric is None or vals.empty:
            continue
        sets = json.loads(picked["sets"].dropna().iloc[0]) if dataset == "mean" else []
        paper, cite = paper_beside(task, dataset, metric, sets)
        mean, half, n = interval(vals)
        rows.append({"sweep": sweep, "model": model, "task": task, "dataset": f"mean of {len(sets)}" if sets else dataset,
                     "metric": metric, "ours": _fmt(mean, half, n, bold=False), "paper": paper, "cite": cite})
    return rows


def per_dataset_markdown(full: pd.DataFrame, measured: list[dict] | None = None) -> str:
    """Each run's number on every dataset it was evaluated on (at the full budget, mean ± interval over
    seeds), with the paper's number for that dataset beside it (results/reference/per_dataset.csv), and
    each task's mean over its sets beside the paper's average where the sets are the paper's; then the rows
    measured here by reference models (analysis/reference_rows.py), each labelled with what it was measured
    on. Empty when no run was evaluated on a dataset on disk."""
    rows = _suite_dataset_rows(full) + list(measured or [])
    if not rows:
        return ""
    lines = ["| sweep | model | task | dataset | metric | ours | paper | paper's model and source |",
             "|---|---|---|---|---|---:|---:|---|"]
    lines += [f"| {r['sweep']} | {r['model']} | {r['task']} | {r['dataset']} | {r['metric']} | {r['ours']} | "
              f"{r['paper']} | {r['cite']} |" for r in rows]
    return "\n".join(lines)


def sota_markdown(frame: pd.DataFrame | None = None, measured: dict[str, list[dict]] | None = None) -> str:
    """The literature's numbers with their sources; each benchmark's rows measured here by reference models right
    after its last literature row (analysis/reference_rows.py decides which set is which benchmark); then the
    suite's own runs (on their own data: the tiny preset's numbers are not comparable with the benchmarks', only
    placed in the same frame)."""
    ref = reference("sota")
    last = {b: i for i, b in enumerate(ref["benchmark"])}
    rows = []
    for i, r in enumerate(ref.itertuples()):
        rows.append({"model": r.model, "benchmark": r.benchmark, "metric": r.metric, "value": f"{r.value:.1f}",
                     "source": r.source})
        if last[r.benchmark] == i:
            rows += (measured or {}).get(r.benchmark, [])
    if frame is not None and len(frame):
        rows += suite_rows(frame)
    lines = ["| model | benchmark | metric | value | source |", "|---|---|---|---:|---|"]
    return "\n".join(lines + [f"| {r['model']} | {r['benchmark']} | {r['metric']} | {r['value']} | {r['source']} |"
                              for r in rows])


def tuning_markdown(results: str | Path, record: dict) -> str:
    """Rows: the arms; columns: each value's mean ± 95% over seeds of the tuning metric on the selection set
    (n seeds), the chosen one in bold; then the value chosen (or what the choice waits for)."""
    choices = tuning.choose(results, record)
    if not choices:
        return ""
    tune = record["tune"]
    values = [tuning.value_key(v) for v in tune["values"]]
    head = "| arm | " + " | ".join(f"{tune['key']}={json.loads(v)}" for v in values) + " | chosen |"
    lines = [head, "|---|" + "---:|" * len(values) + "---|"]
    for c in choices:
        cells = []
        for v in values:
            mean, half, n = interval(pd.Series(list(c.scores.get(v, {}).values()), dtype=float))
            text = "-" if n == 0 else f"{mean:.1f} ± {half:.1f} ({n})"
            cells.append(f"**{text}**" if v == c.chosen_key else text)
        chosen = f"{tune['key']}={c.chosen}" if c.chosen_key is not None else "not yet: " + "; ".join(c.waits)
        side = tuning.edge(c, tune["values"])
        if side:
            chosen += f", the {side} value tried: the best may lie beyond it"
        lines.append(f"| {c.label} | " + " | ".join(cells) + f" | {chosen} |")
    return "\n".join(lines)
