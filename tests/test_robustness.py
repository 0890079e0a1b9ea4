"""Robustness under the stress scenarios (issue 23 item 3, experiments/robustness.py): the one-off events land in the
test split, the table is IS(scenario) - IS(clean) on the same decisions with paired tests, and the script runs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.pipeline_helpers import REPO, run_config

sys.path.insert(0, str(REPO / "experiments"))
import robustness as rb  # noqa: E402


def test_one_off_events_are_moved_into_the_test_split():
    cfg = run_config(["experiment=demo"], "evaluate")
    test_from = cfg.decisions.train_frac + cfg.decisions.val_frac  # 0.9
    models = {name: run_config(["experiment=demo", f"scenario={name}", *rb.event_overrides(name, test_from)],
                               "evaluate").data.synthetic.scenario_model for name in rb.scenario_names()}
    assert set(models) == {"flash_crash", "liquidity_drought", "momentum_ignition", "regime_switch", "spoofing"}
    assert models["regime_switch"].at_frac == pytest.approx(0.9)
    assert 0.9 < models["flash_crash"].at_frac < 0.95  # the crash and its 17-min recovery inside the test period
    assert (models["liquidity_drought"].start_frac, models["liquidity_drought"].end_frac) == (pytest.approx(0.9), 1.0)


def test_robustness_table_by_hand():
    rng = np.random.default_rng(1)
    ts = np.arange(30) * 60_000_000
    clean = pd.DataFrame({"ts_us": ts, "is_bps_market": rng.normal(4.5, 1, 30), "is_bps_llm": rng.normal(2, 3, 30),
                          "is_bps_oracle": rng.normal(-9, 2, 30)})
    crash = clean.assign(is_bps_market=clean.is_bps_market + rng.normal(3, 2, 30),
                         is_bps_llm=clean.is_bps_llm + rng.normal(1, 0.5, 30))
    drought = clean.assign(is_bps_llm=clean.is_bps_llm + rng.normal(0, 1, 30))
    table = rb.robustness_table({"none": clean, "flash_crash": crash, "liquidity_drought": drought})
    assert table[["Scenario", "Strategy"]].values.tolist() == [["flash_crash", "market"], ["flash_crash", "llm"],
                                                               ["liquidity_drought", "market"],
                                                               ["liquidity_drought", "llm"]]  # no oracle row
    row = table.iloc[0]
    d = crash.is_bps_market - clean.is_bps_market
    assert row["IS clean [bps]"] == pytest.approx(clean.is_bps_market.mean())
    assert row["IS scenario [bps]"] == pytest.approx(crash.is_bps_market.mean())
    assert row["Diff [bps]"] == pytest.approx(d.mean())
    assert row["Diff CI low [bps]"] < d.mean() < row["Diff CI high [bps]"]
    m = 4  # two scenarios x two strategies
    assert row["p (t, Bonf.)"] == pytest.approx(min(1, m * stats.ttest_rel(crash.is_bps_market,
                                                                            clean.is_bps_market).pvalue))
    assert row["p (W, Bonf.)"] == pytest.approx(min(1, m * stats.wilcoxon(d).pvalue))
    unchanged = table.iloc[2]  # the drought left the market order as it was
    assert unchanged["Diff [bps]"] == 0 and unchanged["p (t, Bonf.)"] == 1 and unchanged["Identical"]
    assert not table.iloc[:2]["Identical"].any()
    with pytest.raises(ValueError, match="not the clean market's"):
        rb.robustness_table({"none": clean, "spoofing": clean.assign(ts_us=ts + 1)})


@pytest.mark.slow  # two backtests of 4.8 synthetic hours (about 50 s)
def test_the_script_writes_the_table_from_the_backtests(tmp_path):
    overrides = ["data.synthetic.n_days=0.2", "decisions.every_s=30", f"data.raw_dir={tmp_path}/raw",
                 f"data.cache_dir={tmp_path}/cache", f"registry_dir={tmp_path}/models"]
    subprocess.run([sys.executable, str(REPO / "experiments" / "robustness.py"), "--scenarios", "liquidity_drought",
                    "--set", *overrides, "--eval-dir", str(tmp_path / "eval"), "--out", str(tmp_path / "tables")],
                   check=True, capture_output=True, cwd=tmp_path)
    table = pd.read_csv(tmp_path / "tables" / "robustness.csv")
    clean = pd.read_parquet(tmp_path / "eval" / "none" / "decisions.parquet")
    dry = pd.read_parquet(tmp_path / "eval" / "liquidity_drought" / "decisions.parquet")
    row = table[table.Strategy == "passive"].iloc[0]
    assert row["Diff [bps]"] == pytest.approx((dry.is_bps_passive - clean.is_bps_passive).mean())
    assert "IS(scenario) - IS(clean)" in (tmp_path / "tables" / "robustness.md").read_text()
    # the drought thins the test period's book: the market order pays more there than on the clean market
    assert table[table.Strategy == "market"].iloc[0]["Diff [bps]"] > 0
