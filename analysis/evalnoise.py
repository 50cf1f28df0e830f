"""Evaluation noise beside seed noise: how much of a paired difference's spread the evaluation items make.

A run's hit-rate metrics (top-k, R@k, VQA accuracy) are means over items, and every evaluation keeps each
item's hit (`<task>__<set>.outcomes.jsonl`, beside the predictions: of the training's evaluations and of
bench.tools.evaluate's on-demand ones). Two runs of a paired comparison (same seed, two conditions) answered the same
items in the same order, so their difference is a mean of per-item differences d_i, and its noise from the
items alone is measured without a model of them:

- split-half: the items are split at random into two halves; the halves' mean differences differ by
  D1 - D2, whose mean square is 4 times the variance of the whole set's mean (each half holds half the
  items), so the evaluation's standard error is sqrt(E (D1 - D2)^2) / 2. Averaged over every split this is
  exactly the paired standard error sd(d) / sqrt(n) (split_half_se). It counts what the two runs share:
  where they err on the same items, d_i = 0 there and the estimate falls (the independent-items bound of
  analysis/power.py cannot see that).

The seeds' interval holds the items fixed; the item noise of the seeds' mean difference (the split-half
SE of the per-item differences averaged over seeds, which every seed shares) is added to it, in quadrature,
for an interval over seeds and items: what a reader who wants the effect on the task, not on these items,
reads.

Against it stands the seed SD of the difference (what a seed varies: data order, heads' initialisation).
Where the evaluation's SE is close to that SD, larger eval sets narrow the interval; where it is far
smaller, only more seeds do. (With the items fixed, the SE can also exceed the seed SD: seeds that err on
the same items share that part of the item noise, which no number of seeds then averages away.)

`python -m bench.eval RUN --size 4000 --name items4000` re-scores a finished run's last checkpoint on more
items, and noise_rows sets each evaluation size beside the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.power import minimum_detectable_effect
from analysis.records import interval
from analysis.tables import setting_label
from bench.results import ONDEMAND, OUTCOMES, PREDICTIONS, RUNS, read_jsonl, set_file_name

HEADLINE = (("classification", "top1"), ("retrieval", "t2v_R@1"), ("vqa", "accuracy"))


def split_half_se(diff: np.ndarray) -> float:
    """The standard error, from the items alone, of the mean of per-item differences `diff`: the split-half
    estimate sqrt(E (D1 - D2)^2) / 2, averaged over every split of the n items into two halves of n/2. That
    average has a closed form: for a random balanced split, E (D1 - D2)^2 = 4 s^2 / n (s: the SD of diff,
    n - 1 in its denominator), so the estimate is s / sqrt(n), the paired standard error, with no sampling
    of splits (tests/test_evalnoise.py checks it against explicit random splits)."""
    d = np.asarray(diff, dtype=float).ravel()
    return float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def _read_hits(folder: Path) -> dict[tuple[str, str, str], np.ndarray]:
    """(task, set, metric) -> hits (bool), from one evaluation's outcomes files."""
    out = {}
    for f in sorted(folder.glob(f"*.{OUTCOMES}.jsonl")):
        task, _, evalset = f.name.removesuffix(f".{OUTCOMES}.jsonl").partition("__")
        for row in read_jsonl(f):
            out[(task, evalset, row["metric"])] = np.frombuffer(row["hits"].encode(), dtype=np.uint8) == ord("1")
    return out


def run_outcomes(results: str | Path, run_id: str) -> list[dict]:
    """Every evaluation of a run that kept hits: {source ("train" or the on-demand file's stem),
    samples_seen, hits: {(task, set, metric): bool array}}."""
    run = Path(results) / RUNS / run_id
    found = []
    for folder in sorted((run / PREDICTIONS).glob("*")):
        hits = _read_hits(folder)
        if hits:
            found.append({"source": "train", "samples_seen": int(folder.name), "hits": hits})
    for rec in sorted((run / ONDEMAND).glob("*.jsonl")):
        hits = _read_hits(rec.with_suffix(".predictions"))
        rows = read_jsonl(rec)
        if hits and rows:
            found.append({"source": rec.stem, "samples_seen": int(rows[0]["samples_seen"]), "hits": hits})
    return found


def _last_hits(results: Path, run_id: str, only_set: str | None = None) -> dict[tuple[str, str, int], np.ndarray]:
    """(task, metric, items) -> hits, at the run's last evaluated sample count: one entry per evaluation size
    (the training's own evaluation first where an on-demand one repeats its size); only_set: that eval set's
    only (a tuned sweep's arm: its report set)."""
    evals = run_outcomes(results, run_id)
    if not evals:
        return {}
    last = max(e["samples_seen"] for e in evals)
    out: dict[tuple[str, str, int], np.ndarray] = {}
    for e in sorted((e for e in evals if e["samples_seen"] == last), key=lambda e: e["source"] != "train"):
        for (task, evalset, metric), hits in e["hits"].items():
            if only_set is None or evalset == set_file_name(only_set):
                out.setdefault((task, metric, len(hits)), hits)
    return out


def noise_rows(results: str | Path, runs: pd.DataFrame, sweep: str,
               metrics: tuple[tuple[str, str], ...] = HEADLINE, names: dict[str, str] | None = None) -> list[dict]:
    """For each condition of the sweep against its first, each metric and each evaluation size that every
    run of both has: the paired difference over seeds (mean, 95% half-width, seed SD, smallest detectable
    difference) and the evaluation's split-half standard error of one seed's difference (root mean square
    over the seeds). runs: analysis.records.runs(results); names: a readable name for each condition (the
    report's setting names), else the sweep's labels."""
    results = Path(results)
    r = runs[runs["sweep"] == sweep].sort_values("order")
    if r.empty:
        return []
    report = dict(zip(r["run_id"], r["report_set"])) if "report_set" in r else {}
    hits = {rid: _last_hits(results, rid, report.get(rid) if isinstance(report.get(rid), str) else None)
            for rid in r["run_id"].unique()}
    conditions = list(dict.fromkeys(r["condition"]))
    label = {**dict(zip(r["condition"], r["label"].fillna(r["condition"]))), **(names or {})}
    seeds = {c: dict(zip(g["seed"], g["run_id"])) for c, g in r.groupby("condition")}
    first, rows = conditions[0], []
    for cond in conditions[1:]:
        common = sorted(set(seeds[cond]) & set(seeds[first]))
        for task, metric in metrics:
            sizes = sorted({n for rid in (seeds[c][s] for c in (cond, first) for s in common)
                            for (t, m, n) in hits[rid] if (t, m) == (task, metric)})
            for n in sizes:
                pairs = [(hits[seeds[cond][s]].get((task, metric, n)), hits[seeds[first][s]].get((task, metric, n)))
                         for s in common]
                if not pairs or any(a is None or b is None for a, b in pairs):
                    continue  # not every run of the pair has this size: no paired row
                diffs = [100.0 * (a.astype(float) - b.astype(float)) for a, b in pairs]
                deltas = pd.Series([d.mean() for d in diffs])
                mean, half, k = interval(deltas)
                sd = float(deltas.std(ddof=1)) if k > 1 else float("nan")
                se = float(np.sqrt(np.mean([split_half_se(d) ** 2 for d in diffs])))
                # the seeds' mean difference is itself a mean over these items: its item noise, which every
                # seed shares and no number of seeds averages away, added to the seeds' interval
                both = float(np.hypot(half, 1.96 * split_half_se(np.mean(diffs, axis=0))))
                resolved = k > 1 and sd > 0 and abs(mean) > both
                rows.append({"comparison": f"{setting_label(label[cond])} - {setting_label(label[first])}",
                             "metric": f"{task}/{metric}",
                             "items": n, "seeds": k, "mean": mean, "half": half, "sd": sd, "eval_se": se,
                             "ratio": se / sd if sd > 0 else float("nan"),
                             "mde": minimum_detectable_effect(sd, k), "half_both": both,
                             "excludes_zero": resolved})
    return rows


def noise_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["| comparison | metric | items | seeds | Δ (95% interval over seeds) | seed SD of Δ | evaluation SE of Δ "
             "(split-half) | evaluation SE / seed SD | smallest Δ detectable (80% power) | Δ (95% over seeds and items) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for x in rows:
        ratio = "-" if x["ratio"] != x["ratio"] else f"{x['ratio']:.2f}"
        lines.append(f"| {x['comparison']} | {x['metric']} | {x['items']:,} | {x['seeds']} | "
                     f"{x['mean']:+.1f} ± {x['half']:.1f} | {x['sd']:.1f} | {x['eval_se']:.1f} | {ratio} | {x['mde']:.1f} | "
                     f"{x['mean']:+.1f} ± {x['half_both']:.1f}{' (excludes 0)' if x['excludes_zero'] else ''} |")
    return "\n".join(lines)
