"""Market features at decision times, from data up to t only.

Every feature at decision time t uses the last book snapshot with ``ts_us <= t`` and trades with
``ts_us <= t`` (as-of joins by binary search); nothing after t is read. One row per decision time:

Book (always available)
- ``mid_usd``, ``best_bid_usd``, ``best_ask_usd``: raw prices for the prompt.
- ``spread_bps``: (ask - bid) / mid * 1e4.
- ``imbalance_top5``: (bid - ask) / (bid + ask) of the sizes summed over the top N levels (N configurable).
- ``depth_ratio_10bps``: bid size / ask size within 10 bps of mid.
- ``book_pressure_50bps``: (B - A) / (B + A) with sizes within 50 bps weighted by 1 - d / 50 (d in bps).
- ``liquidity_50bps``: mean of bid and ask depth within 50 bps (coins).
- ``microprice_offset_bps``: (bid * ask_sz + ask * bid_sz) / (bid_sz + ask_sz) - mid, in bps of mid.
- ``book_update_intensity_per_min``: snapshots in (t - window, t] whose top levels changed, per minute.
- ``volatility_5m_bps``: std of 1-s log mid returns over (t - window, t] (mid as-of on a 1-s grid), bps.
- ``momentum_{1,5,15}m_bps``: log(mid_t / mid_{t - x}) * 1e4.

Trades (NaN when the source has no trades, e.g. Hyperliquid's archive; ``trades_available`` says so)
- ``volume_5m`` (coins), ``vwap_5m_usd`` and ``mid_vs_vwap_5m_bps`` over (t - window, t].
- ``trade_flow_5m``: taker buy minus taker sell volume (coins); ``trade_intensity_per_min``.
- ``large_trade_ratio_5m``: volume share of window trades larger than the 90th percentile trade size of
  the trades in (t - 1 h, t] (past only).
- ``volume_profile_ratio``: the window's volume over the mean 5-min volume of the past hour (1 = typical).

Normalisation: each feature also gets ``<name>_z``, a z-score against an exponentially weighted mean and
variance over the decision rows with time constant ``ewm_tau_s`` (3,600 s): row i's statistics use rows
<= i only (weights ``1 - exp(-dt / tau)``), so they are causal. The first ``ewm_min_rows`` rows have NaN
z-scores (too little history), as has any row whose feature is NaN.

Carrying across markets (day-by-day builds, :mod:`hyperdapo.execution.daily`): on a market cut from a longer one
(keeping every row the look-back ``lookback_s`` reaches), :func:`compute_features_carried` with a :class:`Carry`
gives bitwise the rows of the longer one: the window sums are differences of cumulative sums started from the
sums of the trades before the cut (:class:`TradeSums`), and each z-score continues from its :class:`EwmState`.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, field

import numpy as np
import pandas as pd

from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.features.config import FeatureConfig

US_PER_S = 1_000_000
TRADE_FEATURES = ("volume_5m", "vwap_5m_usd", "mid_vs_vwap_5m_bps", "trade_flow_5m", "trade_intensity_per_min",
                  "large_trade_ratio_5m", "volume_profile_ratio")
RAW_PRICES = ("mid_usd", "best_bid_usd", "best_ask_usd", "vwap_5m_usd")  # kept raw for the prompt, never z-scored
MOMENTUM_MINUTES = (1, 5, 15)


@dataclass(frozen=True)
class TradeSums:
    """Sums over trades in time order, added one trade at a time as ``np.cumsum`` adds them: volume (coins),
    notional (USD) and signed taker flow (coins)."""

    volume: float = 0.0
    notional_usd: float = 0.0
    flow: float = 0.0

    def plus(self, trades: Trades) -> TradeSums:
        """These sums with ``trades`` added after them."""
        return TradeSums(*(float(c[-1]) for c in _cumulative(trades, self)))


@dataclass(frozen=True)
class EwmState:
    """One feature's exponentially weighted mean and variance after the rows seen so far (``last_t_us``: the time
    of the last row seen, None before any)."""

    mean: float = 0.0
    var: float = 0.0
    seen: int = 0
    last_t_us: int | None = None


@dataclass(frozen=True)
class Carry:
    """What a market cut from a longer one needs from before the cut: the sums of the trades before its first
    trade, and each z-scored feature's EWMA state after the earlier decision rows (none: no history)."""

    trade_sums: TradeSums = TradeSums()
    ewm: dict[str, EwmState] = field(default_factory=dict)


def lookback_s(cfg: FeatureConfig) -> float:
    """How far before a decision time the features read the market (s)."""
    return max(cfg.window_s, 60.0 * max(MOMENTUM_MINUTES), cfg.large_trade_lookback_s)


def _asof(ts_us: np.ndarray, at_us: np.ndarray) -> np.ndarray:
    """Index of the last row with ts <= at (-1 if none)."""
    return np.searchsorted(ts_us, at_us, side="right") - 1


def _within(px: np.ndarray, sz: np.ndarray, mid: np.ndarray, bps: float, weighted: bool = False) -> np.ndarray:
    dist_bps = np.abs(px / mid[:, None] - 1) * 1e4
    w = np.where(dist_bps <= bps, 1 - dist_bps / bps if weighted else 1.0, 0.0)
    return np.nansum(np.nan_to_num(sz) * w, axis=1)


def book_features(book: BookSnapshots, ts_us: np.ndarray, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    i = _asof(book.ts_us, ts_us)
    bid_px, bid_sz, ask_px, ask_sz = book.bid_px[i], book.bid_sz[i], book.ask_px[i], book.ask_sz[i]
    bid, ask = bid_px[:, 0], ask_px[:, 0]
    mid = (bid + ask) / 2
    n = cfg.imbalance_levels
    b_n, a_n = np.nansum(bid_sz[:, :n], axis=1), np.nansum(ask_sz[:, :n], axis=1)
    b10, a10 = _within(bid_px, bid_sz, mid, 10), _within(ask_px, ask_sz, mid, 10)
    b50w, a50w = _within(bid_px, bid_sz, mid, 50, True), _within(ask_px, ask_sz, mid, 50, True)
    micro = (bid * ask_sz[:, 0] + ask * bid_sz[:, 0]) / (bid_sz[:, 0] + ask_sz[:, 0])
    out = {
        "mid_usd": mid, "best_bid_usd": bid, "best_ask_usd": ask,
        "spread_bps": (ask - bid) / mid * 1e4,
        f"imbalance_top{n}": (b_n - a_n) / (b_n + a_n),
        "depth_ratio_10bps": b10 / np.where(a10 > 0, a10, np.nan),
        "book_pressure_50bps": (b50w - a50w) / (b50w + a50w),
        "liquidity_50bps": (_within(bid_px, bid_sz, mid, 50) + _within(ask_px, ask_sz, mid, 50)) / 2,
        "microprice_offset_bps": (micro - mid) / mid * 1e4,
    }
    # top-of-book changes per minute over the window (a snapshot counts if its top N levels differ)
    top = np.concatenate([book.bid_px[:, :n], book.bid_sz[:, :n], book.ask_px[:, :n], book.ask_sz[:, :n]], axis=1)
    changed = np.concatenate([[0], np.any(np.nan_to_num(top[1:]) != np.nan_to_num(top[:-1]), axis=1)])
    cum = np.cumsum(changed)
    lo = _asof(book.ts_us, ts_us - int(cfg.window_s * US_PER_S))
    out["book_update_intensity_per_min"] = (cum[i] - np.where(lo >= 0, cum[np.maximum(lo, 0)], 0)) / (
        cfg.window_s / 60)
    # volatility and momentum from the mid sampled as-of on a 1-s grid ending at t
    w = int(cfg.window_s)
    grid = ts_us[:, None] - np.arange(w, -1, -1)[None, :] * US_PER_S  # (D, w + 1) oldest first
    gi = _asof(book.ts_us, grid)
    log_mid = np.where(gi >= 0, np.log(book.mid[np.maximum(gi, 0)]), np.nan)
    out["volatility_5m_bps"] = np.nanstd(np.diff(log_mid, axis=1), axis=1) * 1e4
    for minutes in MOMENTUM_MINUTES:
        j = _asof(book.ts_us, ts_us - minutes * 60 * US_PER_S)
        past = np.where(j >= 0, book.mid[np.maximum(j, 0)], np.nan)
        out[f"momentum_{minutes}m_bps"] = np.log(mid / past) * 1e4
    return out


def _cumulative(trades: Trades, before: TradeSums) -> tuple[np.ndarray, ...]:
    """Cumulative volume, notional and flow, each (M + 1,), starting from the sums ``before`` the first trade."""
    terms = (trades.amount, trades.amount * trades.price, trades.amount * trades.side)
    return tuple(np.cumsum(np.concatenate([[s], x])) for s, x in zip(astuple(before), terms, strict=True))


def trade_features(trades: Trades, mid: np.ndarray, ts_us: np.ndarray, cfg: FeatureConfig,
                   before: TradeSums = TradeSums()) -> dict[str, np.ndarray]:
    """Trade features at ``ts_us``; ``before``: the sums of the trades before ``trades`` (see :class:`Carry`)."""
    hi = np.searchsorted(trades.ts_us, ts_us, side="right")  # trades with ts <= t
    lo = np.searchsorted(trades.ts_us, ts_us - int(cfg.window_s * US_PER_S), side="right")
    c_amt, c_notional, c_flow = _cumulative(trades, before)
    volume = c_amt[hi] - c_amt[lo]
    vwap = np.where(volume > 0, (c_notional[hi] - c_notional[lo]) / np.where(volume > 0, volume, 1), np.nan)
    minutes = cfg.window_s / 60
    look = np.searchsorted(trades.ts_us, ts_us - int(cfg.large_trade_lookback_s * US_PER_S), side="right")
    large = np.full(len(ts_us), np.nan)
    for r, (a, b, h) in enumerate(zip(look.tolist(), lo.tolist(), hi.tolist(), strict=True)):
        if h > a and h > b:
            threshold = np.quantile(trades.amount[a:h], cfg.large_trade_quantile)
            window = trades.amount[b:h]
            large[r] = window[window > threshold].sum() / window.sum()
    hour_volume = c_amt[hi] - c_amt[look]
    return {
        "volume_5m": volume,
        "vwap_5m_usd": vwap,
        "mid_vs_vwap_5m_bps": (mid / vwap - 1) * 1e4,
        "trade_flow_5m": c_flow[hi] - c_flow[lo],
        "trade_intensity_per_min": (hi - lo) / minutes,
        "large_trade_ratio_5m": large,
        "volume_profile_ratio": volume / np.where(hour_volume > 0, hour_volume * cfg.window_s
                                                  / cfg.large_trade_lookback_s, np.nan),
    }


def ewm_zscore(x: np.ndarray, ts_us: np.ndarray, tau_s: float, min_rows: int) -> np.ndarray:
    """Causal z-score of ``x`` against its exponentially weighted mean / variance over rows <= i
    (time constant ``tau_s``; NaN rows are skipped and stay NaN)."""
    return ewm_zscore_carried(x, ts_us, tau_s, min_rows, EwmState())[0]


def ewm_zscore_carried(x: np.ndarray, ts_us: np.ndarray, tau_s: float, min_rows: int,
                       state: EwmState) -> tuple[np.ndarray, EwmState]:
    """:func:`ewm_zscore` continuing from ``state`` (the rows before ``x``); also returns the state after ``x``."""
    z = np.full(len(x), np.nan)
    mean, var, seen, last_t = astuple(state)
    for i, (v, t) in enumerate(zip(x.tolist(), ts_us.tolist(), strict=True)):
        if not math.isfinite(v):
            continue
        if seen == 0:
            mean, var = v, 0.0
        else:
            a = 1 - math.exp(-(t - last_t) / US_PER_S / tau_s)
            delta = v - mean
            mean += a * delta
            var = (1 - a) * (var + a * delta * delta)
        seen, last_t = seen + 1, t
        if seen >= min_rows and var > 0:
            z[i] = (v - mean) / math.sqrt(var)
    return z, EwmState(mean, var, seen, last_t)


def compute_features(market: MarketData, ts_us: np.ndarray, cfg: FeatureConfig) -> pd.DataFrame:
    """The feature table: one row per decision time (sorted ascending), raw and ``_z`` columns."""
    return compute_features_carried(market, ts_us, cfg, Carry())[0]


def compute_features_carried(market: MarketData, ts_us: np.ndarray, cfg: FeatureConfig,
                             carry: Carry) -> tuple[pd.DataFrame, dict[str, EwmState]]:
    """:func:`compute_features` on a market cut from a longer one (see :class:`Carry`); also returns each
    z-scored feature's EWMA state after these rows."""
    ts_us = np.asarray(ts_us, dtype=np.int64)
    if np.any(np.diff(ts_us) < 0):
        raise ValueError("decision times must be sorted ascending")
    if len(ts_us) and ts_us[0] < market.book.ts_us[0]:
        raise ValueError(f"decision time {ts_us[0]} is before the first book snapshot {market.book.ts_us[0]}")
    cols = book_features(market.book, ts_us, cfg)
    if market.trades is not None:
        cols.update(trade_features(market.trades, cols["mid_usd"], ts_us, cfg, carry.trade_sums))
    else:
        cols.update({name: np.full(len(ts_us), np.nan) for name in TRADE_FEATURES})
    frame = pd.DataFrame({"ts_us": ts_us, **cols})
    ewm = {}
    for name in cols:
        if name not in RAW_PRICES:
            frame[f"{name}_z"], ewm[name] = ewm_zscore_carried(frame[name].to_numpy(dtype=float), ts_us, cfg.ewm_tau_s,
                                                               cfg.ewm_min_rows, carry.ewm.get(name, EwmState()))
    frame["trades_available"] = market.trades is not None
    return frame, ewm
