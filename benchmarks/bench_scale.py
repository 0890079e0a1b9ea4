"""Peak memory and speed of day-by-day runs (:mod:`hyperdapo.execution.daily`, ``tape``) on 1, 4 and 16 synthetic days.

    .venv/bin/python benchmarks/bench_scale.py [--days 1 4 16] [--snapshot-ms 5000] [--work benchmarks/.out/scale]

The market: a 16-day synthetic BTC market with the default parameters except a book snapshot every 5 s instead of
1 s (25 levels a side, about 2.5 trades per second; writing 16 days of 1-s CSV.gz would take most of an hour). It
is generated once into ``--work`` (reused when its files exist) and parsed into the market cache there, in a
subprocess of its own, which also builds the first day once so that numba's compiled kernels are on disk: neither
generation nor compilation counts in the measured peaks.

Each build runs in a fresh subprocess on the first 1, 4 and 16 days: decisions every 60 s, their features, the
rewards of the offset grid (-50, -30, -15, -5, 0, +5 bps) with the task's simulator call, one parquet table a day
written to an empty directory; then what a run does with them (``data.day_by_day=true``): the task of those days
(:func:`~hyperdapo.execution.daily.day_task`: prompts of every decision, two day windows in memory at most) scores
one order per decision of every split (a -5 bps limit) and a market order per decision, as a backtest does. A child
reports its resident memory after the imports (VmRSS), its peak over build and scoring (VmHWM) and decisions per
second of wall time (the build only) and of the scoring. Last line:
``RESULT peak_rss_16d_over_1d=<x> decisions_per_s=<y>`` (``y`` from the largest run); goal ``x <= 1.5``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hyperdapo.data.assets import load_asset
from hyperdapo.data.cache import load_cached
from hyperdapo.data.config import DataConfig, SyntheticConfig
from hyperdapo.data.readers import Kind
from hyperdapo.data.sources import market_files
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.daily import DaySpec, build_days, day_task
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.prompts.config import PromptConfig

ASSET = "btc"


def data_config(work: Path, n_days: int, snapshot_ms: int) -> DataConfig:
    """The synthetic market's files and parsed-file cache under ``work``."""
    return DataConfig(raw_dir=str(work / "raw"), cache_dir=str(work / "cache"),
                      synthetic=SyntheticConfig(n_days=n_days, snapshot_interval_ms=snapshot_ms))


def prepare(cfg: DataConfig) -> None:
    """Write the synthetic files (if absent), parse each into the market cache and compile the kernels."""
    files = market_files(load_asset(ASSET), cfg)
    for path in files["book"]:
        load_cached(path, None, cfg.cache_dir)
    for path in files["trades"]:
        load_cached(path, Kind.TRADES, cfg.cache_dir)
    build(cfg, 1)


def memory_mib(field: str) -> float:
    """This process's ``field`` of /proc/self/status (VmRSS: resident now, VmHWM: peak), MiB."""
    line = next(s for s in Path("/proc/self/status").read_text().splitlines() if s.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def build(cfg: DataConfig, n_days: int) -> dict[str, float]:
    """The day-by-day build of the first ``n_days`` days into a fresh directory: decisions, seconds, memory."""
    asset = load_asset(ASSET)
    files = market_files(asset, cfg)
    files = {"book": files["book"][:n_days], "incremental": [], "trades": files["trades"][:n_days]}
    spec = DaySpec(asset, load_venue("hyperliquid"), DecisionConfig(), FeatureConfig(), FillConfig(), RewardConfig())
    rss_mib = memory_mib("VmRSS")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        paths = build_days(files, spec, out, cfg.cache_dir)
        seconds = time.perf_counter() - t0
        decisions = sum(pq.read_metadata(p).num_rows for p in paths)
        t0 = time.perf_counter()
        task = day_task(files, spec, PromptConfig(), out, cfg.cache_dir)
        idx = np.arange(len(task.decisions))
        task.score_offsets(idx, np.full((len(idx), 1), -5.0))
        task.score_prices(idx, task.decisions.side[idx].astype(float)[:, None] * np.inf)
        score_seconds = time.perf_counter() - t0
    return {"days": n_days, "decisions": decisions, "seconds": seconds, "score_seconds": score_seconds,
            "rss_after_imports_mib": rss_mib, "peak_rss_mib": memory_mib("VmHWM")}


def child(args: list[str]) -> dict[str, float] | None:
    """Run this script with ``args`` in a fresh process; its last stdout line (JSON) if any."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1]) if out.strip() else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--snapshot-ms", type=int, default=5000)
    ap.add_argument("--work", type=Path, default=Path("benchmarks/.out/scale"))
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # child: generate and parse
    ap.add_argument("--build", type=int, help=argparse.SUPPRESS)  # child: one build of this many days
    args = ap.parse_args()
    cfg = data_config(args.work, max(args.days), args.snapshot_ms)
    if args.prepare:
        prepare(cfg)
        return
    if args.build:
        print(json.dumps(build(cfg, args.build)))
        return
    common = ["--days", *map(str, args.days), "--snapshot-ms", str(args.snapshot_ms), "--work", str(args.work)]
    t0 = time.perf_counter()
    child([*common, "--prepare"])
    print(f"market: {max(args.days)} synthetic {ASSET.upper()} days, snapshot every {args.snapshot_ms} ms, "
          f"ready in {time.perf_counter() - t0:.0f} s (generated, parsed and compiled once, not measured)")
    runs = [child([*common, "--build", str(n)]) for n in args.days]
    for r in runs:
        print(f"{r['days']:>3} days: {r['decisions']:>6} decisions in {r['seconds']:6.1f} s "
              f"({r['decisions'] / r['seconds']:,.0f} decisions/s), task + 2 orders each in "
              f"{r['score_seconds']:.1f} s, RSS after imports "
              f"{r['rss_after_imports_mib']:,.0f} MiB, peak {r['peak_rss_mib']:,.0f} MiB")
    small, large = runs[0], runs[-1]
    print(f"RESULT peak_rss_{large['days']}d_over_{small['days']}d={large['peak_rss_mib'] / small['peak_rss_mib']:.2f} "
          f"decisions_per_s={large['decisions'] / large['seconds']:.0f}")


if __name__ == "__main__":
    main()
