"""Reading rate-quality curves: how many fewer decodes reach a reference quality. Pure Python, shared by
the streaming task (per evaluation) and the report (on seed-averaged curves); it lives in bench/ because
a task needs it, and analysis/ imports it from here (bench never imports analysis)."""

from __future__ import annotations

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
