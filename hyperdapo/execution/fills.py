"""The fill simulator: what a limit order placed at a decision would really have done.

Orders: D decisions x K candidate limit prices (a flat list of orders is D x 1). For decision d at time t
with side s (+1 buy, -1 sell), quantity q (coins) and limit price p (USD):

1. **Arrival mid** = mid of the last snapshot with ``ts_us <= t``. Every bps figure is relative to it.
2. **Placement** at ``t + latency`` (``execution.latency``: the venue's ``latency_ms`` by default, or a per-decision
   draw, :mod:`hyperdapo.execution.latency`); the book at placement is the last snapshot at or before it.
3. **Marketable** (buy ``p >= best ask``, sell ``p <= best bid`` at placement; a market order is
   ``p = side_sign * inf``): fills at once by walking the visible levels up to ``p`` (the venue's taker fee).
   What the visible depth within the limit does not cover (the order is flagged ``depth_short``):
   - a market order: priced by the impact model (rule 6);
   - a limit order: the remainder **rests** at ``p`` (its queue ahead, the size at ``p`` on its side of the
     placement book, is 0 unless the book is crossed) and fills whole under rule 4 (maker fee), else is cleaned
     up at the horizon (rule 5). The replayed book does not know the order took its levels: under ``touch`` (and
     book-only) a later snapshot still showing them fills the remainder.
4. **Resting** orders fill whole (partial fills are not modelled) at ``p`` with the venue's maker fee, at the first
   event after placement (``ts > placement``, up to the horizon) that fills them; ``execution.fill_rule``:
   - ``trade_through`` (default, conservative): a trade printing strictly through ``p`` (below a buy's price,
     above a sell's), any taker side;
   - ``touch`` (hftbacktest's rule): that, or a later snapshot whose opposite best reaches ``p`` (a buy: best
     ask at or below ``p``; a sell: best bid at or above ``p``);
   - **book-only data** (no trades, e.g. Hyperliquid's l2Book archive): the snapshot part of ``touch`` is the
     whole rule under either choice: a resting buy fills at the first later snapshot whose best ask is at or
     below ``p`` (a sell: best bid at or above ``p``). ``Outcomes.book_only`` flags it so that every table can
     say so. The queue model has nothing to read (no trades).
   With trades, ``execution.queue_model`` adds fills from trades printing exactly at ``p``:
   - ``none`` (default): they never fill;
   - ``conservative``: they consume the queue ahead, the visible size at ``p`` on the order's side of the
     placement book (0 if ``p`` is not a visible level); the order fills at the print that makes the volume
     printed at ``p`` since placement strictly exceed that queue (a queue consumed exactly is not a fill);
   - ``capped`` (hftbacktest's ``RiskAdverseQueueModel``): as ``conservative``, and at each later snapshot the
     queue ahead left becomes ``min(queue ahead, visible size at p)``: 0 when ``p`` is inside the visible range
     but not a level (inside the spread, or a gap), unchanged when ``p`` lies beyond the deepest visible level
     or the side is empty (its size is unknown, not 0). A snapshot with the time of a trade follows it (it shows
     the book after the trade), so the trade does not consume the queue that snapshot already shows consumed.
   Sizes are compared in whole lots of ``1 / LOTS_PER_COIN`` coin, so prints of 0.1 and 0.2 against a queue of 0.3
   sum to exactly 0.3: no fill (a float sum would exceed it).
5. **Cleanup**: unfilled at ``t + horizon_s`` (the whole order, or the resting remainder of rule 3) -> a market
   order for the unfilled quantity against the last snapshot at or before the horizon, walking its levels (taker
   fee); depth beyond the visible book is priced by the impact model (rule 6). Its cost is part of the
   implementation shortfall.
6. **Depth beyond the visible book** of a market order (rules 3 and 5; flagged ``depth_short``): the square-root
   impact model ``dp_bps = sigma_bps * sqrt(Q / V)``, executed at time ``t_x`` (placement or horizon) against
   snapshot ``i`` (the last at or before ``t_x``), window ``W = execution.impact_window_s``:
   - ``sigma_bps``: realised volatility of the mid over ``(t_x - W, t_x]``, ``1e4 * sqrt(sum r^2)`` over the log
     returns ``r`` between consecutive snapshots inside the window (0 with fewer than two snapshots in it);
   - ``V`` (coins): the volume traded in ``(t_x - W, t_x]``; when no trade printed there (book-only data), the
     visible depth of the side taken, summed over its levels; when that is empty too, ``V = Q``;
   - ``Q`` (coins): the quantity of that market order (the whole order; at a cleanup, what is left of it).
   Volatility and volume over the same window keep ``sigma sqrt(Q / V)`` independent of the window's length
   when volatility grows with sqrt(time) and volume with time (it equals the daily-units form). The uncovered rest
   fills at ``mid_i * (1 + side_sign * dp_bps / 1e4)``, never better than the last visible level taken.

Per order (side_sign s): ``is_bps = s (exec - mid0) / mid0 * 1e4 + fee_bps`` (a cost: positive is worse,
cleanup included; ``exec`` and ``fee_bps`` are quantity-weighted over the parts of a split order, rule 3, so its
IS is the quantity-weighted IS of its parts); ``price_improvement_bps = s (mid0 - fill) / mid0 * 1e4`` (good
positive, NaN unless the limit order filled); ``adverse_selection_bps = s (fill - mid_60) / mid0 * 1e4`` with
``mid_60`` the mid ``adverse_horizon_s`` after the fill (positive = the market moved against the filled order; NaN
if unfilled or the data ends first). Times in microseconds (``_us``) or seconds (``_s``), prices in USD.

The fast path is numba; :mod:`hyperdapo.execution.reference` is the slow, obvious loop it is tested against.
Cost per decision: O(W + K log W) for W trades in the window (running extreme + binary search), plus
O(S + K log S) for S snapshots with ``touch``; a queue model scans, per order, only the trades from the first at or
through ``p`` (binary search) to its fill, ``capped`` also the snapshots up to its last print at ``p`` (O(L) each, L
levels). The optional rules run in a function of their own, out of the default rule's hot loop; orders needing the
impact model are priced in a second pass over them alone (rule 6 scans its window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from hyperdapo.data.config import MAX_PERP_DECIMALS, VenueConfig
from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.execution.config import FillConfig, FillRule, QueueModel

US_PER_S = 1_000_000
# Whole lots per coin for the queue comparison: the finest Hyperliquid lot (szDecimals <= 6), so the sizes of
# every asset are whole multiples of it and the comparison is exact in the asset's own lots too.
LOTS_PER_COIN = 10**MAX_PERP_DECIMALS
NEVER_US = np.int64(2**62)  # no fill event before the horizon
NO_CAP = np.int64(2**62)  # capped queue: the size at p is unknown (beyond the visible levels)
QUEUE_CODE = {QueueModel.NONE: 0, QueueModel.CONSERVATIVE: 1, QueueModel.CAPPED: 2}  # the numba loop's int codes


@dataclass
class Outcomes:
    """Simulated outcomes, each (D, K) except ``arrival_mid`` (D,).

    A marketable limit order larger than the visible depth within its limit (module docstring, rule 3) is split:
    ``marketable`` and ``depth_short`` are set; it is ``filled`` when its resting remainder filled too (then
    ``fill_ts_us`` / ``time_to_fill_s`` are the remainder's fill, when the whole quantity was done, and
    ``fill_price`` the quantity-weighted price of both parts), else ``cleanup`` is set as well and the fill
    fields are NaN; ``exec_price`` and ``fee_bps`` are quantity-weighted over its parts either way.
    """

    arrival_mid: np.ndarray  # (D,) USD
    filled: np.ndarray  # bool: the whole quantity filled by the limit order (marketable and/or resting)
    marketable: np.ndarray  # bool: it took liquidity on placement (all of it, or the part the book covered)
    cleanup: np.ndarray  # bool: unfilled at the horizon (all of it or a remainder), completed by a market order
    fill_ts_us: np.ndarray  # int64: limit fill time (of the last part), or the horizon for a cleanup
    time_to_fill_s: np.ndarray  # from the decision time; NaN unless filled
    fill_price: np.ndarray  # average limit fill price (USD), NaN unless filled
    exec_price: np.ndarray  # average execution price (USD), cleanup included
    fee_bps: np.ndarray  # quantity-weighted over the parts (taker and/or maker)
    is_bps: np.ndarray  # implementation shortfall, cost positive, cleanup and fees included
    price_improvement_bps: np.ndarray
    adverse_selection_bps: np.ndarray
    depth_short: np.ndarray  # bool: the visible depth did not cover the quantity (see rules 3 and 5)
    book_only: bool  # fills used the book-only rule (no trades)


FIELDS = ("filled", "marketable", "cleanup", "fill_ts_us", "time_to_fill_s", "fill_price", "exec_price", "fee_bps",
          "is_bps", "price_improvement_bps", "adverse_selection_bps", "depth_short")


def simulate(book: BookSnapshots, trades: Trades | None, decision_ts_us: np.ndarray, side: np.ndarray,
             limit_px: np.ndarray, qty: np.ndarray, cfg: FillConfig, venue: VenueConfig, *, horizon_s: float,
             adverse_horizon_s: float) -> Outcomes:
    """Simulate D x K limit orders on ``venue`` (its fees) with ``cfg``'s fill rules and latency model, over the
    decisions' reward window (``horizon_s``, ``adverse_horizon_s``, s; see the module docstring).
    ``limit_px`` is (D, K) or (D,)."""
    ts = np.asarray(decision_ts_us, dtype=np.int64)
    px = np.asarray(limit_px, dtype=np.float64)
    px = px[:, None] if px.ndim == 1 else px
    d, k = px.shape
    sd = np.asarray(side, dtype=np.float64).reshape(d)
    q = np.broadcast_to(np.asarray(qty, dtype=np.float64).reshape(d, -1), (d, k)).copy()
    _check_orders(book, ts, sd, px, q, horizon_s)
    book_only = trades is None
    t_ts = np.zeros(0, np.int64) if book_only else trades.ts_us
    t_px = np.zeros(0) if book_only else trades.price
    t_amt = np.zeros(0) if book_only else trades.amount
    out = _simulate_numba(
        book.ts_us, book.mid, book.bid_px, book.bid_sz, book.ask_px, book.ask_sz, t_ts, t_px, t_amt, book_only,
        ts, sd, px, q, cfg.latency_model(ts, venue), int(horizon_s * US_PER_S),
        int(adverse_horizon_s * US_PER_S), cfg.fill_rule is FillRule.TOUCH, QUEUE_CODE[cfg.queue_model],
        venue.taker_fee_bps, venue.maker_fee_bps, int(cfg.impact_window_s * US_PER_S),
    )
    arrival_mid, *arrays = out
    return Outcomes(arrival_mid, *(a.reshape(d, k) for a in arrays), book_only=book_only)


def _check_orders(book, ts, sd, px, q, horizon_s) -> None:
    if len(ts) and ts.min() < book.ts_us[0]:
        i = int(np.argmin(ts))
        raise ValueError(f"decision {i} at ts_us={ts[i]} is before the first book snapshot ({book.ts_us[0]})")
    late = ts + int(horizon_s * US_PER_S) > book.ts_us[-1]
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise ValueError(f"decision {i} at ts_us={ts[i]}: its horizon ({horizon_s:g} s) ends after the last book "
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
def shortfall_bps(side, exec_px, mid0, fee_bps):  # pragma: no cover - numba
    """Implementation shortfall in bps of the arrival mid ``mid0`` (a cost: positive is worse) of executing at
    ``exec_px`` (USD, average over fills and cleanup) on ``side`` (+1 buy, -1 sell), fees ``fee_bps`` included: the
    project's one shortfall formula (simulator, reference loop, sliced baselines). Scalars or arrays."""
    return side * (exec_px - mid0) / mid0 * 1e4 + fee_bps


@numba.njit(cache=True)
def price_improvement_bps(side, fill_px, mid0):  # pragma: no cover - numba
    """Price improvement in bps of the arrival mid ``mid0`` (good positive) of a fill at ``fill_px`` (USD) on
    ``side`` (+1 buy, -1 sell): the project's one improvement formula (simulator, reference loop, sliced
    baselines). Scalars or arrays."""
    return side * (mid0 - fill_px) / mid0 * 1e4


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
def _impact_price(level_px, level_sz, qty, sign, b_ts, b_mid, i_book, t_us, t_ts, t_amt,
                  window_us):  # pragma: no cover - numba
    """Average price (USD) of a market order of ``qty`` against snapshot ``i_book``'s levels at ``t_us``, the part
    beyond the visible depth at the impact price (module docstring, rule 6), never better than the last level
    taken."""
    cost, left, last = _walk(level_px, level_sz, qty, sign * np.inf, sign)
    sigma_bps = _realized_vol_bps(b_ts, b_mid, i_book, t_us, window_us)
    volume = _traded_volume(t_ts, t_amt, t_us, window_us)
    rest = b_mid[i_book] * (1 + sign * _impact_bps(qty, sigma_bps, volume, level_px, level_sz) / 1e4)
    if not np.isnan(last) and sign * rest < sign * last:
        rest = last
    return (cost + left * rest) / qty


@numba.njit(cache=True, inline="always")
def _running_extreme(ev_px, sign):  # pragma: no cover - numba
    """``sign * price`` of the events, running minimum (non-increasing): the best price for a resting order so far
    (NaN, an empty level, is skipped)."""
    run = np.empty(len(ev_px))
    cur = np.inf
    for j in range(len(ev_px)):
        v = sign * ev_px[j]
        if v < cur:
            cur = v
        run[j] = cur
    return run


@numba.njit(cache=True, inline="always")
def _first_reaching(run, target, inclusive):  # pragma: no cover - numba
    """Index of the first ``run[j] < target`` (``<=`` when ``inclusive``) by binary search; ``len(run)`` if none."""
    a, b = 0, len(run)
    while a < b:
        h = (a + b) // 2
        hit = run[h] <= target if inclusive else run[h] < target  # (LLVM unswitches the choice out of the loop)
        if hit:
            b = h
        else:
            a = h + 1
    return a


@numba.njit(cache=True)
def _level_lots(own_px, own_sz, p, sign):  # pragma: no cover - numba
    """The capped queue's view of one snapshot's own side (best first, NaN-padded): lots at ``p``; 0 if ``p`` is
    inside the visible range but not a level; ``NO_CAP`` if ``p`` is beyond the deepest visible level or the side
    is empty."""
    if sign * own_px[0] < sign * p:  # inside the spread (a NaN best compares False: an empty side falls through)
        return np.int64(0)
    deepest = own_px[-1]
    if not np.isnan(deepest) and sign * p < sign * deepest:  # beyond a full side's deepest level: O(1)
        return NO_CAP
    for j in range(len(own_px)):
        lp = own_px[j]
        if np.isnan(lp):
            break
        if lp == p:
            return _lots(own_sz[j])
        if sign * lp < sign * p:  # levels are best first: p lies in a gap between two levels
            return np.int64(0)
    return NO_CAP


@numba.njit(cache=True)
def _touch_queue_fill_ts(j_trade_k, t_extra, prices, sign, run, ev_ts, ev_px, ev_amt, touch, queue, b_ts,
                         opp_px_all, own_px_all, own_sz_all, i_first, i_last):  # pragma: no cover - numba
    """For one decision's candidate ``prices``: into ``j_trade_k`` the index of the first trade through each (of
    ``ev_*``, the trades after placement), into ``t_extra`` the time a resting order at it is filled by the
    optional rules before that trade (``NEVER_US`` if not): ``touch``, a snapshot ``i_first..i_last`` whose
    opposite best reaches it; ``queue`` (1 conservative, 2 capped), the trade printing at it that exceeds the
    queue ahead (placement book: snapshot ``i_first - 1``). ``*_all``: (N, L) levels of the order's opposite and
    own sides. Kept out of the hot loop so that the default rule's loop stays lean."""
    sn_ts = b_ts[i_first:i_last + 1] if touch else b_ts[:0]
    run_sn = _running_extreme(opp_px_all[i_first:i_last + 1, 0] if touch else opp_px_all[:0, 0], sign)
    own_px, own_sz = own_px_all[i_first - 1], own_sz_all[i_first - 1]
    for c in range(len(prices)):
        p = prices[c]
        j_trade = _first_reaching(run, sign * p, False)
        j_trade_k[c] = j_trade
        t_trade = ev_ts[j_trade] if j_trade < len(ev_ts) else NEVER_US
        t_fill = t_trade
        j_sn = _first_reaching(run_sn, sign * p, True)
        if j_sn < len(sn_ts) and sn_ts[j_sn] < t_fill:
            t_fill = sn_ts[j_sn]
        if queue > 0:
            ahead = np.int64(0)
            for j in range(len(own_px)):
                if own_px[j] == p:
                    ahead = _lots(own_sz[j])
                    break
            # the trades printing at p before the fill found so far, from the first at or through p (none before
            # it prints at p); capped: each snapshot's size at p caps the queue left, after the trades of its
            # time; a queue left at 0 cannot be capped lower
            n_q = j_trade if t_fill == t_trade else np.searchsorted(ev_ts, t_fill, side="left")
            i_snap = i_first
            for j in range(_first_reaching(run, sign * p, True), n_q):
                if ev_px[j] == p:
                    t = ev_ts[j]
                    if queue == 2 and ahead > 0:
                        while i_snap <= i_last and b_ts[i_snap] < t:
                            ahead = min(ahead, _level_lots(own_px_all[i_snap], own_sz_all[i_snap], p, sign))
                            i_snap += 1
                    ahead -= _lots(ev_amt[j])
                    if ahead < 0:
                        t_fill = t
                        break
        t_extra[c] = t_fill


@numba.njit(cache=True)
def _price_impact(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_amt, ts, sd, px, q, latency_us, horizon_us,
                  adverse_us, impact_us, arrival, marketable, cleanup, short, fill_ts, fill_px, exec_px, fee, is_bps,
                  pi, adv):  # pragma: no cover - numba
    """Pass 2 (rare orders, kept out of the hot loop of pass 1: ``short`` with ``exec_px`` NaN): the market order that
    goes beyond the visible book by the impact model, on placement (a market order) or at the horizon (a cleanup,
    of the whole order or of a split order's remainder), and the fields that follow from it."""
    k = px.shape[1]
    last_ts = b_ts[-1]
    for o in np.flatnonzero(short):
        if not np.isnan(exec_px[o]):  # a split order filled, or cleaned up within the visible book: priced
            continue
        i, c = o // k, o % k
        s, mid0, qty = sd[i], arrival[i], q[i, c]
        cost_take, left = 0.0, qty  # the part taken on placement (USD) and the rest (coins)
        if cleanup[o]:
            t_x = ts[i] + horizon_us
            if marketable[o]:  # a split order (rule 3): its taker part again, as pass 1 took it
                ip = np.searchsorted(b_ts, ts[i] + latency_us[i], side="right") - 1
                if s > 0:
                    cost_take, left, _ = _walk(ask_px[ip], ask_sz[ip], qty, px[i, c], s)
                else:
                    cost_take, left, _ = _walk(bid_px[ip], bid_sz[ip], qty, px[i, c], s)
        else:
            t_x = ts[i] + latency_us[i]
        ib = np.searchsorted(b_ts, t_x, side="right") - 1
        if s > 0:
            price = _impact_price(ask_px[ib], ask_sz[ib], left, s, b_ts, b_mid, ib, t_x, t_ts, t_amt, impact_us)
        else:
            price = _impact_price(bid_px[ib], bid_sz[ib], left, s, b_ts, b_mid, ib, t_x, t_ts, t_amt, impact_us)
        exec_px[o] = price if left == qty else (cost_take + left * price) / qty
        is_bps[o] = shortfall_bps(s, exec_px[o], mid0, fee[o])
        if not cleanup[o]:
            fill_px[o] = price
            pi[o] = price_improvement_bps(s, price, mid0)
            ta = fill_ts[o] + adverse_us
            if ta <= last_ts:
                adv[o] = s * (price - b_mid[np.searchsorted(b_ts, ta, side="right") - 1]) / mid0 * 1e4


@numba.njit(cache=True)
def _simulate_numba(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_px, t_amt, book_only,
                    ts, sd, px, q, latency_us, horizon_us, adverse_us, touch, queue, taker_bps, maker_bps,
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
    book_touch = touch and not book_only  # snapshot fills beside trade fills
    if book_only:
        queue = 0  # no trades to read
    extra = book_touch or queue > 0  # fills beside the first trade (or book-only snapshot) through p
    j_trade_k = np.empty(k, np.int64)  # per candidate of one decision (extra): the first trade through p
    t_extra = np.empty(k, np.int64)  # and the first fill by the extra rules before it
    for i in range(d):
        t0 = ts[i]
        s = sd[i]
        i0 = np.searchsorted(b_ts, t0, side="right") - 1
        mid0 = b_mid[i0]
        arrival[i] = mid0
        tp = t0 + latency_us[i]
        th = t0 + horizon_us
        ip = np.searchsorted(b_ts, tp, side="right") - 1
        ih = np.searchsorted(b_ts, th, side="right") - 1
        if s > 0:
            opp_px_all, opp_sz_all, own_px_all, own_sz_all = ask_px, ask_sz, bid_px, bid_sz
        else:
            opp_px_all, opp_sz_all, own_px_all, own_sz_all = bid_px, bid_sz, ask_px, ask_sz
        # the running extreme of the events that can fill a resting order, after placement, up to the horizon:
        # trades printing through p, or (book-only) snapshots whose opposite best reaches it
        if book_only:
            lo, hi = ip + 1, ih + 1
            ev_ts = b_ts[lo:hi]
            ev_px = opp_px_all[lo:hi, 0]
            ev_amt = t_amt[:0]  # no trades
        else:
            lo = np.searchsorted(t_ts, tp, side="right")
            hi = np.searchsorted(t_ts, th, side="right")
            ev_ts = t_ts[lo:hi]
            ev_px = t_px[lo:hi]
            ev_amt = t_amt[lo:hi]
        m = len(ev_px)
        run = _running_extreme(ev_px, s)
        if extra:
            _touch_queue_fill_ts(j_trade_k, t_extra, px[i], s, run, ev_ts, ev_px, ev_amt, book_touch, queue, b_ts,
                                 opp_px_all, own_px_all, own_sz_all, ip + 1, ih)
        opp_px, opp_sz = opp_px_all[ip], opp_sz_all[ip]
        for c in range(k):
            o = i * k + c
            p = px[i, c]
            qty = q[i, c]
            rest, cost_take = qty, 0.0  # coins left to rest; USD paid for the part taken on placement
            best_opp = opp_px[0]
            if not np.isnan(best_opp) and s * p >= s * best_opp:  # marketable on placement
                cost, left, _ = _walk(opp_px, opp_sz, qty, p, s)
                marketable[o] = True
                if left <= 1e-12:
                    filled[o], rest = True, 0.0
                    fill_ts[o], fill_px[o], fee[o] = tp, cost / qty, taker_bps
                elif math.isinf(p):  # a market order beyond the visible book: pass 2
                    filled[o], short[o], rest = True, True, 0.0
                    fill_ts[o], fee[o] = tp, taker_bps
                else:  # a limit order beyond the visible book within its limit: the remainder rests (rule 3)
                    short[o], rest, cost_take = True, left, cost
            if rest > 0:
                target = s * p
                j_fill = j_trade_k[c] if extra else _first_reaching(run, target, book_only)
                t_fill = ev_ts[j_fill] if j_fill < m else NEVER_US
                if extra:
                    t_fill = min(t_fill, t_extra[c])
                if t_fill < NEVER_US:
                    filled[o] = True
                    fill_ts[o] = t_fill
                    if rest == qty:
                        fill_px[o], fee[o] = p, maker_bps
                    else:
                        fill_px[o] = (cost_take + rest * p) / qty
                        fee[o] = ((qty - rest) * taker_bps + rest * maker_bps) / qty
                else:
                    cleanup[o], fee[o], fill_ts[o] = True, taker_bps, th
                    cost, left, _ = _walk(opp_px_all[ih], opp_sz_all[ih], rest, s * np.inf, s)
                    if left <= 1e-12:
                        exec_px[o] = cost / qty if rest == qty else (cost_take + cost) / qty
                    else:  # beyond the visible book: pass 2
                        short[o], exec_px[o] = True, np.nan
            if filled[o]:
                exec_px[o] = fill_px[o]
                ttf[o] = (fill_ts[o] - t0) / 1e6
                pi[o] = price_improvement_bps(s, fill_px[o], mid0)
                ta = fill_ts[o] + adverse_us
                if ta <= last_ts:
                    ia = np.searchsorted(b_ts, ta, side="right") - 1
                    adv[o] = s * (fill_px[o] - b_mid[ia]) / mid0 * 1e4
            is_bps[o] = shortfall_bps(s, exec_px[o], mid0, fee[o])
    if short.any():
        _price_impact(b_ts, b_mid, bid_px, bid_sz, ask_px, ask_sz, t_ts, t_amt, ts, sd, px, q, latency_us,
                      horizon_us, adverse_us, impact_us, arrival, marketable, cleanup, short, fill_ts, fill_px,
                      exec_px, fee, is_bps, pi, adv)
    return arrival, filled, marketable, cleanup, fill_ts, ttf, fill_px, exec_px, fee, is_bps, pi, adv, short
