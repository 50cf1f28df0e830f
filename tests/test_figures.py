"""The report's figures read as a reader expects: a condition keeps one colour and one readable name across the
figures of its sweep, panels come in the sweep's order and name their metric, legends sit off the data and
name the models as the paper does, log axes carry labelled ticks, and a decode-reduction factor below one is
not called "fewer decodes".

The figures are drawn by the report itself (analysis.report.sweep_section on the committed records of
results/example), with analysis.figures.save replaced by one that keeps the matplotlib Figure: what is
checked is what the report draws, read back from the Figure objects."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.colors
import pandas as pd
import pytest

from analysis import figures
from analysis.records import metrics, runs, training_curves
from analysis.report import Store, sweep_records, sweep_section

EXAMPLE = Path(__file__).resolve().parent.parent / "results" / "example"
RAW = re.compile(r"[A-Za-z_][\w.]*=")  # a config key as a condition spells it: model.loss.name=


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store(EXAMPLE, tmp_path_factory.mktemp("report"), metrics(EXAMPLE), runs(EXAMPLE), training_curves(EXAMPLE))


@pytest.fixture(scope="module")
def drawn(store):
    """sweep name -> {figure stem -> Figure}, each sweep drawn once by the report's own section code."""
    cache: dict[str, dict] = {}

    def draw(name: str) -> dict:
        if name not in cache:
            cache[name] = _draw(store, name)
        return cache[name]
    return draw


def _draw(store: Store, name: str) -> dict:
    kept = {}

    def keep(fig, out, stem):
        kept[stem] = fig
        return [out / f"{stem}.png", out / f"{stem}.pdf"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save", keep)
        record = next(r for r in sweep_records(EXAMPLE) if r["name"] == name)
        sweep_section(store, record)
    return kept


def _hex(c) -> str:
    return matplotlib.colors.to_hex(c)


def _panels(fig) -> list:
    """The figure's panels in reading order (matplotlib keeps them in the order they were made: row by row),
    without the ones switched off to fill a grid."""
    return [ax for ax in fig.axes if ax.axison]


def _bar_colours(fig) -> dict[str, str]:
    """setting -> its bar's colour, in every panel of an ablation chart (the panels must agree)."""
    colours: dict[str, str] = {}
    for ax in _panels(fig):
        for tick, bar in zip(ax.get_xticklabels(), ax.patches):
            assert colours.setdefault(tick.get_text(), _hex(bar.get_facecolor())) == _hex(bar.get_facecolor())
    return colours


def _line_colours(fig) -> dict[str, str]:
    """panel title -> the colour of its per-seed lines (the first lines drawn in a training panel)."""
    return {ax.get_title(): _hex(ax.get_lines()[0].get_color()) for ax in _panels(fig)}


def _sweep_order(name: str, key: str) -> list[str]:
    """The sweep's settings of key, in the order its record lists its runs (the grid's order)."""
    record = next(r for r in sweep_records(EXAMPLE) if r["name"] == name)
    return list(dict.fromkeys(str(r.get("label") or r["point"][key]) for r in record["runs"]))


def _texts(fig) -> list[str]:
    """Every panel title and legend entry of a figure, whether the legend is a panel's or the figure's."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [ax.get_title() for ax in fig.axes] + [t.get_text() for lg in legends for t in lg.get_texts()]


def test_a_setting_has_one_colour_in_every_figure_of_its_sweep(drawn):
    figs = drawn("loss")
    bars, lines = _bar_colours(figs["loss_ablation"]), _line_colours(figs["loss_training"])
    assert set(bars) == set(lines) == {"infonce", "cosine", "l1", "l2", "vicreg", "sigreg"}
    assert bars == lines  # infonce was green in one and orange in the other
    assert len(set(bars.values())) == len(bars)  # and the colours tell the settings apart


def test_training_panels_follow_the_sweeps_order_under_readable_titles(drawn):
    assert [ax.get_title() for ax in _panels(drawn("loss")["loss_training"])] == \
        _sweep_order("loss", "model.loss.name") == ["infonce", "cosine", "l1", "l2", "vicreg", "sigreg"]
    y_encoder = [ax.get_title() for ax in _panels(drawn("y_encoder")["y_encoder_training"])]
    assert y_encoder == _sweep_order("y_encoder", "") == ["MiniLM-L6", "MiniLM-L4", "MiniLM-L2", "random BERT-L6"]
    assert [ax.get_title() for ax in _panels(drawn("jepa_vs_vlm")["jepa_vs_vlm_training"])] == ["VL-JEPA", "VLM"]


@pytest.mark.parametrize("name", ["loss", "pretraining", "y_encoder", "jepa_vs_vlm", "selective"])
def test_no_title_or_legend_reads_as_a_raw_key_value(drawn, name):
    for stem, fig in drawn(name).items():
        raw = [t for t in _texts(fig) if RAW.search(t)]
        assert not raw, f"{stem}: {raw}"


def test_ablation_panels_name_their_metric(drawn):
    panels = _panels(drawn("loss")["loss_ablation"])
    titles = [ax.get_title() for ax in panels]
    for title, words in zip(titles, (("Classification", "top-1"), ("Retrieval", "R@1"), ("VQA", "accuracy"))):
        assert all(w in title for w in words), titles
    assert all("dotted" not in ax.get_ylabel() and ax.get_ylabel() != "%" for ax in panels)
    decoder = [ax.get_title() for ax in _panels(drawn("decoder")["decoder_ablation"])]
    assert all("CIDEr" in t for t in decoder), decoder


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("name", ["loss", "jepa_vs_vlm", "selective"])
def test_legends_never_sit_on_a_panel(drawn, name):
    for stem, fig in drawn(name).items():
        fig.canvas.draw()
        assert not [ax for ax in fig.axes if ax.get_legend()], f"{stem}: a legend inside a panel"
        renderer = fig.canvas.get_renderer()
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert not any(_overlaps(box, ax.get_window_extent(renderer)) for ax in _panels(fig)), stem
    assert drawn("loss")["loss_ablation"].legends, "the paper's diamonds and chance's line need a legend"


def test_comparison_legends_name_the_models_as_the_paper_does(drawn):
    texts = [t for t in _texts(drawn("jepa_vs_vlm")["jepa_vs_vlm_sample_efficiency"]) if t]
    assert {"VL-JEPA", "VLM", "VL-JEPA, paper", "VLM, paper"} <= set(texts)
    assert not [t for t in texts if re.search(r"\bvljepa\b|\bvlm\b", t)], texts


def _labelled_ticks(ax) -> list[str]:
    """The labels of the major x ticks inside the panel's view, as its formatter writes them."""
    lo, hi = ax.get_xlim()
    locs = [v for v in ax.xaxis.get_major_locator()() if lo <= v <= hi]
    fmt = ax.xaxis.get_major_formatter()
    fmt.set_locs(locs)
    return [fmt(v, i) for i, v in enumerate(locs) if fmt(v, i)]


def test_training_flops_axes_carry_more_than_one_labelled_tick(drawn):
    fig = drawn("jepa_vs_vlm")["jepa_vs_vlm_sample_efficiency"]
    flops = [ax for ax in fig.axes if ax.get_xlabel() == "training FLOPs"]
    assert flops
    for ax in flops:
        assert len(_labelled_ticks(ax)) >= 2, _labelled_ticks(ax)


def _streams(adaptive: dict[float, float]) -> pd.DataFrame:
    """Streaming records of one run: uniform decoding reaching CIDEr 20 at 1 Hz, adaptive as given."""
    uniform = {0.5: 10.0, 1.0: 20.0, 2.0: 30.0}
    base = {"sweep": "sel", "task": "streaming", "seed": 0, "run_id": "r0", "samples_seen": 64}
    return pd.DataFrame([{**base, "metric": f"CIDEr_{strategy}", "rate_hz": r, "value": v}
                         for strategy, curve in (("uniform_pooled", uniform), ("adaptive_pooled", adaptive))
                         for r, v in curve.items()])


@pytest.mark.parametrize("adaptive, words, wrong", [
    ({0.5: 20.0, 1.0: 30.0, 2.0: 40.0}, "2.00x fewer decodes", "more decodes"),  # reaches 20 at 0.5 Hz: factor 2
    ({0.5: 5.0, 1.0: 15.0, 2.0: 25.0}, "1.50x more decodes", "fewer decodes"),  # reaches 20 at 1.5 Hz: factor 0.67
])
def test_a_factor_says_fewer_decodes_above_one_and_more_below(monkeypatch, tmp_path, adaptive, words, wrong):
    frame = _streams(adaptive)
    caption = figures.selective_factor(frame, short=True)
    assert words in caption and wrong not in caption
    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, out, stem: kept.append(fig) or [])
    figures.selective_decoding(frame, "sel", tmp_path)
    texts = " ".join(t.get_text() for ax in kept[0].axes for t in ax.texts)
    assert words in texts and wrong not in texts
