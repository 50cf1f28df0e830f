"""What every figure of the report shares, so that the figures of one sweep agree with each other: the names
things are shown by (a model's display name, a condition's readable label, a metric's title), one colour per
label for the whole sweep, the wording of a decode-reduction factor, and legends placed off the data.

A reader compares the bars of an ablation with the panels of its training curves by colour and by name; a
colour picked per figure (by position among what that figure happens to draw) or a raw `key=value` title
breaks that comparison, so both are decided here once, from the sweep's own order of its conditions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import cycle

import matplotlib.ticker
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.tables import ABLATION_COLUMNS, CAPTION_COLUMNS, setting_label

MODEL_COLOURS = {"vljepa": "#1f5fa8", "vlm": "#c4432b"}
OTHER_COLOURS = ["#2a9d5c", "#8a4fbf", "#d18f1d", "#5a5a5a", "#17a2b8", "#b5487d"]
DISPLAY_NAMES = {"vljepa": "VL-JEPA", "vlm": "VLM"}  # the records' model names as the paper writes them
_MODEL_OF = {**{m: m for m in MODEL_COLOURS}, **{d: m for m, d in DISPLAY_NAMES.items()}}

# (task, metric) -> (panel title, y label): a panel names what it measures, not the table's column abbreviation
METRIC_NAMES = {("classification", "top1"): ("Classification top-1 (%)", "top-1 accuracy (%)"),
                ("classification", "top5"): ("Classification top-5 (%)", "top-5 accuracy (%)"),
                ("retrieval", "t2v_R@1"): ("Retrieval text-to-video R@1 (%)", "R@1 (%)"),
                ("vqa", "accuracy"): ("VQA accuracy (%)", "accuracy (%)"),
                ("captioning", "CIDEr"): ("Captioning CIDEr", "CIDEr"),
                ("captioning", "CIDEr_decoder_ceiling"): ("CIDEr, decoder ceiling", "CIDEr"),
                ("captioning", "CIDEr_nearest_caption"): ("CIDEr, nearest training caption", "CIDEr")}
# an ablation table's column label -> its (task, metric) (analysis/tables.py)
COLUMN_METRICS = {label: (task, metric) for label, task, metric, _ in ABLATION_COLUMNS + CAPTION_COLUMNS}
_KEY = re.compile(r"[A-Za-z_][\w.]*")  # a config key as a condition spells it (model.loss.name)


def display_name(name: str) -> str:
    """A model's name as a reader knows it (VL-JEPA, VLM); anything else unchanged."""
    return DISPLAY_NAMES.get(name, name)


def palette(labels: Iterable[str]) -> dict[str, str]:
    """label -> colour, assigned in the order given (the sweep's order of its conditions): a model keeps its
    own colour wherever it appears; every other label takes the next colour of OTHER_COLOURS. The same
    labels in the same order always give the same colours, so every figure of a sweep that asks with the
    sweep's labels colours a condition alike, whatever subset of the conditions that figure draws."""
    colours: dict[str, str] = {}
    others = cycle(OTHER_COLOURS)
    for label in labels:
        if label not in colours:
            model = _MODEL_OF.get(label)
            colours[label] = MODEL_COLOURS[model] if model else next(others)
    return colours


def readable(condition: str) -> str:
    """A condition as a title: the values of its `key=value` pairs joined by ' · ' (the keys are the sweep's,
    said once in the caption), models by their display names; a condition without keys unchanged."""
    parts = re.split(r",\s*(?=[A-Za-z_][\w.]*=)", condition)
    values = []
    for part in parts:
        key, sep, value = part.partition("=")
        values.append(display_name(value) if sep and _KEY.fullmatch(key) else part)
    return " · ".join(values)


def condition_labels(frame: pd.DataFrame, key: str | None = None) -> dict[str, str]:
    """condition -> its readable label, in the sweep's order (the frame's 'order' column, from the sweep
    record): an ablation's setting as its table names it (the value of `key`), a comparison's model by its
    display name, else the sweep file's label made readable."""
    rows = frame.dropna(subset=["condition"])
    rows = rows.sort_values("order", kind="stable") if "order" in rows else rows
    rows = rows.drop_duplicates("condition")
    if key and key in rows:
        return {c: str(setting_label(v)) for c, v in zip(rows["condition"], rows[key])}
    if "model" in rows and len(rows) > 1 and rows["model"].nunique() == len(rows):
        return {c: display_name(str(m)) for c, m in zip(rows["condition"], rows["model"])}
    names = rows["label"] if "label" in rows else rows["condition"]
    return {c: readable(n if isinstance(n, str) else c) for c, n in zip(rows["condition"], names)}


def metric_names(task: str, metric: str, fallback: str) -> tuple[str, str]:
    """(panel title, y label) of a metric; fallback for both where the metric has no name here."""
    return METRIC_NAMES.get((task, metric), (fallback, fallback))


def column_names(label: str) -> tuple[str, str]:
    """(panel title, y label) of an ablation table's column (Class., Retr., VQA, CIDEr ...)."""
    return metric_names(*COLUMN_METRICS[label], label) if label in COLUMN_METRICS else (label, label)


def factor_words(factor: float) -> str:
    """A decode-reduction factor in words that stay true below one: 2.85 is '2.85x fewer decodes', but 0.55
    is not 'fewer': adaptive then needs 1/0.55 = 1.82x more decodes than uniform to reach the same CIDEr."""
    if round(factor, 2) == 1:
        return f"as many decodes ({factor:.2f}x)"
    if factor > 1:
        return f"{factor:.2f}x fewer decodes"
    return f"{1 / factor:.2f}x more decodes (factor {factor:.2f}x)"


def legend_outside(fig: Figure, axes: Sequence[Axes], **kwargs) -> None:
    """One legend for the whole figure, right of its panels (the figure uses the constrained layout, which
    makes room for it), so that no legend ever sits on a bar or a curve; entries of the same label in
    several panels appear once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside right upper", frameon=False,
                   fontsize=kwargs.pop("fontsize", 8), **kwargs)


def log_ticks(ax: Axes, formatter: Callable[[float], str]) -> None:
    """Labelled ticks on a log x axis that spans little more than a decade (training FLOPs: one decade gives
    one labelled tick by default, which says nothing of the scale): 1-2-5 within each decade, finer under a
    decade, decades only when the range is wide; the rest unlabelled minor ticks."""
    lo, hi = ax.get_xlim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0) if decades > 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: formatter(v)))
    ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs="auto"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
