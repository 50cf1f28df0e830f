"""Reading rate-quality curves: how many fewer decodes reach a reference quality, and the mean quality
gained at matched rates. Shared by the streaming task (per evaluation) and the report (on seed-averaged
curves); it lives in bench/ because a task needs it, and analysis/ imports it from here (bench never
imports analysis).

A curve measured on finitely many streams wobbles: uniform decoding at 0.5 Hz can score above itself at
1 Hz by chance, and a factor read where two wobbling curves cross is mostly that chance (uniform against
itself then "saves" decodes too). So factors are read off monotone fits (isotonic regression: in
expectation more decodes never caption worse), and beside them goes the mean gap between the curves,
which averages over every rate instead of hanging on one crossing."""

from __future__ import annotations

import numpy as np

REFERENCE_RATE = 1.0  # Hz: the uniform decoding rate the reduction factor is measured against


def reduction_factor(uniform: dict[float, float], adaptive: dict[float, float], ref_rate: float = REFERENCE_RATE):
    """ref_rate / the lowest rate at which adaptive reaches uniform's CIDEr at ref_rate (linear
    interpolation between swept rates); None when adaptive never reaches it."""
    if ref_rate not in uniform:
        return None
    target = uniform[ref_rate]
    rates = sorted(adaptive)
    for lo, hi in zip(rates[:-1], rates[1:]):
        if adaptive[lo] >= target:
            return ref_rate / lo
        if adaptive[hi] >= target:
            frac = (target - adaptive[lo]) / (adaptive[hi] - adaptive[lo])
            return ref_rate / (lo + frac * (hi - lo))
    if rates and adaptive[rates[0]] >= target:
        return ref_rate / rates[0]
    return None


def monotone(curve: dict[float, float]) -> dict[float, float]:
    """The non-decreasing curve in rate closest to `curve` in least squares (isotonic regression)."""
    from sklearn.isotonic import IsotonicRegression

    rates = sorted(curve)
    fit = IsotonicRegression(increasing=True).fit_transform(rates, [curve[r] for r in rates])
    return {r: float(v) for r, v in zip(rates, fit)}


def mean_gap(lower: dict[float, float], upper: dict[float, float]) -> float:
    """upper - lower averaged over the rates both sweep, on a log-rate axis (the area between the curves
    divided by the span): how much better `upper` captions at matched decode rates, across all of them."""
    rates = sorted(set(lower) & set(upper))
    if len(rates) < 2:
        return float("nan")
    x, d = np.log(rates), np.array([upper[r] - lower[r] for r in rates])
    return float(((d[1:] + d[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))
