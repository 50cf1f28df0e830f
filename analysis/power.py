"""How small an effect each paired comparison can detect, and how many seeds the paper's effect needs.

For two conditions run with the same seeds (same seed: same data order and initialisation), the
per-seed differences d_1..d_n are what the comparison measures. From them:

- the mean difference and its 95% t-interval half-width (what the tables show);
- sd: the seed standard deviation of the difference (evaluation noise included);
- mde: the minimum detectable effect, the true difference a two-sided paired t-test at alpha = 0.05 finds
  with 80% power at this n and sd (exact, through the noncentral t distribution);
- seeds_needed: the smallest n at which the paper's difference for the same comparison would be found
  with 80% power, if our sd held (None when the paper has no number for it);
- mde_range: the mde's 95% range from the sd's own uncertainty. An sd from n seeds has n - 1 degrees of
  freedom, so at 3 seeds the true sd lies anywhere from about 0.5x to 6x the one seen (chi-square), and
  the mde with it;
- p and p_holm: the paired t-test's two-sided p-value, and Holm's step-down adjustment over the rows of
  one experiment's table (power_markdown), which keeps the chance of any false "reproduced" or
  "contradicted" among them at 5%. A verdict whose interval excludes 0 but whose Holm p does not stay
  under 0.05 is marked so.

The verdict follows the interval: "reproduced" when it excludes 0 in the paper's direction,
"contradicted" when it excludes 0 the other way, "unresolved" otherwise (with the mde beside it).
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.records import interval
from analysis.tables import labels_of, reference

ALPHA, POWER = 0.05, 0.80
MAX_SEEDS = 10_000


def power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that a two-sided paired t-test on n differences of SD sd rejects 0 when the true mean
    difference is `effect`."""
    from scipy import stats

    if n < 2 or sd <= 0:
        return float("nan")
    df, nc = n - 1, abs(effect) / sd * math.sqrt(n)
    t = stats.t.ppf(1 - alpha / 2, df)
    wrong_side = stats.nct.cdf(-t, df, nc)  # rejecting the other way: below alpha/2, ~1e-17 where scipy's
    # series fails (NaN at 1 degree of freedom and some large nc, e.g. 15): counted as 0 there
    return float(stats.nct.sf(t, df, nc) + (0.0 if math.isnan(wrong_side) else wrong_side))


def minimum_detectable_effect(sd: float, n: int, target: float = POWER) -> float:
    """The smallest true difference found with `target` power at n seeds and seed SD sd."""
    from scipy.optimize import brentq

    if n < 2 or not sd > 0:
        return float("nan")
    hi = sd
    while power(hi, sd, n) < target:
        hi *= 2
    return float(brentq(lambda e: power(e, sd, n) - target, 0.0, hi, xtol=1e-9 * sd))


def seeds_needed(effect: float, sd: float, target: float = POWER) -> int | None:
    """The smallest n with `target` power for a true difference `effect` (None past MAX_SEEDS)."""
    if not sd > 0 or effect == 0 or effect != effect:
        return None
    lo, hi = 2, 2
    while power(effect, sd, hi) < target:
        if hi >= MAX_SEEDS:
            return None
        lo, hi = hi, min(hi * 2, MAX_SEEDS)
    while lo < hi:  # power grows with n: the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(effect, sd, mid) < target else (lo, mid)
    return lo


def sd_range(sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The `level` interval of the true SD behind a sample SD `sd` of n values: (n - 1) sd^2 / sigma^2 is
    chi-square with n - 1 degrees of freedom."""
    from scipy import stats

    if n < 2 or not sd > 0:
        return float("nan"), float("nan")
    df, tail = n - 1, (1 - level) / 2
    return (sd * math.sqrt(df / stats.chi2.ppf(1 - tail, df)), sd * math.sqrt(df / stats.chi2.ppf(tail, df)))


def mde_range(sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The minimum detectable effect at either end of sd_range: how uncertain the mde is, since it plugs in an
    SD measured on n seeds (the mde is proportional to the SD at fixed n)."""
    mde = minimum_detectable_effect(sd, n)
    lo, hi = sd_range(sd, n, level)
    return (mde * lo / sd, mde * hi / sd) if mde == mde else (float("nan"), float("nan"))


def p_value(mean: float, sd: float, n: int) -> float:
    """Two-sided p of the paired t-test of n differences with this mean and SD (nan without spread)."""
    from scipy import stats

    if n < 2 or not sd > 0:
        return float("nan")
    return float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and counts for nothing): the k-th smallest of m
    p-values times (m - k + 1), made monotone, capped at 1."""
    order = sorted((p, i) for i, p in enumerate(ps) if p == p)
    out, running, m = [float("nan")] * len(ps), 0.0, len(order)
    for k, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def with_holm(rows: list[dict]) -> list[dict]:
    """rows with p_holm: Holm over the rows' p-values (one experiment's table)."""
    adjusted = holm([r.get("p", float("nan")) for r in rows])
    return [{**r, "p_holm": a} for r, a in zip(rows, adjusted)]


def paired(diffs: pd.Series, paper_effect: float | None = None, direction: int | None = None,
           eval_se: float | None = None) -> dict:
    """Everything above for one paired comparison's per-seed differences. direction (+1 or -1): the sign the
    paper claims where it gives no number for this difference (verdicts then still say which way).
    eval_se: the evaluation's own noise in one seed's difference (see eval_noise), shown beside the seed SD,
    which contains it: where the two are close, larger eval sets would narrow the interval; where the
    seed SD is far larger, only more seeds would."""
    d = diffs.dropna().astype(float)
    mean, half, n = interval(d)
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    if not (n > 1 and sd > 0 and (mean - half > 0 or mean + half < 0)):
        verdict = "unresolved"  # the interval includes 0, or no spread was seen (seeds that agree to the item
        # on a discrete metric give an interval of width 0: no evidence of an effect's precision)
    elif not paper_effect and not direction:
        verdict = "resolved"  # no paper number to take a direction from
    elif (mean > 0) == ((paper_effect or direction) > 0):
        verdict = "reproduced"
    else:
        verdict = "contradicted"
    return {"n": n, "mean": mean, "half": half, "sd": sd, "mde": minimum_detectable_effect(sd, n),
            "mde_range": mde_range(sd, n), "p": p_value(mean, sd, n),
            "paper": paper_effect, "seeds_needed": seeds_needed(paper_effect, sd) if paper_effect else None,
            "verdict": verdict, "eval_se": eval_se}


def eval_noise(se_a: float | None, se_b: float | None) -> float | None:
    """The standard error a difference of two runs' metrics has from their evaluation items alone (each a
    mean over items with standard error se): sqrt(se_a^2 + se_b^2), an upper bound where both runs see the
    same items (their errors correlate)."""
    if se_a is None or se_b is None or pd.isna(se_a) or pd.isna(se_b):
        return None
    return float((se_a ** 2 + se_b ** 2) ** 0.5)


def power_markdown(rows: list[dict]) -> str:
    """rows: {"comparison", "metric", **paired(...)}, one experiment's: one line each, with Holm's adjustment
    over them."""
    if not rows:
        return ""
    lines = ["| comparison | metric | seeds | Δ (95% interval) | seed SD of Δ | of which evaluation (SE) | "
             "smallest Δ detectable (80% power) | its range from the SD's uncertainty | p (Holm) | paper Δ | "
             "seeds for the paper's Δ | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in with_holm(rows):
        paper = "-" if r["paper"] is None else f"{r['paper']:+.1f}"
        need = "-" if r["paper"] is None else (f"{r['seeds_needed']:,}" if r["seeds_needed"] else f"> {MAX_SEEDS:,}")
        noise = "-" if r.get("eval_se") is None else f"{r['eval_se']:.1f}"
        lo, hi = r.get("mde_range", (float("nan"),) * 2)
        span = "-" if lo != lo else f"{lo:.1f}-{hi:.1f}"
        p, ph = r.get("p", float("nan")), r["p_holm"]
        pcell = "-" if p != p else f"{_p(p)} ({_p(ph)})"
        verdict = r["verdict"]
        if verdict in ("reproduced", "contradicted", "resolved") and not ph < ALPHA:
            verdict += ", not after Holm"
        lines.append(f"| {r['comparison']} | {r['metric']} | {r['n']} | {r['mean']:+.1f} ± {r['half']:.1f} | "
                     f"{r['sd']:.1f} | {noise} | {r['mde']:.1f} | {span} | {pcell} | {paper} | {need} | {verdict} |")
    lines.append("")
    lines.append(f"Holm's adjustment runs over the {len(rows)} rows above (one experiment); the range of the "
                 "smallest detectable Δ is its value at the ends of the 95% interval of the seed SD, which has "
                 "seeds - 1 degrees of freedom.")
    return "\n".join(lines)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _number(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def ablation_power(table: pd.DataFrame) -> list[dict]:
    """Each setting of an ablation table (analysis.tables.ablation_table) against its first row, per column;
    the paper's difference for the same pair of settings where results/reference has both."""
    if len(table) < 2:
        return []
    first, rows = table.iloc[0], []
    labels = labels_of(table)
    for _, r in table.iloc[1:].iterrows():
        for lab in labels:
            diffs = pd.Series(r[f"{lab} per seed"], dtype=float) - pd.Series(first[f"{lab} per seed"], dtype=float)
            if len(diffs.dropna()) and (diffs.dropna() == 0).all():
                continue  # equal in every seed: a reading the swept key does not touch (a baseline beside it)
            a, b = _number(r[f"{lab} paper"]), _number(first[f"{lab} paper"])
            paper = a - b if a is not None and b is not None else None
            noise = eval_noise(_number(r.get(f"{lab} se")), _number(first.get(f"{lab} se")))
            rows.append({"comparison": f"{r['setting']} - {first['setting']}", "metric": lab,
                         **paired(diffs, paper, eval_se=noise)})
    return rows


COMPARISON_REFERENCE = {("classification", "top5"): "top5", ("captioning", "CIDEr"): "cider"}


def comparison_power(frame: pd.DataFrame, sweep: str, metrics: list[tuple[str, str]]) -> list[dict]:
    """VL-JEPA minus the VLM (or the first model minus the second, by name) at the sweep's last sample count,
    paired by seed; the paper's difference at its largest budget (results/reference/controlled_comparison.csv)."""
    f = frame[frame["sweep"] == sweep].dropna(subset=["task"])
    models = sorted(f["model"].dropna().unique(), key=lambda m: (m != "vljepa", m))
    if len(models) != 2 or f.empty:
        return []
    last = f[f["samples_seen"] == f["samples_seen"].max()]
    ref = reference("controlled_comparison")
    ref = ref[ref["samples_seen"] == ref["samples_seen"].max()].set_index("model")
    rows = []
    for task, metric in metrics:
        g = last[(last["task"] == task) & (last["metric"] == metric)]
        a, b = (g[g["model"] == m].groupby("seed")["value"].mean() for m in models)
        col = COMPARISON_REFERENCE.get((task, metric))
        paper = None
        if col and set(models) <= set(ref.index):
            paper = float(ref.loc[models[0], col] - ref.loc[models[1], col])
        se = {m: _number(((g[g["model"] == m]["se"].astype(float) ** 2).mean()) ** 0.5) if "se" in g else None
              for m in models}
        rows.append({"comparison": f"{models[0]} - {models[1]} at {int(last['samples_seen'].max()):,}",
                     "metric": f"{task}/{metric}", **paired(a - b, paper, eval_se=eval_noise(*se.values()))})
    return rows


def selective_power(frame: pd.DataFrame, sweep: str) -> list[dict]:
    """Selective decoding, per seed at its last evaluation: adaptive minus uniform, the mean CIDEr gap over
    the swept rates (the paper claims adaptive captions better at matched decodes, giving a factor, not a
    gap: the direction is its claim)."""
    f = frame[(frame["sweep"] == sweep) & (frame["task"] == "streaming")].dropna(subset=["metric"])
    rows = []
    for kind, label in (("cider_gap_pooled", "adaptive - uniform (pooled)"), ("cider_gap", "adaptive - uniform (midpoint)")):
        g = f[f["metric"] == kind]
        if len(g):
            g = g[g["samples_seen"] == g["samples_seen"].max()]
            rows.append({"comparison": label, "metric": "mean CIDEr gap over rates",
                         **paired(g.groupby("seed")["value"].mean(), direction=+1)})
    return rows
