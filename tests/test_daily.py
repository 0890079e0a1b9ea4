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
from hyperdapo.execution import daily
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.daily import DaySpec, build_days, read_days, reward_column
from hyperdapo.execution.preferences import offset_rewards
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.compute import compute_features
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.prompts.config import PromptConfig

SYNTH = SyntheticConfig(n_days=3, snapshot_interval_ms=5000, n_levels=10, trade_rate_per_s=0.5)
SPEC = DaySpec(load_asset("btc"), load_venue("hyperliquid"), DecisionConfig(every_s=60), FeatureConfig(),
               FillConfig(), RewardConfig())


@pytest.fixture(scope="module")
def data_cfg(tmp_path_factory) -> DataConfig:
    root = tmp_path_factory.mktemp("daily")
    return DataConfig(raw_dir=str(root / "raw"), cache_dir=str(root / "cache"), synthetic=SYNTH)


@pytest.fixture(scope="module")
def all_at_once(data_cfg) -> pd.DataFrame:
    """The table from the concatenated market: decisions, features and grid rewards as the task computes them."""
    market = load_market(SPEC.asset, data_cfg)
    task = ExecutionTask.build(SPEC.asset, SPEC.venue, market, SPEC.decisions, SPEC.features, SPEC.fill, SPEC.reward,
                               PromptConfig())
    d = task.decisions
    rewards = offset_rewards(task, np.arange(len(d)), SPEC.offsets_bps)
    features = compute_features(market, d.ts_us, SPEC.features).drop(columns="ts_us")
    table = pd.DataFrame({"ts_us": d.ts_us, "side": d.side, "qty": d.qty, "objective": d.objective, "split": d.split})
    grid = pd.DataFrame(rewards, columns=[reward_column(o) for o in SPEC.offsets_bps])
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
        m.setattr(daily, "load_cached", no_market)
        assert build_days(files, SPEC, out_dir, data_cfg.cache_dir) == paths
    paths[-1].unlink()  # as if the run stopped after day 2: day 3 resumes from day 2's stored carry
    assert build_days(files, SPEC, out_dir, data_cfg.cache_dir) == paths
    assert_bitwise_equal(read_days(paths), first)
