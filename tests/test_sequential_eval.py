"""Sequential evaluation with the episode as the unit (hyperdapo/evaluation/sequential_metrics.py,
experiments/sequential_eval.py): per-episode metrics worked out by hand on hand-made tapes (IS, completion,
replacements, time to complete, adverse selection) and the example table of one; the validation choices never read
the test split; the table's paired difference is the mean per-episode difference and its p-values are Bonferroni over
the table's tests; the ``sequential:`` config node composes and rejects a bad dt naming the key; the script writes
both tables (marked slow: it builds a synthetic task)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hyperdapo.data.assets import load_asset
from hyperdapo.data.schema import MarketData, Side
from hyperdapo.data.venues import load_venue
from hyperdapo.evaluation.config import BaselineConfig
from hyperdapo.evaluation.sequential_metrics import (
    BEST,
    ONE_SHOT,
    EpisodeMetrics,
    choose_on_validation,
    episode_table,
    example_positions,
    example_table,
    run_metrics,
    sequential_baselines,
)
from hyperdapo.evaluation.stats import mean_ci
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.sequential_baselines import PegToBest, TouchThenCross
from hyperdapo.execution.tape import MemoryTape
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import DecisionSet, Split
from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.prompts.config import PromptConfig
from tests.pipeline_helpers import REPO
from tests.test_fills import MAKER, MID, TAKER, bps, flat_book, tape
from tests.test_sequential import DT, HORIZON_S, after, hand_task

S = 1_000_000  # us per second


# ---------------------------------------------------------------------------------------------- metrics by hand
def test_metrics_of_a_pegged_episode_by_hand_and_its_example_rows():
    """Buy 0.5 at t0 = 10 s, bid 100 / ask 101; the book moves up 3 at 40 s, a sell prints at 102.5 at 70 s. Pegged:
    placed at 100 (10 s), cancelled and replaced at the new touch 103 at the 40-s step (2 orders, 1 replacement),
    filled by the print at 70 s: completed after 60 s, IS 103 - 100.5 plus the maker fee; adverse selection: the mid
    60 s after the fill is 103.5, in bps of the child's arrival mid 103.5 (fill 0.5 below it: negative, in favour)."""
    task = hand_task(flat_book(moves={40: 3.0}), tape((70, 102.5, 1, -1)))
    m, episodes, trajectory = run_metrics(task, np.array([0]), PegToBest(), DT)
    assert m.orders[0] == 2 and m.replacements[0] == 1 and m.completed[0]
    assert m.time_to_complete_s[0] == pytest.approx(60.0)
    assert m.is_bps[0] == pytest.approx(bps(103.0 - MID) + MAKER)
    assert m.adverse_selection_bps[0] == pytest.approx((103.0 - 103.5) / 103.5 * 1e4)
    ex = example_table(episodes, trajectory, [0])
    # steps at 10 .. 60 s (the fill at 70 s is known at the 70-s step, where the parent is done), then the end row
    assert list(ex["Step"]) == ["0", "1", "2", "3", "4", "5", "T"]
    assert list(ex["Action"][:6]) == [f"REPLACE {-bps(0.5):+.1f} bps", "KEEP", "KEEP",
                                      f"REPLACE {-0.5 / 103.5 * 1e4:+.1f} bps", "KEEP", "KEEP"]
    assert list(ex["Executed by next step [%]"][:6]) == [0.0] * 5 + [100.0]  # the 60-s step's order fills at 70 s
    assert ex["Mid move [bps]"][3] == pytest.approx(bps(3.0)) and ex["Remaining [%]"][5] == 100.0
    end = ex.iloc[-1]
    assert end["Action"] == "end: completed" and end["Time [s]"] == pytest.approx(60.0)
    assert end["IS so far [bps]"] == pytest.approx(m.is_bps[0])


def test_metrics_of_touch_then_cross_by_hand():
    """Buy 0.5 at t0 = 10 s on a flat book (bid 100 / ask 101), no trades: rests at 100 from 10 s, unfilled; at the
    100-s step 30 s are left and it crosses: the cancel and the market order reach the venue after the 20-ms latency
    and buy at the ask 101 (taker). 2 orders, 1 replacement, completed (no cleanup) after 90.02 s."""
    task = hand_task(flat_book(), None)
    m, _, trajectory = run_metrics(task, np.array([0]), TouchThenCross(30.0), DT)
    assert len(trajectory) == 10 and m.orders[0] == 2 and m.replacements[0] == 1 and m.completed[0]
    assert m.time_to_complete_s[0] == pytest.approx(90.020)
    assert m.is_bps[0] == pytest.approx(bps(101.0 - MID) + TAKER)


# ---------------------------------------------------------------------------------------------- validation choice
def two_period_task(market: MarketData) -> ExecutionTask:
    """Buy parents of 0.5 BTC (Hyperliquid, horizon 120 s, adverse look 60 s): validation at 10 and 20 s, test at 200
    and 210 s; the validation episodes read the market up to 200 s at most (140 s + the adverse look)."""
    t0_s = np.array([10.0, 20.0, 200.0, 210.0])
    split = np.array([Split.VAL.value] * 2 + [Split.TEST.value] * 2)
    decisions = DecisionSet("BTC", (t0_s * S).astype(np.int64), np.full(4, Side.BUY, np.int8), np.full(4, 0.5),
                            np.array(["patient"] * 4), split, HORIZON_S, 60.0)
    tape_ = MemoryTape(market)
    return ExecutionTask(load_asset("BTC"), load_venue("hyperliquid"), tape_, decisions, [{}] * 4,
                         tape_.mid_at(decisions.ts_us), [[]] * 4, FillConfig(), RewardConfig(), PromptConfig())


def test_the_validation_choices_never_read_the_test_split():
    """Validation: the book moves up 3 at 40 s with no trade, so resting buys are cleaned up at 104 and crossing
    early (Almgren-Chriss) is cheapest. Test: the book is back, a sell prints at 99 at 230 s and fills every resting
    buy at its limit: resting at the touch is cheapest. The choices equal those made with every snapshot and trade
    after the first test decision moved (which changes every test outcome), they are the validation means' argmins
    by hand, and the validation-best baseline is not the test-best one."""
    market = MarketData("BTC", flat_book(moves={40: 3.0, 190: 0.0}), tape((230, 99.0, 10.0, -1)))
    task = two_period_task(market)
    moved = replace(task, tape=MemoryTape(after(market, 200 * S)))
    baselines = sequential_baselines(BaselineConfig())
    choice, choice_moved = (choose_on_validation(t, baselines, DT) for t in (task, moved))
    assert choice == choice_moved
    val, test = task.split_index(Split.VAL), task.split_index(Split.TEST)
    by_hand = {n: run_metrics(task, val, p, DT)[0].is_bps.mean() for n, p in baselines.items()}
    assert choice.val_is_bps == pytest.approx(by_hand)
    assert choice.best == min(by_hand, key=by_hand.get) == "almgren_chriss_urgent"
    held = {n: v for n, v in by_hand.items() if n.startswith("held ")}
    assert choice.one_shot == min(held, key=held.get)
    on_test = {n: run_metrics(task, test, p, DT)[0].is_bps for n, p in baselines.items()}
    on_moved = {n: run_metrics(moved, test, p, DT)[0].is_bps for n, p in baselines.items()}
    assert all(not np.array_equal(on_test[n], on_moved[n]) for n in baselines)  # the move reaches every test episode
    # on test, resting at the touch (100, deeper than any held offset in this 1-USD spread) fills at 100 at 230 s
    assert on_test["touch_then_cross"] == pytest.approx(bps(100.0 - MID) + MAKER)
    assert min(on_test, key=lambda n: on_test[n].mean()) == "touch_then_cross" != choice.best


# ---------------------------------------------------------------------------------------------- the table
def metrics_of(is_bps: np.ndarray, rng: np.random.Generator) -> EpisodeMetrics:
    n = len(is_bps)
    completed = rng.random(n) < 0.7
    return EpisodeMetrics(is_bps, completed, rng.integers(1, 4, n), rng.integers(0, 3, n),
                          np.where(completed, rng.uniform(0, 120, n), np.nan),
                          np.where(completed, rng.normal(0, 2, n), np.nan))


def test_the_tables_paired_diff_is_the_mean_per_episode_difference():
    """Three strategies over 50 episodes, references a (best) and b (one-shot): each cell is the per-episode
    arithmetic by hand; p-values are scipy's paired t and Wilcoxon times the 4 tests of the table (c and b vs a, c and
    a vs b); a reference is not tested against itself."""
    rng = np.random.default_rng(7)
    base = rng.normal(5, 3, 50)
    metrics = {"a": metrics_of(base, rng), "b": metrics_of(base + rng.normal(0.5, 1, 50), rng),
               "c": metrics_of(base + rng.normal(-0.3, 1, 50), rng)}
    table = episode_table(metrics, {BEST: "a", ONE_SHOT: "b"}, seed=0).set_index("Strategy")
    for name, ref, role in (("c", "a", BEST), ("b", "a", BEST), ("c", "b", ONE_SHOT), ("a", "b", ONE_SHOT)):
        d = metrics[name].is_bps - metrics[ref].is_bps
        assert table.loc[name, f"Diff vs {role} [bps]"] == pytest.approx(d.mean(), abs=1e-12)
        assert table.loc[name, f"p (t, Bonf.) vs {role}"] == pytest.approx(
            min(1.0, 4 * stats.ttest_rel(metrics[name].is_bps, metrics[ref].is_bps).pvalue))
        assert table.loc[name, f"p (W, Bonf.) vs {role}"] == pytest.approx(min(1.0, 4 * stats.wilcoxon(d).pvalue))
    assert np.isnan(table.loc["a", f"Diff vs {BEST} [bps]"]) and np.isnan(table.loc["b", f"p (t, Bonf.) vs {ONE_SHOT}"])
    c = metrics["c"]
    row = table.loc["c"]
    assert row["n episodes"] == 50 and row["IS [bps]"] == pytest.approx(c.is_bps.mean())
    assert (row["IS CI low [bps]"], row["IS CI high [bps]"]) == pytest.approx(mean_ci(c.is_bps, 0))
    # examples: the first episode of each way an episode ends (within the first 10-s step, later, cleaned up at T)
    first = example_positions(c, 10.0)
    assert list(first) == ["completed within the first step", "completed later", "cleaned up at T"]
    assert first["cleaned up at T"] == np.flatnonzero(~c.completed)[0]
    assert first["completed later"] == np.flatnonzero(c.completed & (c.time_to_complete_s > 10.0))[0]
    assert row["Completed before T [%]"] == pytest.approx(100 * c.completed.mean())
    assert row["Replacements per episode"] == pytest.approx(c.replacements.mean())
    assert row["Time to complete [s]"] == pytest.approx(c.time_to_complete_s[c.completed].mean())
    assert row["Adverse selection [bps]"] == pytest.approx(c.adverse_selection_bps[c.completed].mean())


# ---------------------------------------------------------------------------------------------- config
def test_the_sequential_config_node_composes_and_rejects_a_bad_dt():
    assert compose_run_config(["experiment=demo", "sequential.dt_s=20"]).sequential.dt_s == 20.0
    assert compose_run_config([]).sequential.dt_s == 10.0  # the default lives in SequentialConfig
    with pytest.raises(ValueError, match=r"sequential\.dt_s=-5.0: must be finite, > 0"):
        compose_run_config(["sequential.dt_s=-5"])
    cfg = compose_run_config(["experiment=demo", "sequential.dt_s=7"])  # composes; the horizon check names both keys
    with pytest.raises(ValueError, match=r"sequential\.dt_s=7.0 does not divide decisions\.horizon_s=120"):
        cfg.sequential.n_steps(cfg.decisions.horizon_s)


# ---------------------------------------------------------------------------------------------- the script
@pytest.mark.slow  # builds a synthetic task (some 20 s) and trains PPO for 256 steps
def test_the_script_writes_both_tables_with_every_strategy(tmp_path):
    """experiments/sequential_eval.py end to end on 4.8 synthetic hours: the table has a row per sequential baseline
    and the PPO seed, the two references named in the caption have no test against themselves, and the examples
    table ends each episode with an end row."""
    overrides = ["data.synthetic.n_days=0.2", "decisions.every_s=30", f"data.raw_dir={tmp_path}/raw",
                 f"data.cache_dir={tmp_path}/cache"]
    subprocess.run([sys.executable, str(REPO / "experiments" / "sequential_eval.py"), "--timesteps", "256",
                    "--out", str(tmp_path / "tables"), "--set", *overrides], check=True, cwd=REPO)
    table = pd.read_csv(tmp_path / "tables" / "sequential_demo.csv").set_index("Strategy")
    assert list(table.index) == ["ppo seed 0", *sequential_baselines(BaselineConfig())]
    caption = (tmp_path / "tables" / "sequential_demo.caption.txt").read_text()
    best = re.search(r"best baseline = (\S+) \(", caption).group(1)
    one_shot = re.search(r"one-shot policy held to T = (held \S+) \(", caption).group(1)
    assert np.isnan(table.loc[best, f"Diff vs {BEST} [bps]"]) and np.isnan(table.loc[one_shot,
                                                                                      f"Diff vs {ONE_SHOT} [bps]"])
    assert table[f"Diff vs {BEST} [bps]"].notna().sum() == len(table) - 1
    assert "dt = 10 s" in caption and "T = 120 s" in caption and "Bonferroni over the 18 tests" in caption
    examples = pd.read_csv(tmp_path / "tables" / "sequential_examples_demo.csv", dtype={"Step": str})
    ends = examples.loc[examples["Step"] == "T", "Action"]
    assert 1 <= len(ends) <= 3 and ends.str.startswith("end: ").all() and examples["Step"].iloc[-1] == "T"
    for ext in ("md", "tex"):
        assert (tmp_path / "tables" / f"sequential_examples_demo.{ext}").exists()
