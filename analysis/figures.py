"""Figures from the metrics frame (matplotlib; PNG and PDF; one colour per model everywhere)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.records import interval  # noqa: E402
from analysis.tables import REFERENCE, reference  # noqa: E402
from bench.curves import REFERENCE_RATE, reduction_factor  # noqa: E402

MODEL_COLOURS = {"vljepa": "#1f5fa8", "vlm": "#c4432b"}
OTHER_COLOURS = ["#2a9d5c", "#8a4fbf", "#d18f1d", "#5a5a5a", "#17a2b8", "#b5487d"]
plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def colour(name: str, i: int = 0) -> str:
    return MODEL_COLOURS.get(name, OTHER_COLOURS[i % len(OTHER_COLOURS)])


def save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p, dpi=160)
    plt.close(fig)
    return paths


def _human(n: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def _ticks_at(ax, values: list, label=_human, **kwargs) -> None:
    """Ticks at the swept values themselves (log-scale defaults crowd when values are close)."""
    if values:
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(values, [label(v) for v in values], **kwargs)


def _last_evaluation(f: pd.DataFrame) -> pd.DataFrame:
    """Each run's rows at the last sample count it was evaluated at."""
    return f[f["samples_seen"] == f.groupby("run_id")["samples_seen"].transform("max")]


def _flops(n: float) -> str:
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


def _curve(ax, g: pd.DataFrame, x: str, label: str) -> None:
    """The metric of g against column x (the mean over seeds at each sample count), a 95% band over seeds,
    one line per model; chance as a dotted line."""
    for i, (model, gm) in enumerate(g.groupby("model")):
        stats = [(gs[x].mean(), *interval(gs.groupby("seed")["value"].mean())) for _, gs in gm.groupby("samples_seen")]
        xs = [s for s, *_ in stats]
        mean = [m for _, m, _, _ in stats]
        half = [h for _, _, h, _ in stats]
        c = colour(model, i)
        ax.plot(xs, mean, marker="o", ms=3, color=c, label=model)
        ax.fill_between(xs, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)], color=c, alpha=0.18)
    chance = g["chance"].dropna()
    if len(chance):
        ax.axhline(chance.mean(), color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_ylabel(label)
    ax.legend(frameon=False, fontsize=8)


def sample_efficiency(frame: pd.DataFrame, sweep: str, panels: list[tuple[str, str, str]], out: Path) -> list[Path]:
    """One panel per (task, metric, label): the metric against samples seen (log x), mean and 95% band
    over seeds, one line per model. Where the records carry training FLOPs, a second row puts the same
    curves against cumulative training FLOPs: the compute-matched view (the twins' FLOPs per sample differ)."""
    f = frame[(frame["sweep"] == sweep)].dropna(subset=["task"])
    with_flops = "train_flops" in f and f["train_flops"].notna().any() and (f["train_flops"] > 0).any()
    rows = 2 if with_flops else 1
    fig, axes = plt.subplots(rows, len(panels), figsize=(3.4 * len(panels), 2.8 * rows), squeeze=False)
    for j, (task, metric, label) in enumerate(panels):
        g = f[(f["task"] == task) & (f["metric"] == metric) & (f["samples_seen"] > 0)]
        _curve(axes[0][j], g, "samples_seen", label)
        _ticks_at(axes[0][j], sorted(g["samples_seen"].unique()))
        axes[0][j].set_xlabel("samples seen")
        if with_flops:
            ax = axes[1][j]
            _curve(ax, g[g["train_flops"] > 0], "train_flops", label)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: _flops(v)))
            ax.set_xlabel("training FLOPs")
    return save(fig, out, f"{sweep}_sample_efficiency")


def ablation_chart(table: pd.DataFrame, sweep: str, out: Path, labels=("Class.", "Retr.", "VQA")) -> list[Path]:
    """Grouped bars: one group per metric, one bar per setting, 95% intervals, chance marked."""
    labels = [lab for lab in labels if lab in table.columns]
    fig, axes = plt.subplots(1, len(labels), figsize=(3.0 * len(labels), 2.8), squeeze=False)
    for ax, lab in zip(axes[0], labels):
        settings = [str(s) for s in table["setting"]]
        means = [r[lab][0] for _, r in table.iterrows()]
        halves = [r[lab][1] for _, r in table.iterrows()]
        ax.bar(range(len(settings)), means, yerr=halves, capsize=3,
               color=[OTHER_COLOURS[i % len(OTHER_COLOURS)] for i in range(len(settings))])
        chance = table[f"{lab} chance"].dropna()
        if len(chance):
            ax.axhline(chance.mean(), color="grey", lw=0.8, ls=":")
        ax.set_xticks(range(len(settings)), settings, rotation=35, ha="right", fontsize=8)
        ax.set_title(lab)
        ax.set_ylabel("% (dotted: chance)")
    return save(fig, out, f"{sweep}_ablation")


def reference_factor() -> str:
    """What the paper reports for selective decoding, with its source (results/reference/selective_decoding.csv)."""
    if not (REFERENCE / "selective_decoding.csv").is_file():
        return ""
    row = reference("selective_decoding").query("strategy == 'adaptive'")
    return f"adaptive at {row['rate_hz'].iloc[0]:g} Hz {row['note'].iloc[0]}, {row['source'].iloc[0]}" if len(row) else ""


def seed_mean_curves(f: pd.DataFrame) -> dict[str, dict[float, tuple[float, float, int]]]:
    """Streaming CIDEr per strategy and rate at each run's last evaluation: (mean, 95% half-width, seeds)."""
    curves = _last_evaluation(f[(f["task"] == "streaming") & f["metric"].str.startswith("CIDEr_")])
    return {metric.removeprefix("CIDEr_"): {r: interval(gr.groupby("seed")["value"].mean()) for r, gr in g.groupby("rate_hz")}
            for metric, g in curves.groupby("metric")}


def selective_factor(f: pd.DataFrame, short: bool = False, curves: dict | None = None) -> str:
    """The decode-reduction factor read off the seed-averaged pooled curves (steadier than each run's own
    when curves are close), beside its control: uniform decoding against itself, which is above 1 when
    uniform's CIDEr has already saturated below the reference rate (decodes the streams did not need)."""
    means = {k: {r: v[0] for r, v in c.items()} for k, c in (curves or seed_mean_curves(f)).items()}
    if "uniform_pooled" not in means or "adaptive_pooled" not in means:
        return ""
    averaged = reduction_factor(means["uniform_pooled"], means["adaptive_pooled"])
    control = reduction_factor(means["uniform_pooled"], means["uniform_pooled"])
    text = f"{averaged:.2f}x fewer decodes" if averaged else "adaptive never reaches it"
    text += f"; control, uniform against itself: {control:.2f}x" if control else ""
    if short:
        return f"adaptive vs uniform at uniform's {REFERENCE_RATE:g} Hz CIDEr: {text}"
    runs = _last_evaluation(f[(f["task"] == "streaming") & (f["metric"] == "reduction_factor_pooled")])["value"]
    found = runs.dropna()
    paper = reference_factor()
    return (f"adaptive vs uniform at uniform's {REFERENCE_RATE:g} Hz CIDEr (pooled, seed means): {text}"
            + (f" (paper: {paper})" if paper else "")
            + f"; per run: {len(found)} of {len(runs)} reach it" + (f", mean {found.mean():.2f}x" if len(found) else ""))


def selective_decoding(frame: pd.DataFrame, sweep: str, out: Path) -> list[Path]:
    """CIDEr against decodes per second, uniform against adaptive (and pooled / online), 95% bands over
    seeds, the reduction factor in the title."""
    f = frame[(frame["sweep"] == sweep) & (frame["task"] == "streaming")]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    curves = seed_mean_curves(f)
    for i, (strategy, curve) in enumerate(curves.items()):
        xs = sorted(curve)
        mean, half = [curve[x][0] for x in xs], [curve[x][1] for x in xs]
        c = OTHER_COLOURS[i % len(OTHER_COLOURS)]
        ax.plot(xs, mean, marker="o", ms=3, label=strategy, color=c, lw=2.0 if strategy.endswith("pooled") else 1.0)
        if strategy in ("uniform_pooled", "adaptive_pooled"):  # the two the factor is read from
            ax.fill_between(xs, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)], color=c, alpha=0.12)
    ax.set_title(selective_factor(f, short=True, curves=curves), fontsize=6.5, wrap=True)
    ax.set_xscale("log")
    _ticks_at(ax, sorted({x for curve in curves.values() for x in curve}), label="{:g}".format, fontsize=7)
    ax.set_xlabel("decodes per second")
    ax.set_ylabel("CIDEr")
    ax.legend(frameon=False, fontsize=7)
    return save(fig, out, f"{sweep}_selective_decoding")
