"""Regenerate every figure and table from the results store into one Markdown report.

    python -m analysis.report [--results results] [--out results/report]

Every number comes from the records; re-running after more runs updates everything. A sweep with
several models is a controlled comparison (sample-efficiency curves and a table per sample count);
a sweep with one model is an ablation (the paper's Class./Retr./VQA table and a chart); streaming
metrics give the selective-decoding figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis import captions, evalnoise, figures, power, tables
from analysis.records import metrics, runs, training_curves
from bench.results import SWEEPS

ABLATION_NAMES = {"loss": "loss", "y_lr": "y_lr", "attention": "attention", "attention_tokens": "attention",
                  "attention_cosine": "attention", "depth": "depth",
                  "pretraining": "pretraining", "y_encoder": "y_encoder", "lm_init": "lm_init"}


def _command(results: Path, sweep: str) -> str:
    rec = results / SWEEPS / f"{sweep}.json"
    data = json.loads(rec.read_text()) if rec.is_file() else {}
    overrides = " ".join(f"'{o}'" if " " in o else o for o in data.get("overrides", []))
    return f"`python -m bench.sweep {data.get('file', sweep)}{' ' + overrides if overrides else ''}`"


def _wall(f) -> str:
    """The sweep's cost on the machine that ran it, from its runs' start and finish times."""
    per_run = f.drop_duplicates("run_id")["wall_s"].dropna()
    if per_run.empty:
        return ""
    return (f"Wall time: {per_run.sum() / 60:.1f} min summed over its {len(per_run)} runs "
            f"({per_run.min():.0f}-{per_run.max():.0f} s per run, start-up and evaluation included).")


def _power(rows: list[dict]) -> list[str]:
    """The power of each paired comparison (analysis/power.py), as a report section."""
    if not rows:
        return []
    return ["", "Power of each paired comparison (seed SD of the difference, and the part of it the evaluation "
            "items alone would give, from the records' standard errors; the smallest difference a paired t-test "
            "finds with 80% power at these seeds; the seeds the paper's difference would need):", "",
            power.power_markdown(rows)]


def _noise(results: Path, run_frame, sweep: str, names: dict[str, str] | None) -> list[str]:
    """Evaluation noise beside seed noise at each evaluation size the runs kept hits for (analysis/evalnoise.py)."""
    rows = evalnoise.noise_rows(results, run_frame, sweep, names=names)
    if not rows:
        return []
    return ["", "Evaluation noise beside seed noise, at each evaluation size the runs kept per-item hits for (the "
            "training's last evaluation, and re-evaluations of the last checkpoint by `python -m bench.eval RUN "
            "--size N --name NAME`): the split-half standard error of one seed's difference from the items alone "
            "(analysis/evalnoise.py), beside the seed SD of the difference:", "", evalnoise.noise_markdown(rows)]


def _img(paths: list[Path], out: Path) -> str:
    png = [p for p in paths if p.suffix == ".png"][0]
    return f"![{png.stem}]({png.relative_to(out)}) ([pdf]({png.with_suffix('.pdf').relative_to(out)}))"


BANDS = "lines: the mean over seeds; bands: its 95% t-interval; dotted: chance"


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


def build(results: Path, out: Path) -> Path:
    frame = metrics(results)
    losses = training_curves(results)
    run_frame = runs(results)
    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    sections = ["# vljepa-bench report", "",
                f"Built by `python -m analysis.report --results {results} --out {out}` from "
                f"{frame['run_id'].nunique() if len(frame) else 0} runs. Mean ± 95% t-interval over seeds; "
                "chance in brackets (and the no-vision prior, in records that carry it); paper numbers from "
                "results/reference/ (arXiv 2512.10942, version and table "
                "in each CSV row)."]
    if len(frame):
        status = frame.drop_duplicates(["run_id", "sweep"]).groupby(["sweep", "status"]).size()
        sections += ["", "## Runs", "", "| sweep | status | runs |", "|---|---|---:|"]
        sections += [f"| {s} | {st} | {n} |" for (s, st), n in status.items()]
        partial = frame[frame["partial"]].drop_duplicates("run_id")
        if len(partial):
            sections.append(f"\n{len(partial)} run(s) not done are shown where they have records: "
                            + ", ".join(f"{r.run_id} ({r.status})" for r in partial.itertuples()))
    for sweep, f in frame.dropna(subset=["sweep"]).groupby("sweep"):
        f = f.copy()
        cmd = _command(results, sweep)
        models = sorted(f["model"].dropna().unique())
        tasks = set(f["task"].dropna())
        sections += ["", f"## {sweep}", "", f"Produced by {cmd}. {_wall(f)}"]
        names = None  # each condition's name in the tables, where it is not the condition itself
        if len(models) > 1:
            panels = [(t, m, lab) for t, m, lab in [("captioning", "CIDEr", "CIDEr"), ("classification", "top5", "top-5 (%)"),
                                                    ("classification", "top1", "top-1 (%)"), ("vqa", "accuracy", "VQA (%)")]
                      if t in tasks][:3]
            paths = figures.sample_efficiency(f, sweep, panels, figs)
            sections += ["", _img(paths, out), "",
                         f"*Sample efficiency, {sweep}: {', '.join(models)} at matched samples ({cmd}); {BANDS}; hollow "
                         "diamonds: the paper's numbers for the same comparison at its sample counts, on its "
                         "benchmarks (results/reference/controlled_comparison.csv); lower row, where records carry "
                         "them: the same curves against training FLOPs.*", ""]
            comp = tables.comparison_table(f, sweep, [(t, m) for t, m, _ in panels])
            sections.append(tables.comparison_markdown(comp))
            sections += _power(power.comparison_power(f, sweep, [(t, m) for t, m, _ in panels]))
            attrs = captions.attribute_markdown(captions.attribute_frame(results, sweep))
            if attrs:
                sections += ["", "What the captions get right, fact by fact (percent of items, mean ± 95% over seeds; "
                             "analysis/captions.py reads each caption's facts back; size over the captions that "
                             "state one; the prior: one constant caption's score):", "", attrs]
        else:
            swept = json.loads((results / SWEEPS / f"{sweep}.json").read_text()).get("swept", [])
            f, key = _setting_key(f, swept)
            if key:
                names = dict(zip(f["condition"], f[key].astype(str)))
            columns = tables.columns_for(tasks)
            if key and columns:
                table = tables.ablation_table(f, sweep, key, ABLATION_NAMES.get(sweep, sweep), columns)
                if table.empty:
                    sections += ["", "No run of this sweep has reached its budget yet: no table."]
                else:
                    paths = figures.ablation_chart(table, sweep, figs)
                    md = tables.to_markdown(table, f"*Ablation {sweep} over `{key}`, at the final sample count ({cmd}).*")
                    (out / f"{sweep}.tex").write_text(tables.to_latex(table, f"Ablation {sweep} ({key})"))
                    marks = ("dotted: chance; white diamonds: the paper's Table 5 row for the setting"
                             if columns is tables.ABLATION_COLUMNS else
                             "CIDEr x100 of the captions, of the decoder's ceiling and of the nearest training caption")
                    sections += ["", md, "", _img(paths, out), "",
                                 "*Bars: the mean over seeds at the final sample count; whiskers: its 95% t-interval; "
                                 f"{marks}.*", "",
                                 f"LaTeX: [{sweep}.tex]({sweep}.tex)"]
                    sections += _power(power.ablation_power(table))
                if "captioning" in tasks:
                    attrs = captions.attribute_markdown(captions.attribute_frame(results, sweep), by="condition")
                    if attrs:
                        sections += ["", "What each setting's captions get right, fact by fact (as in the comparison "
                                     "sections: percent of items, mean ± 95% over seeds):", "", attrs]
        if "streaming" in tasks:
            paths = figures.selective_decoding(f, sweep, figs)
            sections += ["", _img(paths, out), "", f"*Selective decoding, {sweep} ({cmd}): "
                         f"{figures.selective_factor(f)}. Lines: the mean over seeds (bands: 95% t-interval for the "
                         "two the factor is read from); dotted: uniform's CIDEr at the reference rate (monotone fit); "
                         "the arrow: the rate at which adaptive decoding's monotone fit reaches it.*"]
            per_run = figures.selective_markdown(f)
            if per_run:
                sections += ["", "Each run's own reading (pooled strategies; bench/eval/tasks/streaming.py): the factor "
                             "and gap with 95% intervals from a bootstrap over its streams, and the control that "
                             "shows how much of a factor saturation alone gives:", "", per_run]
            sections += _power(power.selective_power(f, sweep))
        sections += _noise(results, run_frame, sweep, names)
        curves = losses[losses["sweep"] == sweep]
        if len(curves):
            paths = figures.training_loss(curves, sweep, figs)
            sections += ["", _img(paths, out), "", f"*Training loss, {sweep}: each seed a thin line, their mean a "
                         "thick one (metrics.jsonl: the average over each window of logged steps).*"]
    sections += ["", "## Literature, and the suite's runs beside it", "", tables.sota_markdown(frame), ""]
    per_dataset = tables.per_dataset_markdown(metrics(results, per_dataset=True)) if len(frame) else ""
    if per_dataset:
        sections += ["## Per dataset, beside the paper", "",
                     "Each run's number on each dataset it was evaluated on, at its full budget, and the paper's "
                     "number for that dataset; a task's mean over its sets is beside the paper's average only "
                     "where the sets are the paper's.", "", per_dataset, ""]
    page = out / "README.md"
    page.write_text("\n".join(sections) + "\n")
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
