"""Causal features for the service, from the book snapshots and trades its requests carry.

A request that sends a book snapshot (and optionally recent trades) instead of a feature vector gets the
features of training (:func:`hyperdapo.features.compute.compute_features`) at the snapshot's time, computed
over what this asset's earlier requests sent: volatility and momentum need the mids of the past 15 min, the
trade features the trades of the past window (5 min) and hour. The ``_z`` scores are the same causal EWMA
z-scores (:func:`hyperdapo.features.compute.ewm_zscore`) over the feature rows of this asset's earlier book
requests, so they are NaN ("unknown" in the prompt) until ``features.ewm_min_rows`` requests have been seen, as
at the start of a training span. Nothing after the snapshot's time is ever used.

Trades are appended when newer than the newest stored trade, so a client may send each trade once or
overlapping "recent trades" windows. Times in microseconds (``_us``), prices in USD, sizes in coins.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.features.compute import RAW_PRICES, compute_features, ewm_zscore
from hyperdapo.features.config import FeatureConfig

US_PER_S = 1_000_000
MOMENTUM_LOOKBACK_S = 15 * 60  # the longest look-back of a book feature (momentum_15m)


class StaleBookError(ValueError):
    """A book snapshot older than the newest one this asset's state holds."""


class MarketState:
    """One asset's recent books, trades and feature rows, bounded in time and rows."""

    def __init__(self, asset: str, cfg: FeatureConfig, max_rows: int = 256):
        self.asset, self.cfg, self.max_rows = asset, cfg, max_rows
        self._books: deque[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque()
        self._trades: deque[tuple[int, float, float, int]] = deque()
        self._rows: deque[tuple[int, dict[str, float]]] = deque()
        self._has_trades = False

    def update(self, ts_us: int, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
               trades: Sequence[tuple[int, float, float, int]] | None) -> dict[str, float]:
        """Add a snapshot (``bids`` / ``asks``: (price USD, size coins), best first) and trades (ts_us, price, size,
        taker side +1/-1), and return the feature row at ``ts_us`` (raw and ``_z``)."""
        self.record(ts_us, bids, asks, trades)
        return self.features_at(ts_us)

    def record(self, ts_us: int, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
               trades: Sequence[tuple[int, float, float, int]] | None) -> None:
        """Add a snapshot and trades (as :meth:`update`) without computing features: a stream's every book."""
        if self._books and ts_us < self._books[-1][0]:
            raise StaleBookError(f"book time {ts_us // 1000} ms is older than the newest book of {self.asset} the "
                                 f"service has seen ({self._books[-1][0] // 1000} ms)")
        bid_px, bid_sz = np.asarray(bids, dtype=np.float64).reshape(-1, 2).T
        ask_px, ask_sz = np.asarray(asks, dtype=np.float64).reshape(-1, 2).T
        self._books.append((ts_us, bid_px, bid_sz, ask_px, ask_sz))
        if trades is not None:
            self._has_trades = True
            newest = self._trades[-1][0] if self._trades else -1
            self._trades.extend(t for t in sorted(trades) if t[0] > newest and t[0] <= ts_us)
        self._prune(ts_us)

    def features_at(self, ts_us: int) -> dict[str, float]:
        """The feature row (raw and ``_z``) at ``ts_us`` (not before the newest recorded book) from the recorded
        books and trades; the row joins the history of the ``_z`` scores."""
        market = MarketData(self.asset, book_snapshots(self._books),
                            trade_tape(self._trades) if self._has_trades else None)
        row = compute_features(market, np.array([ts_us], dtype=np.int64), self.cfg).iloc[0].to_dict()
        raw = {k: float(v) for k, v in row.items() if not k.endswith("_z") and k not in ("ts_us", "trades_available")}
        self._rows.append((ts_us, raw))
        if len(self._rows) > self.max_rows:
            self._rows.popleft()
        ts = np.array([t for t, _ in self._rows], dtype=np.int64)
        z = {f"{k}_z": float(ewm_zscore(np.array([r[k] for _, r in self._rows]), ts, self.cfg.ewm_tau_s,
                                        self.cfg.ewm_min_rows)[-1]) for k in raw if k not in RAW_PRICES}
        return {**raw, **z}

    def _prune(self, now_us: int) -> None:
        """Drop books older than the longest look-back (keeping the last one before it, the as-of book there) and
        trades older than the large-trade look-back."""
        keep_us = now_us - int(max(MOMENTUM_LOOKBACK_S, self.cfg.window_s) * US_PER_S) - US_PER_S
        while len(self._books) > 1 and self._books[1][0] <= keep_us:
            self._books.popleft()
        trade_keep_us = now_us - int(max(self.cfg.large_trade_lookback_s, self.cfg.window_s) * US_PER_S)
        while self._trades and self._trades[0][0] <= trade_keep_us:
            self._trades.popleft()


def book_snapshots(books: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> BookSnapshots:
    """Snapshots (ts_us, bid px, bid sz, ask px, ask sz; best first) as a NaN-padded level grid."""
    n_levels = max(max(len(b[1]), len(b[3])) for b in books)
    grids = np.full((4, len(books), n_levels), np.nan)
    for i, (_, *cols) in enumerate(books):
        for grid, col in zip(grids, cols, strict=True):
            grid[i, : len(col)] = col
    ts = np.array([b[0] for b in books], dtype=np.int64)
    return BookSnapshots(ts, ts.copy(), *grids)


def trade_tape(trades: Sequence[tuple[int, float, float, int]]) -> Trades:
    """Trades (ts_us, price USD, size coins, taker side +1/-1), sorted by time, as a tape."""
    tape = np.array(trades, dtype=np.float64).reshape(-1, 4)  # us times < 2**53: exact in float64
    ts = tape[:, 0].astype(np.int64)
    return Trades(ts, ts.copy(), tape[:, 1], tape[:, 2], tape[:, 3].astype(np.int8))
