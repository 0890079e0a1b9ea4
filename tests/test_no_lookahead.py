"""No look-ahead: changing any data after t changes nothing at t (features, z-scores, prompts), while
changing data at or before t does change something (so the test is not vacuous)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.schema import MarketData, Side
from hyperdapo.data.synthetic import simulate_market
from hyperdapo.features.compute import compute_features
from hyperdapo.features.config import FeatureConfig, Objective
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.prompts.render import build_messages

S = 1_000_000


@pytest.fixture(scope="module")
def market() -> MarketData:
    return simulate_market(load_asset("eth"), SyntheticConfig(n_days=1.5 / 24, seed=4)).market_data()


def decision_times(m: MarketData) -> np.ndarray:
    return np.arange(m.book.ts_us[0] + 960 * S, m.book.ts_us[-1], 60 * S)


def perturb_after(m: MarketData, t_us: int, rng, *, at_or_before: bool = False) -> MarketData:
    """Scale prices/sizes and drop rows of the book and the tape after t (or at/before t if asked)."""
    book, trades = m.book, m.trades
    sel_b = book.ts_us <= t_us if at_or_before else book.ts_us > t_us
    sel_t = trades.ts_us <= t_us if at_or_before else trades.ts_us > t_us
    if at_or_before:  # only the last 2 minutes before t, so the change is visible in the 5-min window
        sel_b &= book.ts_us > t_us - 120 * S
        sel_t &= trades.ts_us > t_us - 120 * S
    f = rng.uniform(0.9, 1.1)
    book = dataclasses.replace(book, bid_px=np.where(sel_b[:, None], book.bid_px * f, book.bid_px),
                               ask_px=np.where(sel_b[:, None], book.ask_px * f, book.ask_px),
                               bid_sz=np.where(sel_b[:, None], book.bid_sz * rng.uniform(0.2, 5), book.bid_sz))
    trades = dataclasses.replace(trades, amount=np.where(sel_t, trades.amount * rng.uniform(0.2, 5), trades.amount),
                                 side=np.where(sel_t, -trades.side, trades.side).astype(np.int8))
    keep_b = ~(sel_b & (rng.random(len(book)) < 0.3))
    keep_b[0] = True
    keep_t = ~(sel_t & (rng.random(len(trades)) < 0.3))
    return MarketData(m.asset, book.take(keep_b), trades.take(keep_t))


def prompts(frame) -> list[str]:
    return [build_messages("ETH", row, Side.BUY, 1.0, 300.0, Objective.PATIENT, PromptConfig())[-1]["content"]
            for row in frame.to_dict("records")]


@pytest.mark.parametrize("seed", range(4))
def test_future_data_changes_nothing_up_to_t(market, seed):
    rng = np.random.default_rng(seed)
    ts = decision_times(market)
    k = int(rng.integers(len(ts) // 3, len(ts) - 2))  # the cut: decision k at time t
    t_us = int(ts[k])
    cfg = FeatureConfig()
    base = compute_features(market, ts, cfg)
    changed = compute_features(perturb_after(market, t_us, rng), ts, cfg)
    head_a, head_b = base.iloc[: k + 1], changed.iloc[: k + 1]
    np.testing.assert_array_equal(head_a.to_numpy(dtype=float), head_b.to_numpy(dtype=float))
    assert prompts(head_a) == prompts(head_b)
    # ... and decisions after t do see the change
    assert not np.array_equal(base.iloc[k + 1:].to_numpy(dtype=float), changed.iloc[k + 1:].to_numpy(dtype=float))


@pytest.mark.parametrize("seed", range(2))
def test_past_data_changes_the_row_at_t(market, seed):
    rng = np.random.default_rng(100 + seed)
    ts = decision_times(market)
    k = len(ts) // 2
    cfg = FeatureConfig()
    base = compute_features(market, ts, cfg).iloc[k]
    changed = compute_features(perturb_after(market, int(ts[k]), rng, at_or_before=True), ts, cfg).iloc[k]
    differs = [c for c in base.index if c != "trades_available" and not np.isclose(base[c], changed[c], equal_nan=True)]
    assert {"mid_usd", "volume_5m", "trade_flow_5m"} <= set(differs)
