"""Candidate orders scored per second by the fill simulator, and its speedup over the reference loop.

    .venv/bin/python benchmarks/bench_fills.py [--repeats 5] [--offsets 64] [--fill-rule touch] [--queue-model capped]

A synthetic BTC day in memory (86,400 1-s snapshots, ~400k trades), decisions every 60 s (1,440, alternating
buy/sell) x K candidate offsets from -50 to +5 bps, horizon 300 s, the default fill rule and queue model unless
given, one core (numba, no parallelism). The fast path is timed after a JIT warm-up (median of repeats); the
reference loop runs on a subset in the same process. Last line: ``RESULT fill_orders_per_s=<n> speedup_vs_loop=<x>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.synthetic import simulate_market
from hyperdapo.data.venues import Instrument, load_venue
from hyperdapo.execution.config import FillConfig
from hyperdapo.execution.fills import simulate
from hyperdapo.execution.reference import reference_simulate
from hyperdapo.features.config import DecisionConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--offsets", type=int, default=64)
    ap.add_argument("--ref-decisions", type=int, default=12)
    ap.add_argument("--fill-rule", help="execution.fill_rule (default: FillConfig's)")
    ap.add_argument("--queue-model", help="execution.queue_model (default: FillConfig's)")
    args = ap.parse_args()
    asset = load_asset("btc")
    market = simulate_market(asset, SyntheticConfig(n_days=1))
    book, trades = market.book, market.trades
    rules = {"fill_rule": args.fill_rule, "queue_model": args.queue_model}
    cfg, venue = FillConfig(**{k: v for k, v in rules.items() if v is not None}), load_venue("hyperliquid")
    ts = np.arange(book.ts_us[0] + 60_000_000, book.ts_us[-1] - 400_000_000, 60_000_000)
    side = np.where(np.arange(len(ts)) % 2 == 0, 1, -1)
    mid = book.mid[np.searchsorted(book.ts_us, ts, side="right") - 1]
    offsets = np.linspace(-50, 5, args.offsets)
    px = Instrument(venue, asset).round_to_tick(mid[:, None] * (1 + side[:, None] * offsets[None, :] / 1e4))
    qty = np.full(len(ts), 0.1)
    window = {"horizon_s": DecisionConfig.horizon_s, "adverse_horizon_s": DecisionConfig.adverse_horizon_s}
    simulate(book, trades, ts[:2], side[:2], px[:2], qty[:2], cfg, venue, **window)  # JIT warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        simulate(book, trades, ts, side, px, qty, cfg, venue, **window)
        times.append(time.perf_counter() - t0)
    n_orders = px.size
    fast_per_s = n_orders / statistics.median(times)
    sub = slice(0, args.ref_decisions)
    cols = slice(0, 4)
    t0 = time.perf_counter()
    reference_simulate(book, trades, ts[sub], side[sub], px[sub, cols], qty[sub], cfg, venue, **window)
    ref_per_s = px[sub, cols].size / (time.perf_counter() - t0)
    print(f"{len(ts)} decisions x {args.offsets} offsets = {n_orders} orders, {len(trades)} trades, "
          f"horizon {DecisionConfig.horizon_s:g} s, "
          f"fill_rule={cfg.fill_rule.value}, queue_model={cfg.queue_model.value}")
    med_ms = statistics.median(times) * 1e3
    print(f"fast path: median {med_ms:.1f} ms over {args.repeats} -> {fast_per_s:,.0f} orders/s")
    print(f"reference loop: {px[sub, cols].size} orders -> {ref_per_s:,.1f} orders/s")
    print(f"RESULT fill_orders_per_s={fast_per_s:.0f} speedup_vs_loop={fast_per_s / ref_per_s:.0f}")


if __name__ == "__main__":
    main()
