"""The columnar market-data schema every reader produces and every later stage consumes.

Units and conventions (see ../shared/DESIGN.md):
- timestamps: int64 microseconds since the epoch, UTC. ``ts_us`` is the exchange time,
  ``local_ts_us`` the time the message was received (Tardis ``local_timestamp``).
- prices: float64 USD; sizes: float64 in coins (base asset); an empty level is NaN in both.
- book levels are best first: bids descending, asks ascending. Shape ``(N, L)``: N snapshots, L levels.
- trades: ``side`` is the taker (aggressor) side, ``Side.BUY`` = +1, ``Side.SELL`` = -1.

Parquet layout: books store each of bid_px/bid_sz/ask_px/ask_sz as a fixed-size list column of length L.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pyarrow as pa


class Side(IntEnum):
    """Order or taker side; the value is the side sign used in every formula (+1 buy, -1 sell)."""

    BUY = 1
    SELL = -1


BOOK_FIELDS = ("bid_px", "bid_sz", "ask_px", "ask_sz")


@dataclass(frozen=True)
class BookSnapshots:
    """Top-L order-book snapshots, best level first, NaN where a level is empty."""

    ts_us: np.ndarray  # (N,) int64 exchange time
    local_ts_us: np.ndarray  # (N,) int64 receive time
    bid_px: np.ndarray  # (N, L) float64, descending
    bid_sz: np.ndarray  # (N, L) float64
    ask_px: np.ndarray  # (N, L) float64, ascending
    ask_sz: np.ndarray  # (N, L) float64

    @property
    def n_levels(self) -> int:
        return self.bid_px.shape[1]

    def __len__(self) -> int:
        return len(self.ts_us)

    @property
    def mid(self) -> np.ndarray:
        """(N,) mid price in USD: the mean of the best bid and best ask."""
        return 0.5 * (self.bid_px[:, 0] + self.ask_px[:, 0])

    def take(self, index: np.ndarray | slice) -> BookSnapshots:
        """Rows ``index`` (a slice, boolean mask or integer array) as a new BookSnapshots."""
        return BookSnapshots(*(getattr(self, f)[index] for f in ("ts_us", "local_ts_us", *BOOK_FIELDS)))

    def to_arrow(self) -> pa.Table:
        n, n_levels = self.bid_px.shape
        cols = {"ts_us": pa.array(self.ts_us, pa.int64()), "local_ts_us": pa.array(self.local_ts_us, pa.int64())}
        for f in BOOK_FIELDS:
            flat = pa.array(np.ascontiguousarray(getattr(self, f), dtype=np.float64).reshape(-1), pa.float64())
            cols[f] = pa.FixedSizeListArray.from_arrays(flat, n_levels)
        return pa.table(cols)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> BookSnapshots:
        n = table.num_rows
        arrays = {}
        for f in BOOK_FIELDS:
            col = table.column(f).combine_chunks()
            n_levels = col.type.list_size
            arrays[f] = col.flatten().to_numpy(zero_copy_only=False).reshape(n, n_levels)
        return cls(
            ts_us=table.column("ts_us").to_numpy().astype(np.int64),
            local_ts_us=table.column("local_ts_us").to_numpy().astype(np.int64),
            **arrays,
        )


@dataclass(frozen=True)
class Trades:
    """Trade prints; ``side`` is the taker side (+1 buy, -1 sell)."""

    ts_us: np.ndarray  # (M,) int64 exchange time
    local_ts_us: np.ndarray  # (M,) int64 receive time
    price: np.ndarray  # (M,) float64 USD
    amount: np.ndarray  # (M,) float64 coins, > 0
    side: np.ndarray  # (M,) int8, Side values

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, index: np.ndarray | slice) -> Trades:
        return Trades(*(getattr(self, f)[index] for f in ("ts_us", "local_ts_us", "price", "amount", "side")))

    def to_arrow(self) -> pa.Table:
        return pa.table(
            {
                "ts_us": pa.array(self.ts_us, pa.int64()),
                "local_ts_us": pa.array(self.local_ts_us, pa.int64()),
                "price": pa.array(self.price, pa.float64()),
                "amount": pa.array(self.amount, pa.float64()),
                "side": pa.array(self.side, pa.int8()),
            }
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Trades:
        col = lambda name, dtype: table.column(name).to_numpy().astype(dtype)  # noqa: E731
        return cls(
            ts_us=col("ts_us", np.int64),
            local_ts_us=col("local_ts_us", np.int64),
            price=col("price", np.float64),
            amount=col("amount", np.float64),
            side=col("side", np.int8),
        )


@dataclass(frozen=True)
class BookUpdates:
    """Tardis ``incremental_book_L2`` rows. ``side`` is +1 for a bid level, -1 for an ask level;
    ``amount`` is the new total size at that price (0 deletes the level); a run of ``is_snapshot`` rows
    replaces the whole book."""

    ts_us: np.ndarray  # (K,) int64
    local_ts_us: np.ndarray  # (K,) int64
    is_snapshot: np.ndarray  # (K,) bool
    side: np.ndarray  # (K,) int8
    price: np.ndarray  # (K,) float64
    amount: np.ndarray  # (K,) float64

    def __len__(self) -> int:
        return len(self.ts_us)

    def to_arrow(self) -> pa.Table:
        return pa.table({f: pa.array(getattr(self, f)) for f in UPDATE_FIELDS})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> BookUpdates:
        return cls(**{f: table.column(f).to_numpy() for f in UPDATE_FIELDS})


UPDATE_FIELDS = ("ts_us", "local_ts_us", "is_snapshot", "side", "price", "amount")


@dataclass(frozen=True)
class MarketData:
    """One asset's validated market data over a time span. ``trades`` is None for book-only sources
    (the Hyperliquid l2Book archive): trade features are then unavailable, and fills use the book-only
    rule."""

    asset: str
    book: BookSnapshots
    trades: Trades | None
