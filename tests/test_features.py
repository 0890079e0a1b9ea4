"""Each feature on a small hand-computed case, the causal EWMA normaliser, and the no-trades case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.features.compute import TRADE_FEATURES, compute_features, ewm_zscore
from hyperdapo.features.config import FeatureConfig

S = 1_000_000
CFG = FeatureConfig(imbalance_levels=2, window_s=300, ewm_min_rows=1)


def hand_book() -> BookSnapshots:
    """Snapshots at 0, 100, 200, ..., 1000 s. Mid 100 until 600 s, then 101 (bid 100.99 / ask 101.01).
    Levels: bid 99.99 (size 3), 99.95 (size 1), 99.00 (size 10); ask 100.01 (1), 100.05 (1), 101.00 (10)."""
    ts = np.arange(0, 1001, 100, dtype=np.int64) * S
    n = len(ts)
    shift = np.where(ts >= 600 * S, 1.0, 0.0)[:, None]
    bid_px = np.array([99.99, 99.95, 99.00]) + shift
    ask_px = np.array([100.01, 100.05, 101.00]) + shift
    bid_sz = np.tile([3.0, 1.0, 10.0], (n, 1))
    ask_sz = np.tile([1.0, 1.0, 10.0], (n, 1))
    return BookSnapshots(ts, ts, bid_px, bid_sz, ask_px, ask_sz)


def hand_trades() -> Trades:
    """In (700 s, 1000 s]: buy 2 @ 101, sell 1 @ 100.5, buy 1 @ 101 (big-trade threshold from the hour before)."""
    t = np.array([650, 800, 900, 950]) * S
    return Trades(t, t, np.array([100.0, 101.0, 100.5, 101.0]), np.array([0.5, 2.0, 1.0, 1.0]),
                  np.array([1, 1, -1, 1], dtype=np.int8))


@pytest.fixture
def row():
    market = MarketData("TEST", hand_book(), hand_trades())
    return compute_features(market, np.array([1000 * S]), CFG).iloc[0]


def test_book_features(row):
    mid = 101.0
    assert row["mid_usd"] == pytest.approx(mid) and row["best_bid_usd"] == pytest.approx(100.99)
    assert row["spread_bps"] == pytest.approx(0.02 / mid * 1e4)
    # top-2 sizes: bid 3 + 1 = 4, ask 1 + 1 = 2 -> (4 - 2) / 6
    assert row["imbalance_top2"] == pytest.approx(2 / 6)
    # within 10 bps of 101 (+-0.101): bids 100.99 (3) and 100.95 (1); asks 101.01 (1), 101.05 (1) -> 4 / 2
    assert row["depth_ratio_10bps"] == pytest.approx(2.0)
    # 50 bps = 0.505 USD: the third levels (100.00 / 102.00) are ~99 bps away, excluded
    d = lambda p: abs(p / mid - 1) * 1e4  # noqa: E731
    b = 3 * (1 - d(100.99) / 50) + 1 * (1 - d(100.95) / 50)
    a = 1 * (1 - d(101.01) / 50) + 1 * (1 - d(101.05) / 50)
    assert row["book_pressure_50bps"] == pytest.approx((b - a) / (b + a))
    assert row["liquidity_50bps"] == pytest.approx((4 + 2) / 2)
    # microprice = (100.99 * 1 + 101.01 * 3) / 4 = 101.005 -> +0.005 USD
    assert row["microprice_offset_bps"] == pytest.approx(0.005 / mid * 1e4)


def test_momentum_volatility_and_update_intensity(row):
    # mid 100 until 600 s, 101 after: 1, 5 min back (940 s, 700 s) still 101 -> 0; 15 min back (100 s) 100
    assert row["momentum_1m_bps"] == pytest.approx(0.0)
    assert row["momentum_5m_bps"] == pytest.approx(0.0)
    assert row["momentum_15m_bps"] == pytest.approx(math.log(101 / 100) * 1e4)
    assert row["volatility_5m_bps"] == pytest.approx(0.0)  # flat over (700 s, 1000 s]
    # snapshots in (700, 1000] = 800, 900, 1000, none changed -> 0 per minute; at 650 s the 600 s jump counts
    at_650 = compute_features(MarketData("T", hand_book(), None), np.array([650 * S]), CFG).iloc[0]
    assert at_650["book_update_intensity_per_min"] == pytest.approx(1 / 5)
    assert at_650["volatility_5m_bps"] > 0


def test_trade_features(row):
    # window (700 s, 1000 s]: buy 2 @ 101, sell 1 @ 100.5, buy 1 @ 101
    assert row["volume_5m"] == pytest.approx(4.0)
    vwap = (2 * 101 + 1 * 100.5 + 1 * 101) / 4
    assert row["vwap_5m_usd"] == pytest.approx(vwap)
    assert row["mid_vs_vwap_5m_bps"] == pytest.approx((101 / vwap - 1) * 1e4)
    assert row["trade_flow_5m"] == pytest.approx(2 - 1 + 1)
    assert row["trade_intensity_per_min"] == pytest.approx(3 / 5)
    # hour sizes [0.5, 2, 1, 1]: 90th percentile (linear) = 1.7 -> only the 2.0 trade is large: 2 / 4
    assert row["large_trade_ratio_5m"] == pytest.approx(0.5)
    # hour volume 4.5 -> mean 5-min volume 4.5 / 12 = 0.375; window 4 / 0.375
    assert row["volume_profile_ratio"] == pytest.approx(4 / 0.375)


def test_no_trades_marks_trade_features_unavailable_not_zero():
    f = compute_features(MarketData("T", hand_book(), None), np.array([1000 * S]), CFG).iloc[0]
    assert not f["trades_available"]
    assert all(np.isnan(f[name]) for name in TRADE_FEATURES)
    assert np.isfinite(f["imbalance_top2"])


def test_ewm_zscore_by_hand():
    tau_s = 3600.0
    a = 1 - math.exp(-60 / tau_s)  # rows 60 s apart
    x = np.array([1.0, 2.0, 0.0])
    ts = np.array([0, 60, 120]) * S
    z = ewm_zscore(x, ts, tau_s, min_rows=2)
    # row 1: mean = 1 + a, var = (1 - a)(0 + a * 1) ; z = (2 - mean) / sqrt(var)
    m1, v1 = 1 + a, (1 - a) * a
    assert np.isnan(z[0])
    assert z[1] == pytest.approx((2 - m1) / math.sqrt(v1))
    d = 0 - m1
    m2, v2 = m1 + a * d, (1 - a) * (v1 + a * d * d)
    assert z[2] == pytest.approx((0 - m2) / math.sqrt(v2))
    # NaN rows are skipped
    assert np.isnan(ewm_zscore(np.array([1.0, np.nan, 2.0]), np.array([0, 60, 120]) * S, tau_s, 1)[1])


def test_invalid_feature_config_names_the_key():
    with pytest.raises(ValueError, match="features.imbalance_levels"):
        FeatureConfig(imbalance_levels=0)
    with pytest.raises(ValueError, match="features.large_trade_quantile"):
        FeatureConfig(large_trade_quantile=1.0)
