"""What each model's captions get right, attribute by attribute (shapes world only).

CIDEr says how much of the references' wording a caption shares, not which facts it gets right. The shapes
world's captions state five facts (the actor's colour, size and motion, the distractor's colour, the light
event), and bench.data.text.read_caption reads them back from any paraphrase. This module reads the
per-item outputs every evaluation stores (predictions/<samples>/captioning__shapes.jsonl), and scores each
caption source a record holds (the model's captions; for a model with a Y-decoder also the nearest training
caption and the decoder ceiling) on each fact against the clip's canonical reference, which reads exactly
as its scene. Size is scored over the captions that state one (a paraphrase may leave it out); the others
over every item, "none" included (a caption that adds a distractor or an event the clip lacks is wrong).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from analysis.records import interval, runs
from bench.data.text import ATTRIBUTES, canonical_wording, read_caption, words
from bench.results import RUNS, RunDir, set_file_name

SOURCES = {"prediction": "captions", "nearest_caption": "nearest training caption", "ceiling": "decoder ceiling"}
PRIOR = "prior"  # the no-vision prior: the most frequent value of each attribute among the items
CAPTIONS = "captioning__{set}.jsonl"  # a run's captions of one eval set (bench.results.prediction_writer)
DEFAULT_SET = "shapes"  # the set a run captions unless it names others (a tuned sweep's arm: its report set)


def score_rows(rows: list[dict]) -> dict[tuple[str, str], float]:
    """(source, attribute) -> percent right over the items of one predictions file."""
    out = {}
    truths = [read_caption(r["references"][0]) for r in rows]
    for attr in ATTRIBUTES:
        values = pd.Series([t[attr] for t in truths])
        out[(PRIOR, attr)] = 100.0 * values.value_counts().iloc[0] / len(values) if len(values) else float("nan")
    for source in SOURCES:
        if not rows or source not in rows[0]:
            continue
        readings = [read_caption(r[source]) for r in rows]
        for attr in ATTRIBUTES:
            pairs = [(got[attr], truth[attr]) for got, truth in zip(readings, truths)
                     if attr != "size" or got[attr] != "none"]
            out[(source, attr)] = 100.0 * sum(g == t for g, t in pairs) / len(pairs) if pairs else float("nan")
    return out


def last_captions(results: Path, sweep: str) -> Iterator[tuple[dict, list[dict]]]:
    """For each run of the sweep with stored captions: (its row: model, condition, order, seed, samples_seen of
    its last evaluation with captions, and the items of that predictions file). A tuned sweep's arm reads the
    captions of its report set."""
    frame = runs(results)
    for r in frame[frame["sweep"] == sweep].itertuples():
        evalset = r.report_set if isinstance(r.report_set, str) else DEFAULT_SET
        name = CAPTIONS.format(set=set_file_name(evalset))
        files = sorted((RunDir(Path(results) / RUNS / r.run_id).path / "predictions").glob(f"*/{name}"))
        if files:
            items = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
            yield ({"model": r.model, "condition": r.label, "order": r.order, "seed": r.seed,
                    "samples_seen": int(files[-1].parent.name)}, items)


def attribute_frame(results: Path, sweep: str) -> pd.DataFrame:
    """One row per (run, source, attribute) at each run's last evaluation with stored captions:
    model, condition, order, seed, samples_seen, source, attribute, value (percent right)."""
    return pd.DataFrame([{**run, "source": source, "attribute": attr, "value": value}
                         for run, items in last_captions(results, sweep)
                         for (source, attr), value in score_rows(items).items()])


def attribute_markdown(table: pd.DataFrame, by: str = "model") -> str:
    """Rows: the caption sources of each model (by="model"; VL-JEPA first) or of each condition of a sweep
    (by="condition", in the sweep's order); columns: the attributes, mean ± 95% over seeds; then the
    paired differences of the captions: the first model's minus the second's, or each condition's minus the
    first's."""
    if table.empty:
        return ""
    if by == "model":
        models = sorted(table["model"].unique(), key=lambda m: (m != "vljepa", m))
    else:
        models = list(table.sort_values("order", kind="stable")[by].drop_duplicates())
    samples = int(table["samples_seen"].max())
    lines = [f"| at {samples:,} samples | " + " | ".join(ATTRIBUTES) + " |", "|---|" + "---:|" * len(ATTRIBUTES)]
    for model in models:
        for source, label in SOURCES.items():
            g = table[(table[by] == model) & (table["source"] == source)]
            if g.empty:
                continue
            cells = []
            for attr in ATTRIBUTES:
                mean, half, n = interval(g[g["attribute"] == attr].set_index("seed")["value"].dropna())
                cells.append(f"{mean:.1f} ± {half:.1f}" if n > 1 else (f"{mean:.1f}" if n else "-"))
            lines.append(f"| {model}: {label} | " + " | ".join(cells) + " |")
    prior = table[table["source"] == PRIOR].groupby("attribute")["value"].mean()
    lines.append("| no-vision prior (the most frequent value) | " + " | ".join(f"{prior.get(a, float('nan')):.1f}"
                                                                            for a in ATTRIBUTES) + " |")
    if by == "model":  # the twins: the first minus the second
        pairs = [(models[0], models[1])] if len(models) == 2 else []
    else:  # an ablation: each setting minus the first
        pairs = [(m, models[0]) for m in models[1:]]
    for first, second in pairs:
        cells = []
        for attr in ATTRIBUTES:
            a, b = (table[(table[by] == m) & (table["source"] == "prediction") & (table["attribute"] == attr)]
                    .set_index("seed")["value"] for m in (first, second))
            mean, half, n = interval((a - b).dropna())
            cells.append(f"{mean:+.1f} ± {half:.1f}" if n > 1 else "-")
        lines.append(f"| {first} - {second}, captions, paired | " + " | ".join(cells) + " |")
    return "\n".join(lines)


STATED = ("size", "distractor", "event")  # the facts a caption may leave unsaid (colour and motion it always states)
WORDING = {"as written": lambda t: t, "canonical wording": canonical_wording}


def cider(rows: list[dict], source: str = "prediction", wording: str = "as written") -> float:
    """CIDEr-D x 100 of one caption source over a predictions file's items against all their references, both
    sides in `wording` (WORDING): "canonical wording" maps every synonym to the first of its slot, so the score
    counts the facts a caption states, not the synonyms it picked. Texts are tokenized as the world's words
    (lowercase letters), which is what the PTB tokenizer makes of the world's captions."""
    from pycocoevalcap.cider.cider import Cider

    rows = [r for r in rows if source in r]
    if not rows:
        return float("nan")
    form = WORDING[wording]

    def tok(text: str) -> str:
        return " ".join(words(form(text)))

    res = {i: [tok(r[source])] for i, r in enumerate(rows)}
    gts = {i: [tok(ref) for ref in r["references"]] for i, r in enumerate(rows)}
    return 100.0 * float(Cider().compute_score(gts, res)[0])


def stated_share(rows: list[dict], source: str = "prediction") -> dict[str, float]:
    """attribute -> percent of the items whose clip has it (a distractor, an event; every clip has a size) whose
    caption states it (any value, right or wrong)."""
    out = {}
    for attr in STATED:
        pairs = [(read_caption(r[source])[attr], read_caption(r["references"][0])[attr]) for r in rows if source in r]
        has = [got for got, truth in pairs if truth != "none"]
        out[attr] = 100.0 * sum(g != "none" for g in has) / len(has) if has else float("nan")
    return out


def wording_frame(results: Path, sweep: str) -> pd.DataFrame:
    """One row per run at its last evaluation with stored captions: model, condition, order, seed, samples_seen,
    CIDEr as written and in canonical wording, and the share of captions stating each fact of STATED."""
    return pd.DataFrame([{**run, **{f"CIDEr, {w}": cider(items, wording=w) for w in WORDING},
                          **{f"states {a}": v for a, v in stated_share(items).items()}}
                         for run, items in last_captions(results, sweep)])


def wording_markdown(table: pd.DataFrame, by: str = "model") -> str:
    """Rows: each model (VL-JEPA first) or condition; columns: CIDEr as written and in canonical wording, and the
    share of captions stating each fact, mean ± 95% over seeds; then the paired differences (as
    attribute_markdown pairs them)."""
    if table.empty:
        return ""
    if by == "model":
        groups = sorted(table["model"].unique(), key=lambda m: (m != "vljepa", m))
        pairs = [(groups[0], groups[1])] if len(groups) == 2 else []
    else:
        groups = list(table.sort_values("order", kind="stable")[by].drop_duplicates())
        pairs = [(g, groups[0]) for g in groups[1:]]
    columns = [c for c in table.columns if c.startswith(("CIDEr, ", "states "))]
    lines = [f"| at {int(table['samples_seen'].max()):,} samples | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]

    def cell(values: pd.Series, signed: bool = False) -> str:
        mean, half, n = interval(values.dropna())
        return (f"{mean:+.1f} ± {half:.1f}" if signed else f"{mean:.1f} ± {half:.1f}") if n > 1 else \
            (f"{mean:.1f}" if n else "-")

    for g in groups:
        sub = table[table[by] == g].set_index("seed")
        lines.append(f"| {g} | " + " | ".join(cell(sub[c]) for c in columns) + " |")
    for first, second in pairs:
        a, b = (table[table[by] == m].set_index("seed") for m in (first, second))
        lines.append(f"| {first} - {second}, paired | " + " | ".join(cell(a[c] - b[c], signed=True) for c in columns)
                     + " |")
    return "\n".join(lines)

