"""The walk-forward plan (``experiments/walk_forward.py``): windows of w training days before each test day, split
fractions that put every test decision in the test day and every training / validation reward window before it (on
a time grid and on real synthetic day files, where ``data=files`` over the day files reproduces the synthetic run's
decisions), and the table assembled from small backtest results."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperdapo.data.scenarios import NoScenario, RegimeSwitch
from hyperdapo.data.synthetic import synthetic_dir_name
from hyperdapo.evaluation.figures import save_figure
from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import write_table
from hyperdapo.features.config import DecisionConfig
from hyperdapo.features.decision_set import Split, draw_decisions
from hyperdapo.pipeline.train_run import build_task
from tests.pipeline_helpers import REPO, run_config

sys.path.insert(0, str(REPO / "experiments"))
import walk_forward as wf  # noqa: E402

DAY_US = wf.DAY_US
DEMO_DECISIONS = DecisionConfig(every_s=15, horizon_s=120)  # experiment=demo's decisions


def test_each_window_tests_the_day_after_its_training_days():
    windows = wf.plan_windows(6, 2)
    assert [w.test_day for w in windows] == [2, 3, 4, 5]
    assert [w.train_days for w in windows] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert windows[-1].days == (3, 4, 5)
    assert [w.train_days for w in wf.plan_windows(3, 1)] == [(0,), (1,)]
    for n_days, window in ((3, 3), (3, 0)):
        with pytest.raises(ValueError, match="window"):
            wf.plan_windows(n_days, window)


@pytest.mark.parametrize("jitter_s", [0.0, 7.0])
def test_fractions_put_the_test_split_in_day_k_and_training_and_validation_before_it(jitter_s):
    """Days 0-2 of book snapshots every second from 00:00:01 (as the synthetic files start) to 23:59:59 of day 2;
    day 2 is the test day."""
    start_us, end_us, test_start_us = 1_000_000, 3 * DAY_US - 1_000_000, 2 * DAY_US
    cfg = replace(DEMO_DECISIONS, jitter_s=jitter_s)
    train_frac, val_frac = wf.split_fractions(start_us, end_us, test_start_us, 6 * 3600, cfg)
    cfg = replace(cfg, train_frac=train_frac, val_frac=val_frac)
    decisions, _ = draw_decisions("BTC", start_us, end_us, cfg)
    ts_s = {s: decisions.ts_us[decisions.split == s.value] / 1e6 for s in Split}
    day_s, gap_s = test_start_us / 1e6, cfg.embargo_s
    # the test split is day k, from its first grid point to the last reward window that ends in the data
    assert ts_s[Split.TEST].min() >= day_s and ts_s[Split.TEST].min() < day_s + cfg.every_s + jitter_s
    assert ts_s[Split.TEST].max() + cfg.window_s <= end_us / 1e6
    # validation: the last 6 h before an embargo before day k; training before another embargo
    assert ts_s[Split.VAL].max() + cfg.window_s <= day_s - gap_s + 1e-3
    assert ts_s[Split.VAL].max() + cfg.window_s > day_s - gap_s - cfg.every_s - jitter_s
    assert ts_s[Split.VAL].min() >= day_s - gap_s - 6 * 3600
    assert ts_s[Split.TRAIN].max() + cfg.window_s <= day_s - 2 * gap_s - 6 * 3600 + 1e-3
    assert len(ts_s[Split.VAL]) == pytest.approx((6 * 3600 - cfg.window_s) / cfg.every_s, abs=1)
    counts = wf.check_window(cfg, start_us, end_us, test_start_us)
    assert counts == {s.value: len(ts_s[s]) for s in Split}


def test_the_check_refuses_splits_whose_reward_windows_cross_into_the_test_day():
    start_us, end_us, test_start_us = 1_000_000, 3 * DAY_US - 1_000_000, 2 * DAY_US
    with pytest.raises(ValueError, match="reaches into the test day"):  # default fractions: validation in day 2
        wf.check_window(DEMO_DECISIONS, start_us, end_us, test_start_us)
    late = replace(DEMO_DECISIONS, train_frac=0.5, val_frac=0.1)  # the test period starts in day 1
    with pytest.raises(ValueError, match="outside the test day"):
        wf.check_window(late, start_us, end_us, test_start_us)


@pytest.mark.slow
def test_data_files_over_the_day_files_reproduce_the_synthetic_run_and_hold_the_plan(tmp_path):
    """Three synthetic days (sparse to stay fast: 10-s snapshots of 5 levels, 0.05 trades/s, decisions every 5 min),
    written once; window 1 (days 0-1, test day 2) over its files with data=files gives the decisions, splits and
    prompts of the data=synthetic run with the same fractions, and its test decisions are day 2's."""
    sparse = ("snapshot_interval_ms=10000", "n_levels=5", "trade_rate_per_s=0.05")
    common = [f"data.raw_dir={tmp_path}/raw", f"data.cache_dir={tmp_path}/cache", "decisions.every_s=300",
              *(f"data.synthetic.{kv}" for kv in sparse)]
    files, days = wf.market_days("demo", 3, common)
    assert days == [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(3)]
    assert [p.name for (p,) in files["book"]][2] == "hyperliquid_book_snapshot_25_2024-01-03_BTC.csv.gz"
    window = wf.plan_windows(3, 2)[0]
    overrides, counts = wf.window_overrides(window, "demo", files, days, 6.0, common)
    cfg = run_config(overrides)
    own = build_task(cfg)
    fractions = [o for o in overrides if o.startswith("decisions.") and "_frac=" in o]
    synthetic = build_task(run_config([*wf.PRESETS["demo"][0], "data.synthetic.n_days=3", *common, *fractions]))
    a, b = own.decisions, synthetic.decisions
    for field in ("ts_us", "side", "qty", "objective", "split"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert own.messages == synthetic.messages
    assert counts == {s.value: int((a.split == s.value).sum()) for s in Split}
    test = a.ts_us[a.split == Split.TEST.value]
    day2_us = wf.day_start_us(days[2])
    assert test.min() >= day2_us and test.max() < day2_us + DAY_US
    assert (a.ts_us[a.split != Split.TEST.value] + int(cfg.decisions.window_s * 1e6) <= day2_us).all()


def test_the_real_recording_walks_forward_by_utc_day(standx_dir):
    """``--preset standx_btc``: the hourly files grouped by the date in their names, book and trades alike, into the
    recording's three UTC days (2 h, 24 h, 24 h); with two training days, one window that tests on all of 01-07."""
    files, days = wf.market_days("standx_btc", 0, [])
    assert days == [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]
    assert [len(b) for b in files["book"]] == [len(t) for t in files["trades"]] == [2, 24, 24]
    for books, trades in zip(files["book"], files["trades"], strict=True):
        assert [b.name.split("_")[2:] for b in books] == [t.name.split("_")[2:] for t in trades]
    assert wf.plan_windows(len(days), 2) == [wf.Window((0, 1), 2)]


def small_window(rng, n: int, shift: float, best: str) -> tuple[dict, pd.DataFrame]:
    """A backtest's ``results.json`` (best baseline, fill rates) and ``decisions.parquet`` columns, the policy
    ``shift`` bps cheaper than the best baseline on average."""
    base = rng.normal(3.0, 2.0, n)
    decisions = pd.DataFrame({"ts_us": np.arange(n), f"is_bps_{best}": base, "is_bps_market": np.full(n, 4.5),
                              "is_bps_p": base - shift + rng.normal(0, 0.5, n), "is_bps_start": base + 0.1})
    result = {"best_baseline": {"name": best}, "metrics": {"p": {"Fill rate [%]": 80.0 if best == "twap" else 60.0}}}
    return result, decisions


def test_the_table_has_a_row_per_window_and_a_pooled_row_of_paired_differences(tmp_path):
    rng = np.random.default_rng(0)
    windows = wf.plan_windows(4, 2)
    (r1, d1), (r2, d2) = small_window(rng, 300, 0.5, "twap"), small_window(rng, 100, -0.2, "vwap")
    frames = [wf.window_frame(r, d, "p", "start") for r, d in ((r1, d1), (r2, d2))]
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    table = wf.walk_forward_table(windows, frames, [r1, r2], ["p", "p"], days)
    assert list(table["Window"]) == ["1", "2", "pooled"]
    assert list(table["Train days"][:2]) == ["2024-01-01..2024-01-02", "2024-01-02..2024-01-03"]
    assert list(table["Test day"]) == ["2024-01-03", "2024-01-04", "2 days"]
    assert list(table["Best baseline (val)"]) == ["twap", "vwap", "per window"]
    assert list(table["n test"]) == [300, 100, 400]
    diffs = [d["is_bps_p"] - d[f"is_bps_{r['best_baseline']['name']}"] for r, d in ((r1, d1), (r2, d2))]
    np.testing.assert_allclose(table["Diff [bps]"], [diffs[0].mean(), diffs[1].mean(), pd.concat(diffs).mean()])
    np.testing.assert_allclose(table["Diff vs start [bps]"], table["Diff [bps]"] - 0.1)
    assert table["Fill rate [%]"].iloc[2] == pytest.approx((300 * 80 + 100 * 60) / 400)
    assert table["p (t, Bonf.)"].iloc[0] < 1e-4 and (table["IS CI low [bps]"] < table["Policy IS [bps]"]).all()
    unadjusted = paired_tests({"p": frames[1]["policy"].to_numpy()}, frames[1]["best"].to_numpy())["p"]["t_p"]
    assert table["p (t, Bonf.)"].iloc[1] == pytest.approx(min(1.0, 6 * unadjusted))  # 2 comparisons x 3 rows
    write_table(table, tmp_path, "walk_forward", "caption", policies=())
    header = (tmp_path / "walk_forward.md").read_text().splitlines()[2]
    assert "| IS 95% CI [bps] |" in header and "| Diff 95% CI [bps] |" in header
    assert pd.read_csv(tmp_path / "walk_forward.csv")["n test"].tolist() == [300, 100, 400]
    pngs = save_figure(wf.walk_forward_figure(table, frames, "caption"), tmp_path / "figures" / "walk_forward")
    assert all(p.stat().st_size > 0 for p in pngs)


def test_market_overrides_reach_the_synthetic_market_of_every_window_only(tmp_path, monkeypatch):
    """``--market scenario=regime_switch ...``: main simulates the market with those overrides (its own directory,
    not the clean market's), every window's runs read that market's day files, no train / evaluate command carries a
    market override, and the runs, backtests and tables are named ``wf-market-*`` / ``walk_forward_market``. The
    subprocesses are replaced: a training does nothing, a backtest writes a small ``results.json`` and
    ``decisions.parquet`` inside its test day. Three sparse days (30-s snapshots of 5 levels), one training day."""
    monkeypatch.chdir(tmp_path)  # data/raw, data/cache, outputs/ of main land here
    market = ["scenario=regime_switch", "data.synthetic.scenario.at_frac=0.5",
              "data.synthetic.snapshot_interval_ms=30000", "data.synthetic.n_levels=5",
              "data.synthetic.trade_rate_per_s=0.02"]
    commands = []

    def fake_run(args: list[str]) -> None:
        commands.append(args)
        if args[0] != "evaluate.py":
            return
        out = Path(next(a for a in args if a.startswith("evaluate.out_dir=")).partition("=")[2])
        policy = Path(next(a for a in args if a.startswith("evaluate.policies=")).partition("=")[2][1:-1]).name
        start = policy.replace("-dapo", "-sft") if policy == "wf-market-d1-dapo" else "wf-market-d1-dapo"
        test_start_us = wf.day_start_us(dt.date(2024, 1, 1) + dt.timedelta(days=int(out.name[3:])))
        n = 20
        rng = np.random.default_rng(len(commands))
        decisions = pd.DataFrame({"ts_us": test_start_us + 600_000_000 + np.arange(n) * 60_000_000,
                                  f"is_bps_{policy}": rng.normal(2, 1, n), "is_bps_twap": rng.normal(3, 1, n),
                                  "is_bps_market": np.full(n, 4.5), f"is_bps_{start}": rng.normal(2.5, 1, n)})
        out.mkdir(parents=True)
        decisions.to_parquet(out / "decisions.parquet")
        (out / "results.json").write_text(json.dumps({"best_baseline": {"name": "twap"},
                                                      "metrics": {policy: {"Fill rate [%]": 50.0}}}))

    monkeypatch.setattr(wf, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["walk_forward.py", "--days", "3", "--window", "1", "--every-s", "300",
                                      "--val-hours", "3", "--market", *market])
    wf.main()

    synthetic = run_config([*wf.PRESETS["demo"][0], "data.synthetic.n_days=3", *market]).data.synthetic
    clean = run_config([*wf.PRESETS["demo"][0], "data.synthetic.n_days=3", *market[2:]]).data.synthetic
    assert isinstance(synthetic.scenario_model, RegimeSwitch) and isinstance(clean.scenario_model, NoScenario)
    own_dir = tmp_path / "data" / "raw" / "synthetic" / synthetic_dir_name(synthetic)
    assert own_dir.name != synthetic_dir_name(clean) and own_dir.is_dir()
    assert not (own_dir.parent / synthetic_dir_name(clean)).exists()  # the clean market was never simulated
    trains = [c for c in commands if c[0] == "train.py"]
    evals = [c for c in commands if c[0] == "evaluate.py"]
    names = [a.partition("=")[2] for c in trains for a in c if a.startswith("run_name=")]
    assert names == ["wf-market-d1-sft", "wf-market-d1-dapo", "wf-market-d2-dapo"]
    assert [a for c in evals for a in c if a.startswith("evaluate.policies=")] == [
        f"evaluate.policies=[outputs/models/BTC/wf-market-d{k}-dapo]" for k in (1, 2)]
    assert [a for c in evals for a in c if a.startswith("evaluate.out_dir=")] == [
        f"evaluate.out_dir=outputs/eval_walk_forward-market/day{k}" for k in (1, 2)]
    for command, days in zip([*trains, *evals], [(0, 1)] * 2 + [(1, 2)] + [(0, 1), (1, 2)], strict=True):
        args = command[1:]
        assert not any(m in args for m in market) and not any(a.startswith(("scenario", "data.synthetic."))
                                                               for a in args)
        assert "data=files" in args
        for kind, stem in (("book", "book_snapshot_25"), ("trades", "trades")):
            listed = next(a for a in args if a.startswith(f"data.files.{kind}=")).partition("=")[2][1:-1].split(",")
            assert [tmp_path / Path(p).parent for p in listed] == [own_dir] * 2  # the scenario market's files, its days
            assert [Path(p).name for p in listed] == [f"hyperliquid_{stem}_2024-01-0{d + 1}_BTC.csv.gz" for d in days]
        assert isinstance(run_config(args).data.synthetic.scenario_model, NoScenario)  # the runs: no scenario
    caption = (tmp_path / "outputs" / "tables" / "walk_forward_market.caption.txt").read_text()
    assert "market overrides scenario=regime_switch" in caption
