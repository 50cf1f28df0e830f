"""Figures from the metrics frame (matplotlib; PNG and PDF; one colour per model everywhere, one colour per
condition across the figures of a sweep: analysis/figstyle.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.lines
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.figstyle import (  # noqa: E402
    MODEL_COLOURS,
    OTHER_COLOURS,
    column_names,
    condition_labels,
    display_name,
    factor_words,
    legend_outside,
    log_ticks,
    palette,
)
from analysis.records import interval  # noqa: E402
from analysis.tables import REFERENCE, labels_of, reference  # noqa: E402
from bench.eval.curves import REFERENCE_RATE, monotone, reduction_factor  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def colour(name: str, i: int = 0) -> str:
    return MODEL_COLOURS.get(name, OTHER_COLOURS[i % len(OTHER_COLOURS)])


def save(fig, out: Path, stem: str) -> list[Path]:
    """The figure as PNG and PDF; laid out tight unless it has a layout of its own (the constrained layout
    of a figure with a legend outside its panels)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    if fig.get_layout_engine() is None:
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
        ax.plot(xs, mean, marker="o", ms=3, color=c, label=display_name(model))
        ax.fill_between(xs, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)], color=c, alpha=0.18)
    chance = g["chance"].dropna()
    if len(chance):
        ax.axhline(chance.mean(), color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_ylabel(label)


# (task, metric) -> the column of results/reference/controlled_comparison.csv that has the paper's number
PAPER_COMPARISON = {("captioning", "CIDEr"): "cider", ("classification", "top5"): "top5"}


def _paper_points(ax, task: str, metric: str, models: list[str]) -> bool:
    """The paper's numbers for this panel (section 4.4's sample counts, real data) as hollow markers in each
    model's colour; returns whether there were any."""
    column = PAPER_COMPARISON.get((task, metric))
    if column is None or not (REFERENCE / "controlled_comparison.csv").is_file():
        return False
    ref = reference("controlled_comparison")
    drawn = False
    for i, model in enumerate(models):
        rows = ref[(ref["model"] == model) & ref[column].notna()].sort_values("samples_seen")
        if len(rows):
            ax.plot(rows["samples_seen"], rows[column], ls="--", lw=0.8, marker="D", ms=4, mfc="none",
                    color=colour(model, i), label=f"{display_name(model)}, paper")
            drawn = True
    return drawn


def sample_efficiency(frame: pd.DataFrame, sweep: str, panels: list[tuple[str, str, str]], out: Path) -> list[Path]:
    """One panel per (task, metric, label): the metric against samples seen (log x), mean and 95% band
    over seeds, one line per model, and the paper's numbers for the same comparison where it has them
    (hollow diamonds, dashed). Where the records carry training FLOPs, a second row puts the same
    curves against cumulative training FLOPs: the compute-matched view (the twins' FLOPs per sample differ)."""
    f = frame[(frame["sweep"] == sweep)].dropna(subset=["task"])
    with_flops = "train_flops" in f and f["train_flops"].notna().any() and (f["train_flops"] > 0).any()
    rows = 2 if with_flops else 1
    fig, axes = plt.subplots(rows, len(panels), figsize=(3.4 * len(panels) + 1.3, 2.8 * rows), squeeze=False,
                             layout="constrained")
    for j, (task, metric, label) in enumerate(panels):
        g = f[(f["task"] == task) & (f["metric"] == metric) & (f["samples_seen"] > 0)]
        _curve(axes[0][j], g, "samples_seen", label)
        if not _paper_points(axes[0][j], task, metric, sorted(g["model"].dropna().unique())):
            _ticks_at(axes[0][j], sorted(g["samples_seen"].unique()))
        axes[0][j].set_xlabel("samples seen")
        if with_flops:
            ax = axes[1][j]
            _curve(ax, g[g["train_flops"] > 0], "train_flops", label)
            log_ticks(ax, _flops)
            ax.set_xlabel("training FLOPs")
    legend_outside(fig, axes.flat)
    return save(fig, out, figure_name(sweep, "sample_efficiency"))


def _tick(label: str, width: int = 28) -> str:
    """A setting as an axis label: at most two lines (a zipped condition can run to hundreds of characters)."""
    import textwrap
    return "\n".join(textwrap.wrap(textwrap.shorten(label, 2 * width, placeholder=" ..."), width)) or label


def _paper_marks(ax, table: pd.DataFrame, lab: str) -> None:
    """The paper's number for each setting that has one, as a hollow diamond over its bar."""
    if f"{lab} paper" not in table.columns:
        return
    paper = [(i, v) for i, v in enumerate(table[f"{lab} paper"]) if v is not None and not pd.isna(v)]
    if paper:
        ax.plot([i for i, _ in paper], [v for _, v in paper], ls="none", marker="D", ms=5, mfc="white",
                mec="black", label="paper")


def ablation_chart(table: pd.DataFrame, sweep: str, out: Path, colours: dict[str, str] | None = None) -> list[Path]:
    """Grouped bars: one panel per metric of the table, titled by the metric, one bar per setting in the
    sweep's order, 95% intervals, chance dotted, the paper's numbers as diamonds. colours: the sweep's
    palette (label -> colour, analysis/figstyle.py), so a setting has the colour of its training curves."""
    labels = labels_of(table)
    settings = [str(s) for s in table["setting"]]
    colours = {**palette(settings), **(colours or {})}
    fig, axes = plt.subplots(1, len(labels), figsize=(3.0 * len(labels) + 0.9, 3.0), squeeze=False,
                             layout="constrained")
    for ax, lab in zip(axes[0], labels):
        means = [r[lab][0] for _, r in table.iterrows()]
        halves = [r[lab][1] for _, r in table.iterrows()]
        ax.bar(range(len(settings)), means, yerr=halves, capsize=3, color=[colours[s] for s in settings])
        chance = table[f"{lab} chance"].dropna()
        if len(chance):
            ax.axhline(chance.mean(), color="grey", lw=0.8, ls=":", label="chance")
        _paper_marks(ax, table, lab)
        ax.set_xticks(range(len(settings)), [_tick(s) for s in settings], rotation=35, ha="right", fontsize=8)
        title, ylabel = column_names(lab)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
    legend_outside(fig, axes[0], fontsize=7)
    return save(fig, out, figure_name(sweep, "ablation"))


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
    """The decode-reduction factor read off the seed-averaged pooled curves, fitted monotone (bench/eval/curves.py),
    beside its control: uniform decoding against itself, above 1 where uniform's CIDEr has saturated below
    the reference rate (decodes the streams did not need)."""
    means = {k: monotone({r: v[0] for r, v in c.items()}) for k, c in (curves or seed_mean_curves(f)).items()}
    if "uniform_pooled" not in means or "adaptive_pooled" not in means:
        return ""
    averaged = reduction_factor(means["uniform_pooled"], means["adaptive_pooled"])
    control = reduction_factor(means["uniform_pooled"], means["uniform_pooled"])
    text = factor_words(averaged) if averaged else "adaptive never reaches it"
    text += f"; control, uniform against itself: {control:.2f}x" if control else ""
    if short:
        return f"adaptive vs uniform at uniform's {REFERENCE_RATE:g} Hz CIDEr: {text}"
    paper = reference_factor()
    return (f"adaptive vs uniform at uniform's {REFERENCE_RATE:g} Hz CIDEr (pooled, seed means, monotone fits): {text}"
            + (f" (paper: {paper})" if paper else ""))


def selective_runs(f: pd.DataFrame) -> pd.DataFrame:
    """Per run at its last evaluation: the factor, its control and the CIDEr gap (pooled), each factor and gap
    with the run's own 95% bootstrap interval over streams, where its records carry one."""
    g = _last_evaluation(f[(f["task"] == "streaming") & f["metric"].isin(
        ["reduction_factor_pooled", "reduction_factor_control_pooled", "cider_gap_pooled"])])
    rows = []
    for (seed, rid), run in g.groupby(["seed", "run_id"]):
        r = run.set_index("metric")
        row = {"seed": int(seed), "run_id": rid}
        for m in ("reduction_factor_pooled", "reduction_factor_control_pooled", "cider_gap_pooled"):
            row[m] = float(r.loc[m, "value"]) if m in r.index else float("nan")
            row[f"{m} lo"] = float(r.loc[m, "lo"]) if m in r.index and "lo" in r and pd.notna(r.loc[m, "lo"]) else float("nan")
            row[f"{m} hi"] = float(r.loc[m, "hi"]) if m in r.index and "hi" in r and pd.notna(r.loc[m, "hi"]) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def selective_markdown(f: pd.DataFrame) -> str:
    """One line per seed: what its own run reads, with intervals from its bootstrap over streams."""
    runs = selective_runs(f)
    if runs.empty:
        return ""

    def cell(r, m, fmt):
        v, lo, hi = r[m], r[f"{m} lo"], r[f"{m} hi"]
        if pd.isna(v):
            return "-"
        return fmt.format(v) + ("" if pd.isna(lo) else f" ({fmt.format(lo)} to {fmt.format(hi)})")

    lines = ["| seed | reduction factor (95% over streams) | control: uniform against itself | "
             "CIDEr gap, adaptive - uniform (95% over streams) |", "|---:|---:|---:|---:|"]
    for _, r in runs.iterrows():
        lines.append(f"| {r['seed']} | {cell(r, 'reduction_factor_pooled', '{:.2f}x')} | "
                     f"{cell(r, 'reduction_factor_control_pooled', '{:.2f}x')} | {cell(r, 'cider_gap_pooled', '{:+.1f}')} |")
    return "\n".join(lines)


STRATEGY_NAMES = {"uniform_pooled": "uniform (pooled)", "adaptive_pooled": "adaptive (pooled)",
                  "uniform": "uniform", "adaptive": "adaptive (midpoint)", "online": "online threshold"}
STRATEGY_COLOURS = {"uniform_pooled": "#5a5a5a", "adaptive_pooled": "#1f5fa8", "uniform": "#9a9a9a",
                    "adaptive": "#6f9fd8", "online": "#d18f1d"}


def figure_name(sweep: str, kind: str) -> str:
    """<sweep>_<kind>, without saying the sweep's name twice (sweep 'selective', kind 'selective_decoding')."""
    return kind if kind.startswith(f"{sweep}_") else f"{sweep}_{kind}"


def selective_decoding(frame: pd.DataFrame, sweep: str, out: Path) -> list[Path]:
    """CIDEr against decodes per second for each strategy, 95% bands over seeds for the two the factor is
    read from; the factor marked: uniform's CIDEr at the reference rate (dashed) and the rate at which
    adaptive reaches it (arrow)."""
    f = frame[(frame["sweep"] == sweep) & (frame["task"] == "streaming")]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    curves = seed_mean_curves(f)
    for i, (strategy, curve) in enumerate(curves.items()):
        xs = sorted(curve)
        mean, half = [curve[x][0] for x in xs], [curve[x][1] for x in xs]
        c = STRATEGY_COLOURS.get(strategy, OTHER_COLOURS[i % len(OTHER_COLOURS)])
        pooled = strategy.endswith("pooled")
        ax.plot(xs, mean, marker="o", ms=3, label=STRATEGY_NAMES.get(strategy, strategy), color=c,
                lw=2.0 if pooled else 1.0, ls="-" if pooled else "--")
        if strategy in ("uniform_pooled", "adaptive_pooled"):  # the two the factor is read from
            ax.fill_between(xs, [m - h for m, h in zip(mean, half)], [m + h for m, h in zip(mean, half)], color=c, alpha=0.12)
    means = {k: monotone({r: v[0] for r, v in c.items()}) for k, c in curves.items()}  # what the factor reads
    if "uniform_pooled" in means and REFERENCE_RATE in means["uniform_pooled"]:
        target = means["uniform_pooled"][REFERENCE_RATE]
        ax.axhline(target, color="grey", lw=0.8, ls=":")
        factor = reduction_factor(means["uniform_pooled"], means.get("adaptive_pooled", {}))
        if factor:  # from uniform's reference rate to the rate at which adaptive reaches its CIDEr
            rate = REFERENCE_RATE / factor
            ax.annotate("", xy=(rate, target), xytext=(REFERENCE_RATE, target),
                        arrowprops={"arrowstyle": "->", "color": "#1f5fa8", "lw": 1.4})
            ax.plot([rate, REFERENCE_RATE], [target, target], ls="none", marker="|", ms=10, color="#1f5fa8")
            ax.text((rate * REFERENCE_RATE) ** 0.5, target, f"{factor_words(factor)}\n", ha="center",
                    va="bottom", fontsize=8, color="#1f5fa8")
    ax.set_title(f"Selective decoding ({sweep}): adaptive vs uniform", fontsize=9)
    ax.set_xscale("log")
    _ticks_at(ax, sorted({x for curve in curves.values() for x in curve}), label="{:g}".format, fontsize=7)
    ax.set_xlabel("decodes per second")
    ax.set_ylabel("CIDEr")
    legend_outside(fig, [ax], fontsize=7)
    return save(fig, out, figure_name(sweep, "selective_decoding"))


SEED_LINE = {"lw": 1.1, "alpha": 0.8}  # each seed: thin, in the condition's colour, readable where it strays
MEAN_LINE = {"lw": 1.8}  # their mean: thicker, a darker shade of that colour on top (the seeds of the tiny
# preset agree closely: a mean in the seeds' own colour hid them)


def _darker(c: str, k: float = 0.45) -> tuple[float, float, float]:
    """c mixed with black (k: the share of black): the mean stands out from its seeds yet keeps their hue."""
    return tuple((1 - k) * v for v in matplotlib.colors.to_rgb(c))


def _loss_panel(ax, g: pd.DataFrame, c: str, title: str) -> None:
    """One condition's training loss: each seed a thin line, their mean a thick, darker one."""
    for _, gs in g.groupby("seed"):
        ax.plot(gs["samples_seen"], gs["loss"], color=c, **SEED_LINE)
    mean = g.groupby("samples_seen")["loss"].mean()
    ax.plot(mean.index, mean.values, color=_darker(c), **MEAN_LINE)
    ax.set_title(_tick(title, 48), fontsize=8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))  # 30k, not 30000 run into its neighbours
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: _human(v)))
    ax.set_xlabel("samples seen")
    ax.set_ylabel("training loss")


def _line_key(fig) -> None:
    """The figure's legend: what a thin and a thick line are (in grey: each panel has its own colour)."""
    handles = [matplotlib.lines.Line2D([], [], color="#8a8a8a", **SEED_LINE),
               matplotlib.lines.Line2D([], [], color=_darker("#8a8a8a"), **MEAN_LINE)]
    fig.legend(handles, ["each seed", "mean over seeds"], loc="outside right upper", frameon=False, fontsize=8)


def training_loss(curves: pd.DataFrame, sweep: str, out: Path, labels: dict[str, str] | None = None,
                  colours: dict[str, str] | None = None) -> list[Path]:
    """The training loss against samples seen, one panel per condition (losses of different kinds do not
    share a scale) in the sweep's order, titled by the condition's readable label, in the colour the
    sweep's other figures give it (labels: condition -> label, colours: label -> colour; both
    analysis/figstyle.py, derived from the curves' own columns where not given)."""
    given = labels or {}
    labels = {**given, **{c: n for c, n in condition_labels(curves).items() if c not in given}}
    present = set(curves["condition"])
    conditions = [c for c in labels if c in present]
    colours = {**palette(labels.values()), **(colours or {})}
    cols = min(len(conditions), 3)
    rows = -(-len(conditions) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.2, 2.4 * rows), squeeze=False, layout="constrained")
    for k, condition in enumerate(conditions):
        label = labels[condition]
        _loss_panel(axes[k // cols][k % cols], curves[curves["condition"] == condition], colours[label], label)
    for k in range(len(conditions), rows * cols):
        axes[k // cols][k % cols].axis("off")
    _line_key(fig)
    return save(fig, out, figure_name(sweep, "training"))
