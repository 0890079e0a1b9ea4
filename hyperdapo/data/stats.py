"""Market statistics for ``python -m hyperdapo.data inspect``.

All on a regular 1-s grid of the book, as-of (the last snapshot at or before each second): spread (bps of
mid), top-of-book share at one tick (of the tick the data itself quotes on, :func:`infer_tick`: a venue's tick
today may not be the one of old data; the venue's is reported beside it when they differ), volatility (std of 1-s
log mid returns, bps; annualised with 365 days of 86,400 s), trade rate (trades per minute) and the correlation
between top-5 order-book imbalance at t and the mid log-return over (t, t + 30 s]: the short-horizon information a
limit-order policy can use.

Trade statistics (rate, median size, buy share) count the trades within the span the book and the trade files
share (``shared_hours``), so files of different spans do not inflate the rate; a warning names both spans when
either file reaches more than ``SPAN_TOLERANCE`` of its own span beyond the shared one.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np

from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.data.venues import Instrument

US_PER_S = 1_000_000
SECONDS_PER_YEAR = 365 * 86_400
SPAN_TOLERANCE = 0.05  # share of a file's span that may lie outside the shared span without a warning
TICK_SHARE = 0.99  # share of the quoted prices an inferred tick's grid must hold (a few stray quotes allowed)
TICK_MANTISSAS = (5.0, 2.5, 2.0, 1.0)  # ticks are m * 10**k USD
PRICE_DECIMALS = 8  # prices are compared on a 1e-8 USD grid
MAX_TICK_PRICES = 200_000  # prices sampled (evenly) to infer the tick


def imbalance(book: BookSnapshots, n_levels: int = 5) -> np.ndarray:
    """(bid - ask) / (bid + ask) of the summed sizes of the top ``n_levels`` levels, in [-1, 1]."""
    bid = np.nansum(book.bid_sz[:, :n_levels], axis=1)
    ask = np.nansum(book.ask_sz[:, :n_levels], axis=1)
    return (bid - ask) / np.maximum(bid + ask, 1e-300)


def infer_tick(prices_usd: np.ndarray) -> float:
    """The tick (USD) the prices are quoted on: the largest ``m * 10**k`` (``TICK_MANTISSAS``) whose grid holds at
    least ``TICK_SHARE`` of the finite prices (at most ``MAX_TICK_PRICES`` of them, evenly sampled), i.e. their
    greatest common increment, robust to a few stray quotes; ``10**-PRICE_DECIMALS`` when none does."""
    prices = np.asarray(prices_usd, dtype=np.float64).ravel()
    prices = prices[np.isfinite(prices)]
    prices = prices[:: max(1, len(prices) // MAX_TICK_PRICES)]
    units = np.round(prices * 10**PRICE_DECIMALS).astype(np.int64)  # (P,) prices in 1e-8 USD
    for k in range(PRICE_DECIMALS + 4, -1, -1):  # 1e4 USD down to 1e-8 USD
        for m in TICK_MANTISSAS:
            step = m * 10**k
            if step.is_integer() and np.mean(units % int(step) == 0) >= TICK_SHARE:
                return step / 10**PRICE_DECIMALS
    return 10.0**-PRICE_DECIMALS


def one_tick_share(book: BookSnapshots, asof: np.ndarray, tick_usd: float | np.ndarray) -> float:
    """Share of the grid's seconds whose best ask - best bid is one tick (``tick_usd``, USD)."""
    gap = book.ask_px[asof, 0] - book.bid_px[asof, 0]
    return float(np.mean(np.isclose(gap, tick_usd, rtol=0.0, atol=1e-9 * np.max(book.ask_px[asof, 0]))))


def _utc(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(int(ts_us) / US_PER_S, dt.UTC).isoformat(timespec="seconds")


def shared_span_us(book: BookSnapshots, trades: Trades) -> tuple[int, int]:
    """(start, end) in us of the time both the book and the trades cover; a warning when either file reaches
    more than ``SPAN_TOLERANCE`` of its own span beyond it, an error when they share none."""
    spans = {"book": (int(book.ts_us[0]), int(book.ts_us[-1])), "trades": (int(trades.ts_us[0]), int(trades.ts_us[-1]))}
    start, end = max(lo for lo, _ in spans.values()), min(hi for _, hi in spans.values())
    text = ", ".join(f"{name} {_utc(lo)}..{_utc(hi)} ({(hi - lo) / 3600 / US_PER_S:.2f} h)"
                     for name, (lo, hi) in spans.items())
    if start >= end:
        raise ValueError(f"the book and the trades share no time span: {text}")
    if any((hi - lo) - (end - start) > SPAN_TOLERANCE * (hi - lo) for lo, hi in spans.values()):
        warnings.warn(f"the files cover different spans ({text}): trade statistics use the "
                      f"{(end - start) / 3600 / US_PER_S:.2f} h they share, {_utc(start)}..{_utc(end)}", stacklevel=2)
    return start, end


def market_statistics(book: BookSnapshots, trades: Trades | None, instrument: Instrument | None = None,
                      horizon_s: float = 30.0) -> dict[str, float]:
    """The statistics of the module docstring. With ``instrument`` whose venue tick (at the median mid) is not the
    data's, a warning names both and ``share_one_tick_venue`` is the one-tick share on the venue's."""
    grid = np.arange(book.ts_us[0], book.ts_us[-1] + 1, US_PER_S)
    asof = np.searchsorted(book.ts_us, grid, side="right") - 1
    mid = book.mid[asof]
    spread_bps = (book.ask_px[asof, 0] - book.bid_px[asof, 0]) / mid * 1e4
    r1 = np.diff(np.log(mid)) * 1e4
    h = int(horizon_s)
    fwd = np.log(mid[h:] / mid[:-h])
    imb = imbalance(book)[asof][:-h]
    stats = {
        "snapshots": float(len(book)),
        "hours": (book.ts_us[-1] - book.ts_us[0]) / 3600 / US_PER_S,
        "spread_mean_bps": float(np.mean(spread_bps)),
        "spread_median_bps": float(np.median(spread_bps)),
        "spread_p10_bps": float(np.percentile(spread_bps, 10)),
        "spread_p90_bps": float(np.percentile(spread_bps, 90)),
        "vol_1s_bps": float(np.std(r1)),
        "vol_annual_pct": float(np.std(r1) * math.sqrt(SECONDS_PER_YEAR) / 100),
        f"corr_imbalance_next_{h}s": float(np.corrcoef(imb, fwd)[0, 1]) if np.std(imb) > 0 else math.nan,
        "trades_per_min": math.nan,
    }
    tick = infer_tick(np.concatenate([book.bid_px.ravel(), book.ask_px.ravel()]))
    stats["tick_inferred_usd"] = tick
    stats["share_one_tick"] = one_tick_share(book, asof, tick)
    venue_tick = instrument.tick_size(float(np.median(mid))) if instrument is not None else tick
    if not math.isclose(venue_tick, tick):
        warnings.warn(f"the {instrument.venue.name} tick {venue_tick:g} USD differs from the data's {tick:g} USD "
                      "(inferred from its prices): share_one_tick uses the data's, share_one_tick_venue the venue's",
                      stacklevel=2)
        stats["share_one_tick_venue"] = one_tick_share(book, asof, instrument.tick_size(mid))
    if trades is not None and len(trades):
        start, end = shared_span_us(book, trades)
        shared = (trades.ts_us >= start) & (trades.ts_us <= end)
        stats["shared_hours"] = (end - start) / 3600 / US_PER_S
        stats["trades_per_min"] = int(shared.sum()) / ((end - start) / 60 / US_PER_S)
        stats["trade_size_median"] = float(np.median(trades.amount[shared]))
        stats["buy_share"] = float(np.mean(trades.side[shared] > 0))
    return stats
