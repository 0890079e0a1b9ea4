"""The slow, obvious reference of :func:`hyperdapo.execution.fills.simulate`: one order at a time, scanning
the tape from placement to the horizon. Same rules (see :mod:`hyperdapo.execution.fills`); tests check that
the fast path agrees with it on every field."""

from __future__ import annotations

import math

import numpy as np

from hyperdapo.data.config import VenueConfig
from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.execution.config import FillConfig, QueueModel
from hyperdapo.execution.fills import FIELDS, LOTS_PER_COIN, Outcomes


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


def _taker_price(book: BookSnapshots, trades: Trades | None, i: int, t_us: int, s: int, qty: float, limit: float,
                 cfg: FillConfig) -> tuple[float, bool]:
    """Average price of a taker order against snapshot ``i`` at ``t_us`` within ``limit``; the rest beyond the
    visible depth at the impact price, no better than the last level taken, no worse than ``limit``."""
    levels = list(zip(book.ask_px[i], book.ask_sz[i], strict=True)) if s > 0 else \
        list(zip(book.bid_px[i], book.bid_sz[i], strict=True))
    left, cost, last = qty, 0.0, math.nan
    for lp, lz in levels:
        if math.isnan(lp) or s * lp > s * limit or left <= 1e-12:
            break
        take = min(left, lz)
        cost, left, last = cost + take * lp, left - take, lp
    if left <= 1e-12:
        return cost / qty, False
    rest = float(book.mid[i]) * (1 + s * _impact_bps(book, trades, i, t_us, levels, qty, cfg) / 1e4)
    rest = rest if math.isnan(last) else s * max(s * rest, s * last)
    return (cost + left * s * min(s * rest, s * limit)) / qty, True


def reference_order(book: BookSnapshots, trades: Trades | None, t0: int, s: int, p: float, qty: float,
                    cfg: FillConfig, venue: VenueConfig) -> dict:
    ts = book.ts_us.tolist()
    i0 = _asof(ts, t0)
    mid0 = float(book.mid[i0])
    tp, th = t0 + int(venue.latency_ms * 1000), t0 + int(cfg.horizon_s * 1e6)
    ip, ih = _asof(ts, tp), _asof(ts, th)
    best_opp = book.ask_px[ip, 0] if s > 0 else book.bid_px[ip, 0]
    own = list(zip(book.bid_px[ip], book.bid_sz[ip], strict=True)) if s > 0 else \
        list(zip(book.ask_px[ip], book.ask_sz[ip], strict=True))
    r = dict(filled=False, marketable=False, cleanup=False, fill_ts_us=0, time_to_fill_s=math.nan,
             fill_price=math.nan, exec_price=math.nan, fee_bps=math.nan, price_improvement_bps=math.nan,
             adverse_selection_bps=math.nan, depth_short=False)
    through = (lambda x: x <= p) if s > 0 else (lambda x: x >= p)  # a price a buy (sell) would accept
    if not math.isnan(best_opp) and through(best_opp):
        price, short = _taker_price(book, trades, ip, tp, s, qty, p, cfg)
        r.update(filled=True, marketable=True, fill_ts_us=tp, fill_price=price, fee_bps=venue.taker_fee_bps,
                 depth_short=short)
    elif trades is None:
        for j in range(ip + 1, ih + 1):
            best = book.ask_px[j, 0] if s > 0 else book.bid_px[j, 0]
            if through(best):
                r.update(filled=True, fill_ts_us=int(ts[j]), fill_price=p, fee_bps=venue.maker_fee_bps)
                break
    else:
        ahead_lots = next((round(z * LOTS_PER_COIN) for lp, z in own if lp == p), 0)
        lots_at_p = 0
        for t, price, amount in zip(trades.ts_us.tolist(), trades.price.tolist(), trades.amount.tolist(), strict=True):
            if t <= tp:
                continue
            if t > th:
                break
            strictly = price < p if s > 0 else price > p
            at_p = cfg.queue_model is QueueModel.CONSERVATIVE and price == p
            if at_p:
                lots_at_p += round(amount * LOTS_PER_COIN)
            if strictly or (at_p and lots_at_p > ahead_lots):
                r.update(filled=True, fill_ts_us=t, fill_price=p, fee_bps=venue.maker_fee_bps)
                break
    if r["filled"]:
        r["exec_price"] = r["fill_price"]
        r["time_to_fill_s"] = (r["fill_ts_us"] - t0) / 1e6
        r["price_improvement_bps"] = s * (mid0 - r["fill_price"]) / mid0 * 1e4
        ta = r["fill_ts_us"] + int(cfg.adverse_horizon_s * 1e6)
        if ta <= ts[-1]:
            r["adverse_selection_bps"] = s * (r["fill_price"] - float(book.mid[_asof(ts, ta)])) / mid0 * 1e4
    else:
        price, short = _taker_price(book, trades, ih, th, s, qty, s * math.inf, cfg)
        r.update(cleanup=True, exec_price=price, depth_short=short, fee_bps=venue.taker_fee_bps, fill_ts_us=th)
    r["is_bps"] = s * (r["exec_price"] - mid0) / mid0 * 1e4 + r["fee_bps"]
    r["arrival_mid"] = mid0
    return r


def reference_simulate(book, trades, decision_ts_us, side, limit_px, qty, cfg: FillConfig,
                       venue: VenueConfig) -> Outcomes:
    px = np.atleast_2d(np.asarray(limit_px, dtype=np.float64))
    d, k = px.shape
    q = np.broadcast_to(np.asarray(qty, dtype=np.float64).reshape(d, -1), (d, k))
    rows = [[reference_order(book, trades, int(decision_ts_us[i]), int(side[i]), float(px[i, c]), float(q[i, c]),
                             cfg, venue) for c in range(k)] for i in range(d)]
    cols = {f: np.array([[r[f] for r in row] for row in rows]) for f in FIELDS}
    return Outcomes(np.array([row[0]["arrival_mid"] for row in rows]), **cols, book_only=trades is None)
