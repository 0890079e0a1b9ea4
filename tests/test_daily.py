"""Day-by-day builds (hyperdapo.execution.daily) equal the all-at-once path bitwise, and reuse their cache.

Three synthetic UTC days, coarse (a snapshot every 5 s, 10 levels, fewer trades) to keep the test fast; decisions
every 60 s. All at once: load_market -> ExecutionTask.build -> compute_features / offset_rewards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import DataConfig, SyntheticConfig
from hyperdapo.data.sources import load_market, market_files
from hyperdapo.data.venues import load_venue
from hyperdapo.execution import tape
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.daily import DaySpec, build_days, day_task, read_days, reward_column
from hyperdapo.execution.preferences import offset_rewards
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.compute import compute_features
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.prompts.config import PromptConfig

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

SYNTH = SyntheticConfig(n_days=3, snapshot_interval_ms=5000, n_levels=10, trade_rate_per_s=0.5)
SPEC = DaySpec(load_asset("btc"), load_venue("hyperliquid"), DecisionConfig(every_s=60), FeatureConfig(),
               FillConfig(), RewardConfig())


@pytest.fixture(scope="module")
def data_cfg(tmp_path_factory) -> DataConfig:
    root = tmp_path_factory.mktemp("daily")
    return DataConfig(raw_dir=str(root / "raw"), cache_dir=str(root / "cache"), synthetic=SYNTH)


@pytest.fixture(scope="module")
def all_at_once(data_cfg) -> pd.DataFrame:
    return all_at_once_table(load_market(SPEC.asset, data_cfg), SPEC)


def all_at_once_table(market, spec: DaySpec) -> pd.DataFrame:
    """The table from the concatenated market: decisions, features and grid rewards as the task computes them."""
    task = ExecutionTask.build(spec.asset, spec.venue, market, spec.decisions, spec.features, spec.fill, spec.reward,
                               PromptConfig())
    d = task.decisions
    rewards = offset_rewards(task, np.arange(len(d)), spec.offsets_bps)
    features = compute_features(market, d.ts_us, spec.features).drop(columns="ts_us")
    table = pd.DataFrame({"ts_us": d.ts_us, "side": d.side, "qty": d.qty, "objective": d.objective, "split": d.split})
    grid = pd.DataFrame(rewards, columns=[reward_column(o) for o in spec.offsets_bps])
    return pd.concat([table, features, grid], axis=1)


@pytest.fixture(scope="module")
def day_paths(data_cfg, tmp_path_factory):
    files = market_files(SPEC.asset, data_cfg)
    return files, build_days(files, SPEC, tmp_path_factory.mktemp("days"), data_cfg.cache_dir)


def assert_bitwise_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    for name in want.columns:
        a, b = got[name].to_numpy(), want[name].to_numpy()
        assert a.dtype == b.dtype or a.dtype.kind == b.dtype.kind == "O" or {a.dtype.kind, b.dtype.kind} <= {"O", "U"}
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_day_by_day_equals_all_at_once_bitwise(day_paths, all_at_once):
    _, paths = day_paths
    assert len(paths) == 3
    tables = [pd.read_parquet(p) for p in paths]
    assert all(len(t) > 1000 for t in tables)  # ~1,440 decisions a day, minus the warm-up and the embargoes
    got = read_days(paths)
    assert_bitwise_equal(got, all_at_once)
    # the carried parts are exercised: z-scores on the last day and trade-window features, rewards everywhere
    last = tables[-1]
    assert np.isfinite(last["volume_5m_z"]).all() and np.isfinite(last["large_trade_ratio_5m"]).any()
    assert np.isfinite(got[[reward_column(o) for o in SPEC.offsets_bps]].to_numpy()).all()
    assert set(got["split"]) == {"train", "val", "test"}


def test_second_run_reads_the_cache_and_an_interrupted_one_resumes(day_paths, data_cfg, monkeypatch):
    files, paths = day_paths
    first = read_days(paths)
    out_dir = paths[0].parent.parent

    def no_market(*_args, **_kwargs):
        raise AssertionError("the market was read although every day table is cached")

    with monkeypatch.context() as m:
        m.setattr(tape, "load_cached", no_market)
        assert build_days(files, SPEC, out_dir, data_cfg.cache_dir) == paths
    paths[-1].unlink()  # as if the run stopped after day 2: day 3 resumes from day 2's stored carry
    assert build_days(files, SPEC, out_dir, data_cfg.cache_dir) == paths
    assert_bitwise_equal(read_days(paths), first)


@pytest.fixture(scope="module")
def both_tasks(data_cfg, day_paths):
    """The same run's task from the concatenated market and day by day (two day windows in memory at most)."""
    files, paths = day_paths
    market = load_market(SPEC.asset, data_cfg)
    whole = ExecutionTask.build(SPEC.asset, SPEC.venue, market, SPEC.decisions, SPEC.features, SPEC.fill, SPEC.reward,
                                PromptConfig())
    by_day = day_task(files, SPEC, PromptConfig(), paths[0].parent.parent, data_cfg.cache_dir, days_in_memory=2)
    return whole, by_day


def test_a_day_by_day_task_has_the_decisions_prompts_and_scores_of_the_whole_market(both_tasks):
    whole, by_day = both_tasks
    for name in ("ts_us", "side", "qty", "objective", "split"):
        assert np.array_equal(getattr(by_day.decisions, name), getattr(whole.decisions, name)), name
    assert by_day.messages == whole.messages
    assert np.array_equal(by_day.mid_usd, whole.mid_usd)
    # arbitrary answers (three per decision, market orders among them) over all days, in a shuffled order
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(whole.decisions))
    offsets = rng.uniform(-60, 10, size=(len(idx), 3))
    px = whole.price_of_offset(idx, offsets)
    px[::7, 0] = whole.decisions.side[idx[::7]] * np.inf
    r_whole, o_whole = whole.score_prices(idx, px)
    r_day, o_day = by_day.score_prices(idx, px)
    assert np.array_equal(r_day, r_whole)
    for name in ("filled", "cleanup", "fill_ts_us", "exec_price", "is_bps", "depth_short"):
        assert np.array_equal(getattr(o_day, name), getattr(o_whole, name), equal_nan=True), name
    assert len(by_day.tape._windows) <= 2  # never more than days_in_memory windows held
    # children of a sliced order at any time of a day, and the volume profile of the training period
    t = whole.decisions.ts_us[idx[:50]] + 37_000_000
    assert np.array_equal(by_day.tape.mid_at(t), whole.tape.mid_at(t))
    end = int(whole.decisions.ts_us[whole.split_index("train")].max())
    # summed day by day: equal up to the order of the float additions
    np.testing.assert_allclose(by_day.tape.minute_volume(end), whole.tape.minute_volume(end), rtol=1e-12)


def test_day_by_day_training_batches_draw_from_one_day_each(both_tasks):
    _, by_day = both_tasks
    days = [set(by_day.day[by_day.sample_train_prompts(step, 8, seed=0)]) for step in range(30)]
    assert all(len(d) == 1 for d in days)
    assert len(set().union(*days)) == 3  # every day is drawn
    assert np.array_equal(by_day.sample_train_prompts(5, 8, 0), by_day.sample_train_prompts(5, 8, 0))


def test_ppo_rollouts_on_a_day_by_day_tape_draw_one_day_per_block(both_tasks):
    """PPO's batched env reads one day window per rollout (``day_block`` steps), not every day at every step (a
    49-h real-data PPO run took 17 min); in memory it still draws from the whole split."""
    from hyperdapo.rl.config import ActionKind
    from hyperdapo.rl.ppo import BatchedLimitOrderEnv

    whole, by_day = both_tasks
    env = BatchedLimitOrderEnv(by_day, "train", 16, ActionKind.DISCRETE, [-5.0, 0.0], seed=3, day_block=4)
    env.reset()
    days = [set(by_day.day[env.decisions])]
    for _ in range(23):
        env.step_async(np.zeros(16, dtype=np.int64))
        env.step_wait()
        days.append(set(by_day.day[env.decisions]))
    blocks = [set().union(*days[k: k + 4]) for k in range(0, 24, 4)]
    assert all(len(b) == 1 for b in blocks) and len(set().union(*blocks)) > 1
    mixed = BatchedLimitOrderEnv(whole, "train", 16, ActionKind.DISCRETE, [-5.0, 0.0], seed=3, day_block=4)
    mixed.reset()
    assert len(set(by_day.day[mixed.decisions])) > 1  # the in-memory task: any day at any step


def test_a_day_by_day_run_trains_and_evaluates_like_the_whole_market(tmp_path):
    """train.py / evaluate.py with data.day_by_day=true on three synthetic days: the run trains (one day window per
    batch), and the backtest's baselines (fixed offsets, market, TWAP/VWAP children, the oracle) equal those of the
    same run on the whole market in memory."""
    from hyperdapo.pipeline.evaluate_run import run_evaluation
    from hyperdapo.pipeline.train_run import run_training
    from tests.pipeline_helpers import fast, run_config

    days = ["data.synthetic.n_days=3", "data.synthetic.snapshot_interval_ms=5000", "data.synthetic.n_levels=10",
            "data.synthetic.trade_rate_per_s=0.5", "decisions.every_s=300"]
    base = fast(tmp_path, *days, "algo=sft", "trainer.max_steps=2")
    summary = run_training(run_config([*base, "data.day_by_day=true", "run_name=by-day"]), tmp_path / "train")
    assert summary["steps"] == 2
    results = {}
    for mode in ("true", "false"):
        cfg = run_config([*base, f"data.day_by_day={mode}", "evaluate.policy=none"])
        results[mode] = run_evaluation(cfg, tmp_path / f"eval-{mode}")
    by_day, whole = results["true"]["metrics"], results["false"]["metrics"]
    assert set(by_day) == set(whole) >= {"market", "twap", "vwap", "aggressive", "oracle"}
    for name in whole:
        assert by_day[name]["IS [bps]"] == whole[name]["IS [bps]"], name
        assert by_day[name]["Fill rate [%]"] == whole[name]["Fill rate [%]"], name
