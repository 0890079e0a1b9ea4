"""Execution metrics on a hand-made case and the statistics cross-checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hyperdapo.evaluation.metrics import (
    MIN_SHARPE_DECISIONS,
    StrategyOutcomes,
    max_drawdown,
    sharpe_per_decision,
    strategy_metrics,
    win_rate,
)
from hyperdapo.evaluation.stats import mean_ci, paired_tests

MID, QTY = 100.0, 2.0


def hand_case() -> StrategyOutcomes:
    """Three buys at mid 100: (0) filled at 99.9 after 30 s, adverse 1 bp; (1) filled at 100.05 after 90 s,
    adverse -2 bps; (2) unfilled, cleaned up at 100.2. Targets: 99.9, 100.0, 99.8. Fees in IS."""
    return StrategyOutcomes(
        name="x", side=np.ones(3), arrival_mid=np.full(3, MID), qty=np.full(3, QTY),
        fill_share=np.array([1.0, 1.0, 0.0]), time_to_fill_s=np.array([30.0, 90.0, np.nan]),
        exec_price=np.array([99.9, 100.05, 100.2]), target_price=np.array([99.9, 100.0, 99.8]),
        is_bps=np.array([-10 + 1.5, 5 + 1.5, 20 + 4.5]),
        price_improvement_bps=np.array([10.0, -5.0, np.nan]), adverse_selection_bps=np.array([1.0, -2.0, np.nan]),
        depth_short=np.array([False, False, True]),
    )


def test_metrics_by_hand():
    m = strategy_metrics(hand_case(), decisions_per_day=3)
    assert m["Fill rate [%]"] == pytest.approx(100 * 2 / 3)
    assert m["IS [bps]"] == pytest.approx((-8.5 + 6.5 + 24.5) / 3)
    # slippage |exec - target| / target of the executed price: the limit for a limit fill (0, 0.05 / 100), the
    # arrival mid for the cleaned-up decision (its limit 99.8 never traded: 0.2 / 100), in bps
    assert m["Slippage [bps]"] == pytest.approx((0 + 5 + 20) / 3)
    assert m["Price improvement [%]"] == pytest.approx(50.0)  # one of the two fills beat the mid
    assert m["Time to fill [s]"] == pytest.approx(60.0)
    assert m["Adverse selection [bps]"] == pytest.approx(-0.5)
    assert m["Depth-short"] == 1  # the cleanup went beyond the visible book
    # pnl = -IS/1e4 * 100 * 2 = -IS * 0.02 USD: 0.17, -0.13, -0.49
    pnl = np.array([0.17, -0.13, -0.49])
    assert m["PnL [USD]"] == pytest.approx(pnl.sum())
    assert m["Max drawdown [USD]"] == pytest.approx(0.13 + 0.49)  # peak 0.17 -> trough -0.45
    assert math.isnan(m["Sharpe per decision"]) and math.isnan(m["Sharpe annualised"])  # 3 decisions: too few
    assert (m["Decisions"], m["Filled"], m["Cleanups"]) == (3, 2, 1)


def test_drawdown_and_sharpe_edge_cases():
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert max_drawdown(np.array([-1.0, -1.0])) == 2.0
    assert math.isnan(sharpe_per_decision(np.ones(MIN_SHARPE_DECISIONS)))  # no spread: undefined


def test_sharpe_is_per_decision_and_blank_below_the_minimum_sample():
    # 18 decisions (the case) of a steady saver: no Sharpe at all, not an annualised one in the thousands
    steady = np.tile([1.0, 1.2], 9)
    assert math.isnan(sharpe_per_decision(steady)) and MIN_SHARPE_DECISIONS == 30
    # 30 decisions alternating 1 and 3 USD: mean 2, sd (ddof 1) sqrt(30 / 29), per decision 2 / sqrt(30 / 29)
    pnl = np.tile([1.0, 3.0], 15)
    per_decision = 2 / math.sqrt(30 / 29)
    assert sharpe_per_decision(pnl) == pytest.approx(per_decision)
    outcomes = StrategyOutcomes(
        name="x", side=np.ones(30), arrival_mid=np.full(30, 100.0), qty=np.ones(30), fill_share=np.ones(30),
        time_to_fill_s=np.ones(30), exec_price=np.full(30, 100.0), target_price=np.full(30, 100.0),
        is_bps=-pnl * 1e4 / 100, price_improvement_bps=np.zeros(30), adverse_selection_bps=np.zeros(30),
        depth_short=np.zeros(30, dtype=bool))
    m = strategy_metrics(outcomes, decisions_per_day=1440)  # a decision a minute
    assert m["Sharpe per decision"] == pytest.approx(per_decision)
    # annualised honestly: 365 days x the decisions made a day, i.e. x sqrt(525,600) ~ 725
    assert m["Sharpe annualised"] == pytest.approx(per_decision * math.sqrt(365 * 1440))
    assert "Sharpe" not in m  # the old key (annualised, shown in the table) is gone


def test_paired_tests_match_scipy_and_bonferroni():
    rng = np.random.default_rng(0)
    cand = rng.normal(0, 1, 200)
    base = {"a": cand + rng.normal(0.5, 1, 200), "b": cand + rng.normal(0.0, 1, 200)}
    res = paired_tests(base, cand, seed=1)
    for name, b in base.items():
        d = b - cand
        t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))  # the paired t statistic by hand
        assert res[name]["t_p"] == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
        assert res[name]["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
        assert res[name]["t_p_bonf"] == pytest.approx(min(1, 2 * res[name]["t_p"]))
        assert res[name]["ci_low"] < d.mean() < res[name]["ci_high"]
    assert res["a"]["t_p"] < 1e-6 and res["b"]["t_p"] > 0.01
    assert paired_tests({"same": cand}, cand)["same"]["wilcoxon_p"] == 1.0


def test_win_rate_counts_strict_wins_only():
    # IS 1 < 2 (win), 2 = 2 (tie: no win), 3 < 5 (win), 4 > 3 (loss)
    assert win_rate(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 5.0, 3.0])) == 50.0


def test_bonferroni_over_the_comparisons_made():
    rng = np.random.default_rng(2)
    cand = rng.normal(0, 1, 50)
    one = paired_tests({"a": cand + rng.normal(0.3, 1, 50)}, cand, n_comparisons=3)["a"]
    assert one["t_p_bonf"] == pytest.approx(min(1, 3 * one["t_p"]))
    assert one["wilcoxon_p_bonf"] == pytest.approx(min(1, 3 * one["wilcoxon_p"]))
    with pytest.raises(ValueError, match="n_comparisons=1"):
        paired_tests({"a": cand, "b": cand}, cand, n_comparisons=1)


def test_bootstrap_ci_covers_the_mean_and_is_seeded():
    x = np.random.default_rng(3).normal(2.0, 1.0, 2000)
    lo, hi = mean_ci(x, seed=5)
    assert lo < 2.0 < hi and hi - lo < 0.2
    assert mean_ci(x, seed=5) == (lo, hi)
