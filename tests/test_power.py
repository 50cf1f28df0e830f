"""The power of each paired comparison (analysis/power.py): the smallest detectable effect is the paired
t-test's, verdicts follow the interval, every committed comparison gets a table, and what the table says of its
own uncertainty: the p-value is the paired t-test's, Holm's adjustment runs over one experiment's rows, and the
smallest detectable effect carries the range its 2-degree-of-freedom SD allows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.power import holm, mde_range, minimum_detectable_effect, p_value, paired, power_markdown, sd_range

EXAMPLE = Path(__file__).resolve().parent.parent / "results" / "example"


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


def test_power_matches_the_paired_t_test_it_describes():
    """The minimum detectable effect is found 80% of the time by simulated paired t-tests; dz = 0.5 needs
    34 pairs (G*Power's paired t-test, two-sided, alpha 0.05, power 0.8)."""
    from scipy import stats

    from analysis.power import minimum_detectable_effect, power, seeds_needed

    mde = minimum_detectable_effect(1.0, 10)
    x = np.random.default_rng(0).normal(mde, 1.0, (200_000, 10))
    t = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(10))
    assert (np.abs(t) > stats.t.ppf(0.975, 9)).mean() == pytest.approx(0.80, abs=0.005)
    assert seeds_needed(0.5, 1.0) == 34 and seeds_needed(mde, 1.0) == 10
    assert power(0.0, 1.0, 10) == pytest.approx(0.05, abs=1e-6)  # no effect: the test's own error rate
    assert seeds_needed(0.001, 1.0) is None  # beyond any affordable number of seeds


def test_two_seeds_give_a_smallest_detectable_effect_that_simulated_tests_find_80_percent_of_the_time():
    """At one degree of freedom scipy's noncentral t returns NaN for the far tail at some effects (nc 15): the
    search must still end, at the effect a simulation confirms."""
    from scipy import stats

    from analysis.power import minimum_detectable_effect, power

    assert power(15 / np.sqrt(2), 1.0, 2) == pytest.approx(0.7608, abs=1e-4)
    mde = minimum_detectable_effect(1.0, 2)
    x = np.random.default_rng(1).normal(mde, 1.0, (400_000, 2))
    t = x.mean(1) / (x.std(1, ddof=1) / np.sqrt(2))
    assert (np.abs(t) > stats.t.ppf(0.975, 1)).mean() == pytest.approx(0.80, abs=0.005)


def test_paired_verdicts_follow_the_interval_and_the_papers_direction():
    from analysis.power import paired

    up = pd.Series([2.0, 2.5, 3.0, 2.2])
    assert paired(up, paper_effect=1.0)["verdict"] == "reproduced"
    assert paired(up, paper_effect=-1.0)["verdict"] == "contradicted"
    assert paired(pd.Series([2.0, -2.5, 3.0, -2.2]), paper_effect=1.0)["verdict"] == "unresolved"
    # three seeds equal to the item (a discrete metric): an interval of width 0 is no precision
    assert paired(pd.Series([1.5, 1.5, 1.5]), paper_effect=-1.9)["verdict"] == "unresolved"
    row = paired(up, paper_effect=1.0)
    assert row["n"] == 4 and row["sd"] == pytest.approx(up.std()) and row["mde"] > 0 and row["seeds_needed"] >= 2


def test_report_has_a_power_table_for_every_committed_paired_comparison(tmp_path):
    from analysis.report import build

    page = build(EXAMPLE, tmp_path).read_text()
    for sweep in ("jepa_vs_vlm", "loss", "attention", "y_lr"):
        section = page.split(f"## {sweep}\n")[1].split("\n## ")[0]
        assert "| comparison | metric | seeds |" in section, sweep
    assert "seeds for the paper's Δ" in page


def test_power_rows_show_the_evaluation_noise_beside_the_seed_noise():
    from analysis.power import ablation_power, power_markdown
    from analysis.tables import ablation_table

    rows = [{"sweep": "a", "order": i, "setting_key": setting, "seed": seed, "samples_seen": 64, "budget": 64,
             "task": "vqa", "metric": "accuracy", "value": 50.0 + seed + 5 * i, "chance": 24.5, "prior": 30.0,
             "se": 3.0 if setting == "x" else 4.0, "run_id": f"{setting}{seed}"}
            for i, setting in enumerate(["x", "y"]) for seed in (0, 1, 2)]
    (row,) = [r for r in ablation_power(ablation_table(pd.DataFrame(rows), "a", "setting_key")) if r["metric"] == "VQA"]
    assert row["eval_se"] == pytest.approx(5.0)  # sqrt(3^2 + 4^2): items alone, each run's own mean over them
    assert "| of which evaluation (SE) |" in power_markdown([{**row, "comparison": "y - x", "metric": "VQA"}])
