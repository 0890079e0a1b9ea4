"""The fill simulator: what a limit order placed at a decision would really have done.

Orders: D decisions x K candidate limit prices (a flat list of orders is D x 1). For decision d at time t
with side s (+1 buy, -1 sell), quantity q (coins) and limit price p (USD):

1. **Arrival mid** = mid of the last snapshot with ``ts_us <= t``. Every bps figure is relative to it.
2. **Placement** at ``t + venue.latency_ms``; the book at placement is the last snapshot at or before it.
3. **Marketable** (buy ``p >= best ask``, sell ``p <= best bid`` at placement; a market order is
   ``p = side_sign * inf``): fills at once by walking the visible levels up to ``p`` (the venue's taker fee). The
   part the visible depth within the limit does not cover is priced by the impact model (rule 6).
4. **Resting** orders fill whole (partial fills are not modelled) at ``p`` with the venue's maker fee:
   - with trades (default rule, conservative): at the first trade after placement that prints strictly
     through ``p`` (below a buy's price, above a sell's), any taker side;
   - ``queue_model="conservative"`` adds: trades printing exactly at ``p`` consume the queue ahead, the
     visible size at ``p`` on the order's side of the placement book (0 if ``p`` is not a visible level);
     the order fills once the volume printed at ``p`` since placement strictly exceeds that queue (a queue
     consumed exactly is not a fill). Sizes are compared in whole lots of ``1 / LOTS_PER_COIN`` coin, so
     prints of 0.1 and 0.2 against a queue of 0.3 sum to exactly 0.3: no fill (a float sum would exceed it);
   - **book-only data** (no trades, e.g. Hyperliquid's l2Book archive): price through the opposite best:
     a resting buy fills at the first later snapshot whose best ask is at or below ``p`` (a sell: best bid
     at or above ``p``). ``Outcomes.book_only`` flags it so that every table can say so.
5. **Cleanup**: unfilled at ``t + horizon_s`` -> a market order against the last snapshot at or before the
   horizon, walking its levels (taker fee); depth beyond the visible book is priced by the impact model (rule 6).
   Its cost is part of the implementation shortfall.
6. **Depth beyond the visible book** (rules 3 and 5; the order is flagged ``depth_short``): the square-root impact
   model ``dp_bps = sigma_bps * sqrt(Q / V)``, executed at time ``t_x`` (placement or horizon) against snapshot
   ``i`` (the last at or before ``t_x``), window ``W = execution.impact_window_s``:
   - ``sigma_bps``: realised volatility of the mid over ``(t_x - W, t_x]``, ``1e4 * sqrt(sum r^2)`` over the log
     returns ``r`` between consecutive snapshots inside the window (0 with fewer than two snapshots in it);
   - ``V`` (coins): the volume traded in ``(t_x - W, t_x]``; when no trade printed there (book-only data), the
     visible depth of the side taken, summed over its levels; when that is empty too, ``V = Q``;
   - ``Q`` (coins): the order's whole quantity.
   Volatility and volume over the same window keep ``sigma sqrt(Q / V)`` independent of the window's length
   when volatility grows with sqrt(time) and volume with time (it equals the daily-units form). The uncovered rest
   fills at ``mid_i * (1 + side_sign * dp_bps / 1e4)``, never better than the last visible level taken and never
   beyond the order's limit (a market order has none).

Per order (side_sign s): ``is_bps = s (exec - mid0) / mid0 * 1e4 + fee_bps`` (a cost: positive is worse,
cleanup included); ``price_improvement_bps = s (mid0 - fill) / mid0 * 1e4`` (good positive, NaN unless the
limit order filled); ``adverse_selection_bps = s (fill - mid_60) / mid0 * 1e4`` with ``mid_60`` the mid
``adverse_horizon_s`` after the fill (positive = the market moved against the filled order; NaN if
unfilled or the data ends first). Times in microseconds (``_us``) or seconds (``_s``), prices in USD.

The fast path is numba; :mod:`hyperdapo.execution.reference` is the slow, obvious loop it is tested against.
Cost per decision: O(W + K log W) for W trades in the window (running extreme + binary search), plus
O(K W) with the queue model. Depth-short orders are priced in a second pass over them alone (rule 6 scans its
window), which keeps the hot loop as fast as the visible book allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from hyperdapo.data.config import MAX_PERP_DECIMALS, VenueConfig
from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.execution.config import FillConfig, QueueModel

US_PER_S = 1_000_000
# Whole lots per coin for the queue comparison: the finest Hyperliquid lot (szDecimals <= 6), so the sizes of
# every asset are whole multiples of it and the comparison is exact in the asset's own lots too.
LOTS_PER_COIN = 10**MAX_PERP_DECIMALS


@dataclass
class Outcomes:
    """Simulated outcomes, each (D, K) except ``arrival_mid`` (D,)."""

    arrival_mid: np.ndarray  # (D,) USD
    filled: np.ndarray  # bool: the limit order itself filled (marketable or resting)
    marketable: np.ndarray  # bool: it filled on placement as a taker
    cleanup: np.ndarray  # bool: unfilled at the horizon, completed by a market order
    fill_ts_us: np.ndarray  # int64: limit fill time, or the horizon for a cleanup
    time_to_fill_s: np.ndarray  # from the decision time; NaN unless filled
    fill_price: np.ndarray  # average limit fill price, NaN unless filled
    exec_price: np.ndarray  # average execution price, cleanup included
    fee_bps: np.ndarray
    is_bps: np.ndarray  # implementation shortfall, cost positive, cleanup and fees included
    price_improvement_bps: np.ndarray
    adverse_selection_bps: np.ndarray
    depth_short: np.ndarray  # bool: the visible depth did not cover the quantity (see rules 3 and 5)
    book_only: bool  # fills used the book-only rule (no trades)


FIELDS = ("filled", "marketable", "cleanup", "fill_ts_us", "time_to_fill_s", "fill_price", "exec_price", "fee_bps",
          "is_bps", "price_improvement_bps", "adverse_selection_bps", "depth_short")


def simulate(book: BookSnapshots, trades: Trades | None, decision_ts_us: np.ndarray, side: np.ndarray,
             limit_px: np.ndarray, qty: np.ndarray, cfg: FillConfig, venue: VenueConfig) -> Outcomes:
    """Simulate D x K limit orders on ``venue`` (its latency and fees; see the module docstring).
    ``limit_px`` is (D, K) or (D,)."""
    ts = np.asarray(decision_ts_us, dtype=np.int64)
    px = np.asarray(limit_px, dtype=np.float64)
    px = px[:, None] if px.ndim == 1 else px
    d, k = px.shape
    sd = np.asarray(side, dtype=np.float64).reshape(d)
    q = np.broadcast_to(np.asarray(qty, dtype=np.float64).reshape(d, -1), (d, k)).copy()
    _check_orders(book, ts, sd, px, q, cfg)
    book_only = trades is None
    t_ts = np.zeros(0, np.int64) if book_only else trades.ts_us
    t_px = np.zeros(0) if book_only else trades.price
    t_amt = np.zeros(0) if book_only else trades.amount
    out = _simulate_numba(
        book.ts_us, book.mid, book.bid_px, book.bid_sz, book.ask_px, book.ask_sz, t_ts, t_px, t_amt, book_only,
        ts, sd, px, q, int(venue.latency_ms * 1000), int(cfg.horizon_s * US_PER_S),
        int(cfg.adverse_horizon_s * US_PER_S), cfg.queue_model is QueueModel.CONSERVATIVE,
        venue.taker_fee_bps, venue.maker_fee_bps, int(cfg.impact_window_s * US_PER_S),
    )
    arrival_mid, *arrays = out
    return Outcomes(arrival_mid, *(a.reshape(d, k) for a in arrays), book_only=book_only)


def _check_orders(book, ts, sd, px, q, cfg) -> None:
    if len(ts) and ts.min() < book.ts_us[0]:
        i = int(np.argmin(ts))
        raise ValueError(f"decision {i} at ts_us={ts[i]} is before the first book snapshot ({book.ts_us[0]})")
    late = ts + int(cfg.horizon_s * US_PER_S) > book.ts_us[-1]
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise ValueError(f"decision {i} at ts_us={ts[i]}: its horizon ({cfg.horizon_s:g} s) ends after the last book "
                         f"snapshot ({book.ts_us[-1]}); decisions must leave a full reward window")
    if not np.isin(sd, (-1.0, 1.0)).all():
        raise ValueError("side must be +1 (buy) or -1 (sell)")
    market = px == sd[:, None] * np.inf
    if not (market | (np.isfinite(px) & (px > 0))).all():
        raise ValueError("limit prices must be finite and > 0, or side_sign * inf for a market order (parse and "
                         "validate answers first)")
    if not (q > 0).all():
        raise ValueError("quantities must be > 0")


@numba.njit(cache=True)
def _lots(size):  # pragma: no cover - numba
    """``size`` (coins) as a whole number of lots of ``1 / LOTS_PER_COIN`` coin (int64)."""
    return np.int64(np.rint(size * LOTS_PER_COIN))


@numba.njit(cache=True)
def _walk(level_px, level_sz, qty, limit, sign):  # pragma: no cover - numba
    """Take ``qty`` from levels (best first) with prices within ``limit`` (``sign * px <= sign * limit``).
    Returns (cost in USD, coins left, last price taken or NaN)."""
    left, cost, last = qty, 0.0, np.nan
    for j in range(len(level_px)):
        p = level_px[j]
        if np.isnan(p) or sign * p > sign * limit:
            break
        take = min(left, level_sz[j])
        cost += take * p
        left -= take
        last = p
        if left <= 1e-12:
            break
    return cost, left, last


@numba.njit(cache=True, inline="always")  # inlined into the hot loop: no call per order
def _visible_price(level_px, level_sz, qty, limit, sign):  # pragma: no cover - numba
    """Pass 1: (average price in USD, short of depth) of taking ``qty`` within ``limit``; NaN when the visible
    depth falls short (pass 2, :func:`_price_depth_short`, prices it)."""
    cost, left, _ = _walk(level_px, level_sz, qty, limit, sign)
    return (cost / qty, False) if left <= 1e-12 else (np.nan, True)


@numba.njit(cache=True)
def _realized_vol_bps(b_ts, b_mid, i_book, t_us, window_us):  # pragma: no cover - numba
    """Realised volatility of the mid over ``(t_us - window_us, t_us]`` in bps: sqrt of the summed squared log
    returns between consecutive snapshots in the window, the last being snapshot ``i_book``."""
    total = 0.0
    j = i_book
    while j > 0 and b_ts[j - 1] > t_us - window_us:
        r = math.log(b_mid[j] / b_mid[j - 1])
        total += r * r
        j -= 1
    return math.sqrt(total) * 1e4


@numba.njit(cache=True)
def _traded_volume(t_ts, t_amt, t_us, window_us):  # pragma: no cover - numba
    """Coins traded in ``(t_us - window_us, t_us]``."""
    lo = np.searchsorted(t_ts, t_us - window_us, side="right")
    hi = np.searchsorted(t_ts, t_us, side="right")
    total = 0.0
    for j in range(lo, hi):
        total += t_amt[j]
    return total


@numba.njit(cache=True)
def _impact_bps(qty, sigma_bps, volume, level_px, level_sz):  # pragma: no cover - numba
    """Square-root impact ``sigma_bps * sqrt(qty / V)`` (bps); ``V`` = ``volume`` (coins), else the visible depth
    of the levels, else ``qty``."""
    v = volume
    if v <= 0:
        for j in range(len(level_px)):
            if not np.isnan(level_px[j]):
                v += level_sz[j]
    if v <= 0:
        v = qty
    return sigma_bps * math.sqrt(qty / v)


@numba.njit(cache=True)
def _impact_price(level_px, level_sz, qty, limit, sign, b_ts, b_mid, i_book, t_us, t_ts, t_amt,
                  window_us):  # pragma: no cover - numba
    """Average price (USD) of a taker order of ``qty`` against snapshot ``i_book``'s levels at ``t_us`` within
    ``limit`` (inf: none), the part beyond the visible depth at the impact price (module docstring, rule 6): never
    better than the last level taken, never beyond ``limit``."""
    cost, left, last = _walk(level_px, level_sz, qty, limit, sign)
    sigma_bps = _realized_vol_bps(b_ts, b_mid, i_book, t_us, window_us)
    volume = _traded_volume(t_ts, t_amt, t_us, window_us)
    rest = b_mid[i_book] * (1 + sign * _impact_bps(qty, sigma_bps, volume, level_px, level_sz) / 1e4)
    if not np.isnan(last) and sign * rest < sign * last:
        rest = last
    if sign * rest > sign * limit:
        rest = limit
    return (cost + left * rest) / qty


@numba.njit(cache=True)
def _price_depth_short(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_amt, ts, sd, px, q, latency_us, horizon_us,
                       adverse_us, impact_us, arrival, marketable, short, fill_ts, fill_px, exec_px, fee, is_bps, pi,
                       adv):  # pragma: no cover - numba
    """Pass 2 (rare orders, kept out of the hot loop of pass 1): each depth-short order's execution price by the
    impact model, taken on placement (marketable) or at the horizon (cleanup), and the fields that follow from it."""
    k = px.shape[1]
    last_ts = b_ts[-1]
    for o in np.flatnonzero(short):
        i, c = o // k, o % k
        s, mid0 = sd[i], arrival[i]
        t_x, limit = (ts[i] + latency_us, px[i, c]) if marketable[o] else (ts[i] + horizon_us, s * np.inf)
        ib = np.searchsorted(b_ts, t_x, side="right") - 1
        if s > 0:
            price = _impact_price(ask_px[ib], ask_sz[ib], q[i, c], limit, s, b_ts, b_mid, ib, t_x, t_ts, t_amt,
                                  impact_us)
        else:
            price = _impact_price(bid_px[ib], bid_sz[ib], q[i, c], limit, s, b_ts, b_mid, ib, t_x, t_ts, t_amt,
                                  impact_us)
        exec_px[o] = price
        is_bps[o] = s * (price - mid0) / mid0 * 1e4 + fee[o]
        if marketable[o]:
            fill_px[o] = price
            pi[o] = s * (mid0 - price) / mid0 * 1e4
            ta = fill_ts[o] + adverse_us
            if ta <= last_ts:
                adv[o] = s * (price - b_mid[np.searchsorted(b_ts, ta, side="right") - 1]) / mid0 * 1e4


@numba.njit(cache=True)
def _simulate_numba(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_px, t_amt, book_only,
                    ts, sd, px, q, latency_us, horizon_us, adverse_us, queue, taker_bps, maker_bps,
                    impact_us):  # pragma: no cover
    d, k = px.shape
    n = d * k
    arrival = np.empty(d)
    filled = np.zeros(n, np.bool_)
    marketable = np.zeros(n, np.bool_)
    cleanup = np.zeros(n, np.bool_)
    fill_ts = np.zeros(n, np.int64)
    ttf = np.full(n, np.nan)
    fill_px = np.full(n, np.nan)
    exec_px = np.empty(n)
    fee = np.empty(n)
    is_bps = np.empty(n)
    pi = np.full(n, np.nan)
    adv = np.full(n, np.nan)
    short = np.zeros(n, np.bool_)
    last_ts = b_ts[-1]
    for i in range(d):
        t0 = ts[i]
        s = sd[i]
        i0 = np.searchsorted(b_ts, t0, side="right") - 1
        mid0 = b_mid[i0]
        arrival[i] = mid0
        tp = t0 + latency_us
        th = t0 + horizon_us
        ip = np.searchsorted(b_ts, tp, side="right") - 1
        ih = np.searchsorted(b_ts, th, side="right") - 1
        # the running extreme of the prices that can fill a resting order, after placement, up to the horizon
        if book_only:
            lo, hi = ip + 1, ih + 1
            ev_ts = b_ts[lo:hi]
            ev_px = ask_px[lo:hi, 0] if s > 0 else bid_px[lo:hi, 0]
        else:
            lo = np.searchsorted(t_ts, tp, side="right")
            hi = np.searchsorted(t_ts, th, side="right")
            ev_ts = t_ts[lo:hi]
            ev_px = t_px[lo:hi]
        m = len(ev_px)
        run = np.empty(m)  # buy: running min (non-increasing); sell: running -max (non-increasing)
        cur = np.inf
        for j in range(m):
            v = s * ev_px[j]
            if v < cur:
                cur = v
            run[j] = cur
        if s > 0:
            opp_px, opp_sz, own_px, own_sz = ask_px[ip], ask_sz[ip], bid_px[ip], bid_sz[ip]
        else:
            opp_px, opp_sz, own_px, own_sz = bid_px[ip], bid_sz[ip], ask_px[ip], ask_sz[ip]
        for c in range(k):
            o = i * k + c
            p = px[i, c]
            qty = q[i, c]
            best_opp = opp_px[0]
            if not np.isnan(best_opp) and s * p >= s * best_opp:  # marketable on placement
                avg, sh = _visible_price(opp_px, opp_sz, qty, p, s)
                filled[o], marketable[o], short[o] = True, True, sh
                fill_ts[o], fill_px[o], fee[o] = tp, avg, taker_bps
            else:
                # first event that prints strictly through p (book-only: at or through the opposite best)
                # run[j] is non-increasing; find the first j with run[j] < s*p (or <= for book-only)
                target = s * p
                a, b = 0, m
                while a < b:
                    h = (a + b) // 2
                    hit = run[h] <= target if book_only else run[h] < target
                    if hit:
                        b = h
                    else:
                        a = h + 1
                j_fill = a  # m if never
                if queue and not book_only:
                    ahead = 0
                    for j in range(len(own_px)):
                        if own_px[j] == p:
                            ahead = _lots(own_sz[j])
                            break
                    vol = 0
                    for j in range(j_fill):
                        if ev_px[j] == p:
                            vol += _lots(t_amt[lo + j])
                            if vol > ahead:
                                j_fill = j
                                break
                if j_fill < m:
                    filled[o] = True
                    fill_ts[o], fill_px[o], fee[o] = ev_ts[j_fill], p, maker_bps
            if filled[o]:
                exec_px[o] = fill_px[o]
                ttf[o] = (fill_ts[o] - t0) / 1e6
                pi[o] = s * (mid0 - fill_px[o]) / mid0 * 1e4
                ta = fill_ts[o] + adverse_us
                if ta <= last_ts:
                    ia = np.searchsorted(b_ts, ta, side="right") - 1
                    adv[o] = s * (fill_px[o] - b_mid[ia]) / mid0 * 1e4
            else:
                cleanup[o] = True
                if s > 0:
                    avg, sh = _visible_price(ask_px[ih], ask_sz[ih], qty, np.inf, 1.0)
                else:
                    avg, sh = _visible_price(bid_px[ih], bid_sz[ih], qty, -np.inf, -1.0)
                exec_px[o], short[o], fee[o], fill_ts[o] = avg, sh, taker_bps, th
            is_bps[o] = s * (exec_px[o] - mid0) / mid0 * 1e4 + fee[o]
    if short.any():
        _price_depth_short(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_amt, ts, sd, px, q, latency_us,
                           horizon_us, adverse_us, impact_us, arrival, marketable, short, fill_ts, fill_px, exec_px,
                           fee, is_bps, pi, adv)
    return arrival, filled, marketable, cleanup, fill_ts, ttf, fill_px, exec_px, fee, is_bps, pi, adv, short
