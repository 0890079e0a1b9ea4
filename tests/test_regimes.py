"""Market regimes in every evaluation (issue 23, item 1): thresholds from the training split only, the bucket of a
value, the execution_by_regime table re-derived by hand, and the table, figure and labels an evaluation writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hyperdapo.data.assets import load_asset
from hyperdapo.data.venues import Instrument, load_venue
from hyperdapo.evaluation.config import RegimeConfig
from hyperdapo.evaluation.regimes import Regime, buckets_with_tests, fit_regimes, regime_table, regime_values
from hyperdapo.evaluation.tables import display_frame
from tests.pipeline_helpers import fast, run_config

BTC = Instrument(load_venue("hyperliquid"), load_asset("BTC"))  # tick 1 USD at 42,000 USD
SPLIT = np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 4)


def rows(vol: list[float], ticks: list[float], momentum: list[float], intensity: list[float]) -> list[dict]:
    return [{"mid_usd": 42_000.5, "best_bid_usd": 42_000.0, "best_ask_usd": 42_000.0 + t, "volatility_5m_bps": v,
             "momentum_15m_bps": m, "trade_intensity_per_min": i}
            for v, t, m, i in zip(vol, ticks, momentum, intensity, strict=True)]


VOL = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 9.0, 9.0, 0.1, 0.5, 0.9, 5.0]
TICKS = [1, 1, 1, 1, 2, 3, 7, 7, 1, 1, 2, 8]
MOMENTUM = [-30.0, 5.0, -1.0, 12.0, 20.0, -2.0, 99.0, 99.0, -40.0, 0.0, 3.0, 7.0]
INTENSITY = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 1e3, 1e3, 5.0, 25.0, 45.0, 90.0]


def test_thresholds_come_from_the_training_split_only():
    fitted = fit_regimes(regime_values(rows(VOL, TICKS, MOMENTUM, INTENSITY), BTC), SPLIT, [1 / 3, 2 / 3])
    by_name = {r.name: r for r in fitted}
    # terciles of the six training values, by numpy's linear interpolation: 0.2..1.2 -> 0.5333, 0.8667
    assert by_name["volatility"].edges == pytest.approx(np.quantile(VOL[:6], [1 / 3, 2 / 3]))
    assert by_name["trend"].edges == pytest.approx(np.quantile(np.abs(MOMENTUM[:6]), [1 / 3, 2 / 3]))
    assert by_name["spread"].edges == pytest.approx((1.0, 4 / 3))  # ticks: (ask - bid) / the 1 USD tick
    # validation and test values never move a threshold, whatever they are
    wild = [v * 100 + 7 for v in VOL]
    other = fit_regimes(regime_values(rows(VOL[:6] + wild[6:], TICKS[:6] + [50] * 6, MOMENTUM[:6] + [-500.0] * 6,
                                           INTENSITY[:6] + [0.0] * 6), BTC), SPLIT, [1 / 3, 2 / 3])
    assert other == fitted
    # a training value does
    moved = fit_regimes(regime_values(rows([5.0] + VOL[1:], TICKS, MOMENTUM, INTENSITY), BTC), SPLIT, [1 / 3, 2 / 3])
    assert {r.name: r for r in moved}["volatility"].edges != by_name["volatility"].edges


def test_buckets_cut_points_ties_and_missing_values():
    r = Regime("volatility", "bps", (0.5, 1.0))
    assert r.buckets == ("low", "mid", "high") and r.ranges() == ("<= 0.5", "(0.5, 1]", "> 1")
    assert r.label(np.array([0.5, 0.50001, 1.0, 1.5, math.nan])).tolist() == [0, 1, 1, 2, -1]
    # a one-tick spread on most training decisions: the tied terciles merge into two buckets
    spread = fit_regimes({"spread": np.array([1.0, 1, 1, 1, 2, 1])}, np.array(["train"] * 6), [1 / 3, 2 / 3])[0]
    assert spread.edges == (1.0,) and spread.buckets == ("low", "high")
    # no trades in the data: every training intensity is NaN, the dimension is left out
    assert fit_regimes({"trade intensity": np.full(3, math.nan)}, np.array(["train"] * 3), [0.5]) == []
    with pytest.raises(ValueError, match="evaluate.regimes.quantiles"):
        RegimeConfig(quantiles=[0.7, 0.3])


def test_regime_table_by_hand():
    rng = np.random.default_rng(4)
    n = 40
    is_bps = {"llm": rng.normal(1.0, 3.0, n), "moderate": rng.normal(2.0, 3.0, n), "market": rng.normal(4.5, 1.0, n)}
    vol = Regime("volatility", "bps", (0.5, 1.0))
    spread = Regime("spread", "ticks", (1.0,))
    labels = {"volatility": np.repeat([0, 1, 2, -1], 10), "spread": np.r_[np.zeros(39, int), 1]}
    table = regime_table([vol, spread], labels, is_bps, "moderate", ["llm"], seed=0)
    assert table[["Regime", "Bucket", "n decisions"]].values.tolist() == [
        ["volatility [bps]", "low", 10], ["volatility [bps]", "mid", 10], ["volatility [bps]", "high", 10],
        ["spread [ticks]", "low", 39], ["spread [ticks]", "high", 1]]
    # the 'mid' volatility bucket: decisions 10..19; four buckets have >= 2 decisions, so m = 4 tests
    assert len(buckets_with_tests([vol, spread], labels)) == 4
    mid = table.iloc[1]
    sl = slice(10, 20)
    assert mid["IS market [bps]"] == pytest.approx(is_bps["market"][sl].mean())
    assert mid["IS llm [bps]"] == pytest.approx(is_bps["llm"][sl].mean())
    d = is_bps["llm"][sl] - is_bps["moderate"][sl]
    assert mid["llm - moderate [bps]"] == pytest.approx(d.mean())
    assert mid["p (t, Bonf.) llm"] == pytest.approx(min(1.0, 4 * stats.ttest_rel(is_bps["llm"][sl],
                                                                                  is_bps["moderate"][sl]).pvalue))
    assert mid["p (W, Bonf.) llm"] == pytest.approx(min(1.0, 4 * stats.wilcoxon(d).pvalue))
    # a one-decision bucket has its means but no test; without a best baseline there is no test column at all
    assert table.iloc[4]["IS llm [bps]"] == is_bps["llm"][39] and math.isnan(table.iloc[4]["p (t, Bonf.) llm"])
    assert not any(c.startswith("p (") for c in regime_table([vol], labels, is_bps, None, ["llm"]).columns)
    # a policy equal to the best baseline in a bucket: its p-values read "identical", not 1.000 (issue 20 item 5)
    same = {**is_bps, "llm": np.where(labels["volatility"] == 0, is_bps["moderate"], is_bps["llm"])}
    shown = display_frame(regime_table([vol], labels, same, "moderate", ["llm"]))
    assert shown["p (t, Bonf.) llm"].tolist()[0] == "identical" != shown["p (t, Bonf.) llm"].tolist()[1]


@pytest.mark.slow  # runs a backtest (about 20 s)
def test_an_evaluation_writes_the_regime_table_figure_and_labels(tmp_path):
    """evaluate.py's run (baselines only, 4.8 synthetic hours): the table in md/tex/csv, the figure, per-decision
    buckets in decisions.parquet, and thresholds that are the training split's terciles."""
    from hyperdapo.pipeline.evaluate_run import run_evaluation
    from hyperdapo.pipeline.train_run import build_task

    cfg = run_config(fast(tmp_path, "evaluate.policy=none", "logger=none"), "evaluate")
    result = run_evaluation(cfg, tmp_path / "eval")
    for ext in ("md", "tex", "csv", "caption.txt"):
        assert (tmp_path / "eval" / "tables" / f"execution_by_regime.{ext}").exists()
    assert (tmp_path / "eval" / "figures" / "execution_by_regime.png").exists()
    table = pd.read_csv(tmp_path / "eval" / "tables" / "execution_by_regime.csv")
    decisions = pd.read_parquet(tmp_path / "eval" / "decisions.parquet")
    task = build_task(cfg)
    values = regime_values(task.features, task.instrument)
    train = task.split_index("train")
    assert result["regimes"]["volatility"]["edges"] == pytest.approx(
        np.quantile(values["volatility"][train], [1 / 3, 2 / 3]))
    # the 'low' volatility row is the mean over the test decisions labelled low in decisions.parquet
    low = decisions["regime_volatility"] == "low"
    row = table[(table["Regime"] == "volatility [bps]") & (table["Bucket"] == "low")].iloc[0]
    assert row["n decisions"] == low.sum() > 0
    assert row["IS market [bps]"] == pytest.approx(decisions.loc[low, "is_bps_market"].mean())
    assert "training split's decisions only" in (tmp_path / "eval" / "tables" / "execution_by_regime.md").read_text()
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["regimes"]["spread"]["fitted_on"] == "train"
