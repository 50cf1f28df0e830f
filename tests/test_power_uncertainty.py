"""What the power table says about its own uncertainty: the p-value is the paired t-test's, Holm's adjustment
runs over one experiment's rows, and the smallest detectable effect carries the range its 2-degree-of-freedom
SD allows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.power import holm, mde_range, minimum_detectable_effect, p_value, paired, power_markdown, sd_range


def test_p_value_is_scipys_paired_t_test():
    d = np.array([1.3, -0.2, 0.8, 2.1, 0.4])
    expected = stats.ttest_1samp(d, 0.0).pvalue
    assert p_value(d.mean(), d.std(ddof=1), len(d)) == pytest.approx(expected, rel=1e-12)
    assert paired(pd.Series(d))["p"] == pytest.approx(expected, rel=1e-12)


def test_holm_on_a_hand_worked_example():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06 (min(1, 1 x 0.04) < running max)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped
    out = holm([float("nan"), 0.01])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.01)  # a row without a test does not count in m


def test_sd_range_is_the_chi_square_interval_and_covers_the_true_sd_95_percent_of_the_time():
    lo, hi = sd_range(1.0, 3)
    assert (lo, hi) == pytest.approx((math.sqrt(2 / stats.chi2.ppf(0.975, 2)), math.sqrt(2 / stats.chi2.ppf(0.025, 2))))
    rng = np.random.default_rng(0)
    sds = rng.normal(0.0, 2.0, size=(20_000, 3)).std(axis=1, ddof=1)
    covered = np.mean([a <= 2.0 <= b for a, b in (sd_range(s, 3) for s in sds)])
    assert covered == pytest.approx(0.95, abs=0.01)


def test_mde_range_at_three_seeds_spans_half_to_six_times_the_mde():
    # the audit's reading of (c): an mde of 0.9 from 3 seeds could be anything from ~0.5 to ~5.6
    sd = 0.9 / minimum_detectable_effect(1.0, 3)  # the SD whose mde at 3 seeds is 0.9
    lo, hi = mde_range(sd, 3)
    assert lo == pytest.approx(0.47, abs=0.01) and hi == pytest.approx(5.65, abs=0.02)


def test_a_verdict_that_does_not_survive_holm_says_so():
    rows = [{"comparison": c, "metric": "m", **paired(pd.Series(d), paper_effect=1.0)}
            for c, d in (("strong", [5.0, 5.2, 4.9]), ("weak", [1.0, 1.3, 0.7]), ("none", [0.5, -0.5, 0.1]))]
    assert [r["verdict"] for r in rows] == ["reproduced", "reproduced", "unresolved"]
    table = power_markdown(rows)
    strong, weak, none = (line for line in table.splitlines() if line.startswith(("| strong", "| weak", "| none")))
    assert strong.endswith("| reproduced |")
    assert weak.endswith("| reproduced, not after Holm |")  # p 0.029 alone, 0.058 as the 2nd of 3
    assert none.endswith("| unresolved |")
    assert "Holm's adjustment runs over the 3 rows above" in table
