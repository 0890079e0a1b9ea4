"""The slow, obvious reference of :func:`hyperdapo.execution.fills.simulate`: one order at a time, scanning
the tape from placement to the horizon. Same rules (see :mod:`hyperdapo.execution.fills`); tests check that
the fast path agrees with it on every field."""

from __future__ import annotations

import bisect
import math

import numpy as np

from hyperdapo.data.config import VenueConfig
from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.execution.config import FillConfig, FillRule, QueueModel
from hyperdapo.execution.fills import FIELDS, LOTS_PER_COIN, Outcomes, price_improvement_bps, shortfall_bps


def _asof(ts_list, t) -> int:
    i = -1
    for j, v in enumerate(ts_list):
        if v <= t:
            i = j
        else:
            break
    return i


def _impact_bps(book: BookSnapshots, trades: Trades | None, i: int, t_us: int, levels: list, qty: float,
                cfg: FillConfig) -> float:
    """``sigma_bps * sqrt(qty / V)`` over the window before ``t_us`` (snapshot ``i``), as rule 6 of fills.py."""
    w = int(cfg.impact_window_s * 1e6)
    ts, mid = book.ts_us.tolist(), book.mid.tolist()
    r2 = [math.log(mid[j] / mid[j - 1]) ** 2 for j in range(1, i + 1) if ts[j - 1] > t_us - w]
    sigma_bps = math.sqrt(sum(r2)) * 1e4
    volume = 0.0 if trades is None else sum(a for t, a in zip(trades.ts_us.tolist(), trades.amount.tolist(),
                                                              strict=True) if t_us - w < t <= t_us)
    visible = sum(z for lp, z in levels if not math.isnan(lp))
    v = volume if volume > 0 else visible if visible > 0 else qty
    return sigma_bps * math.sqrt(qty / v)


def _levels(book: BookSnapshots, i: int, s: int, own: bool) -> list[tuple[float, float]]:
    """Snapshot ``i``'s (price, size) levels, best first: the side a side-``s`` order takes (``own``: rests on)."""
    asks = (s > 0) != own
    return list(zip(book.ask_px[i], book.ask_sz[i], strict=True)) if asks else \
        list(zip(book.bid_px[i], book.bid_sz[i], strict=True))


def _take(levels: list, s: int, qty: float, limit: float) -> tuple[float, float, float]:
    """Take ``qty`` from ``levels`` within ``limit``: (cost in USD, coins left, last price taken or NaN)."""
    left, cost, last = qty, 0.0, math.nan
    for lp, lz in levels:
        if math.isnan(lp) or s * lp > s * limit or left <= 1e-12:
            break
        take = min(left, lz)
        cost, left, last = cost + take * lp, left - take, lp
    return cost, left, last


def _market_cost(book: BookSnapshots, trades: Trades | None, i: int, t_us: int, s: int, qty: float,
                 cfg: FillConfig) -> tuple[float, bool]:
    """Cost (USD) of a market order of ``qty`` against snapshot ``i`` at ``t_us``, and whether it went beyond the
    visible levels; the rest at the impact price (rule 6), no better than the last level taken."""
    levels = _levels(book, i, s, own=False)
    cost, left, last = _take(levels, s, qty, s * math.inf)
    if left <= 1e-12:
        return cost, False
    rest = float(book.mid[i]) * (1 + s * _impact_bps(book, trades, i, t_us, levels, qty, cfg) / 1e4)
    return cost + left * (rest if math.isnan(last) else s * max(s * rest, s * last)), True


def _lots_at(levels: list, p: float) -> int:
    return next((round(z * LOTS_PER_COIN) for lp, z in levels if lp == p), 0)


def _capped_view(levels: list, s: int, p: float) -> int | None:
    """Lots at ``p`` in one snapshot for the capped queue: None when ``p`` is beyond its deepest visible level or
    the side is empty (unknown), 0 when ``p`` is inside the visible range but not a level."""
    prices = [lp for lp, _ in levels if not math.isnan(lp)]
    if not prices or s * p < s * prices[-1]:
        return None
    return _lots_at(levels, p)


def _resting_fill_ts(book: BookSnapshots, trades: Trades | None, ip: int, ih: int, tp: int, th: int, s: int,
                     p: float, cfg: FillConfig) -> int | None:
    """The time a side-``s`` order resting at ``p`` from ``tp`` fills (rule 4), or None by ``th``: every trade and
    snapshot after placement in time order, a trade before the snapshot of the same time."""
    events = [(int(book.ts_us[j]), 1, j) for j in range(ip + 1, ih + 1)]
    if trades is not None:  # the trades in (tp, th]
        t_list = trades.ts_us.tolist()
        events += [(t_list[j], 0, j) for j in range(bisect.bisect_right(t_list, tp), bisect.bisect_right(t_list, th))]
    touch = trades is None or cfg.fill_rule is FillRule.TOUCH
    ahead = _lots_at(_levels(book, ip, s, own=True), p)
    for t, kind, j in sorted(events):
        if kind == 1:
            best = book.ask_px[j, 0] if s > 0 else book.bid_px[j, 0]
            if touch and s * best <= s * p:
                return t
            view = _capped_view(_levels(book, j, s, own=True), s, p)
            if cfg.queue_model is QueueModel.CAPPED and view is not None:
                ahead = min(ahead, view)
        else:
            price = float(trades.price[j])
            if s * price < s * p:
                return t
            if cfg.queue_model is not QueueModel.NONE and price == p:
                ahead -= round(float(trades.amount[j]) * LOTS_PER_COIN)
                if ahead < 0:
                    return t
    return None


def reference_order(book: BookSnapshots, trades: Trades | None, t0: int, s: int, p: float, qty: float,
                    cfg: FillConfig, venue: VenueConfig, latency_us: int, horizon_s: float,
                    adverse_horizon_s: float) -> dict:
    ts = book.ts_us.tolist()
    i0 = _asof(ts, t0)
    mid0 = float(book.mid[i0])
    tp, th = t0 + latency_us, t0 + int(horizon_s * 1e6)
    ip, ih = _asof(ts, tp), _asof(ts, th)
    best_opp = book.ask_px[ip, 0] if s > 0 else book.bid_px[ip, 0]
    r = dict(filled=False, marketable=False, cleanup=False, fill_ts_us=0, time_to_fill_s=math.nan,
             fill_price=math.nan, exec_price=math.nan, fee_bps=math.nan, price_improvement_bps=math.nan,
             adverse_selection_bps=math.nan, depth_short=False)
    rest, cost = qty, 0.0  # coins left to rest, USD paid on placement
    if not math.isnan(best_opp) and s * best_opp <= s * p:  # marketable
        r["marketable"] = True
        if math.isinf(p):  # a market order: all of it now
            cost, r["depth_short"] = _market_cost(book, trades, ip, tp, s, qty, cfg)
            rest = 0.0
        else:  # a limit order: what the book holds within p now, the rest rests (rule 3)
            cost, left, _ = _take(_levels(book, ip, s, own=False), s, qty, p)
            r["depth_short"] = left > 1e-12
            rest = left if r["depth_short"] else 0.0
    taken = qty - rest
    if rest == 0:
        r.update(filled=True, fill_ts_us=tp, fill_price=cost / qty, fee_bps=venue.taker_fee_bps)
    else:
        t_fill = _resting_fill_ts(book, trades, ip, ih, tp, th, s, p, cfg)
        if t_fill is not None:
            r.update(filled=True, fill_ts_us=t_fill, fill_price=(cost + rest * p) / qty,
                     fee_bps=(taken * venue.taker_fee_bps + rest * venue.maker_fee_bps) / qty)
        else:
            cleanup_cost, short = _market_cost(book, trades, ih, th, s, rest, cfg)
            r.update(cleanup=True, exec_price=(cost + cleanup_cost) / qty, fee_bps=venue.taker_fee_bps,
                     fill_ts_us=th, depth_short=r["depth_short"] or short)
    if r["filled"]:
        r["exec_price"] = r["fill_price"]
        r["time_to_fill_s"] = (r["fill_ts_us"] - t0) / 1e6
        r["price_improvement_bps"] = price_improvement_bps(s, r["fill_price"], mid0)
        ta = r["fill_ts_us"] + int(adverse_horizon_s * 1e6)
        if ta <= ts[-1]:
            r["adverse_selection_bps"] = s * (r["fill_price"] - float(book.mid[_asof(ts, ta)])) / mid0 * 1e4
    r["is_bps"] = shortfall_bps(s, r["exec_price"], mid0, r["fee_bps"])
    r["arrival_mid"] = mid0
    return r


def reference_simulate(book, trades, decision_ts_us, side, limit_px, qty, cfg: FillConfig, venue: VenueConfig, *,
                       horizon_s: float, adverse_horizon_s: float) -> Outcomes:
    px = np.atleast_2d(np.asarray(limit_px, dtype=np.float64))
    d, k = px.shape
    q = np.broadcast_to(np.asarray(qty, dtype=np.float64).reshape(d, -1), (d, k))
    lat = cfg.latency_model(np.asarray(decision_ts_us, dtype=np.int64), venue)
    rows = [[reference_order(book, trades, int(decision_ts_us[i]), int(side[i]), float(px[i, c]), float(q[i, c]), cfg,
                             venue, int(lat[i]), horizon_s, adverse_horizon_s) for c in range(k)] for i in range(d)]
    cols = {f: np.array([[r[f] for r in row] for row in rows]) for f in FIELDS}
    return Outcomes(np.array([row[0]["arrival_mid"] for row in rows]), **cols, book_only=trades is None)
