"""Peak memory and time of the real-data benchmark's task, all ~49 h of the StandX BTC recording, day by day.

    .venv/bin/python benchmarks/bench_standx.py [--work benchmarks/.out/standx]

Builds ``experiment=standx_btc``'s task as ``train.py`` does (``data.day_by_day=true``: decisions, causal features and
offset-grid rewards a day at a time) from the raw files into an empty cache directory under ``--work`` (so parsing
the 100 parquet files is part of the build), then scores one order per decision of every split (a
0-bps limit) on the day tape, as a backtest does. Prints the resident memory after the imports and the peak
(VmHWM, MiB), and the seconds of each part. Last line: ``RESULT peak_rss_gib=<x> build_s=<y>``; the issue's bound
is that the 49 h fit the 24-GiB box with day-by-day memory (``benchmarks/bench_scale.py`` measures the growth with
days). Skips with a message when ``../shared/data/standx`` is absent.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STANDX = REPO.parent / "shared" / "data" / "standx" / "BTC-USD"


def vm_kib(key: str) -> int:
    """A line of /proc/self/status (``VmRSS`` now, ``VmHWM`` peak), KiB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(REPO / "benchmarks" / ".out" / "standx"))
    args = ap.parse_args()
    if not STANDX.exists():
        print(f"skipped: {STANDX} is absent (the shared StandX recording sits beside the checkout only)")
        sys.exit(0)
    from hyperdapo.pipeline.config import compose_run_config
    from hyperdapo.pipeline.train_run import build_task

    rss0 = vm_kib("VmRSS") / 1024
    Path(args.work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work) as cache:
        cfg = compose_run_config(["experiment=standx_btc", f"data.cache_dir={cache}"])
        t0 = time.perf_counter()
        task = build_task(cfg)
        build_s = time.perf_counter() - t0
        idx = np.arange(len(task.decisions))
        t1 = time.perf_counter()
        task.score_offsets(idx, np.zeros((len(idx), 1)))
        score_s = time.perf_counter() - t1
    peak = vm_kib("VmHWM") / 1024
    print(f"decisions {len(idx)}; rss after imports {rss0:.0f} MiB, peak {peak:.0f} MiB; build {build_s:.1f} s, "
          f"scoring {score_s:.1f} s ({len(idx) / score_s:,.0f} decisions/s)")
    print(f"RESULT peak_rss_gib={peak / 1024:.2f} build_s={build_s:.1f}")


if __name__ == "__main__":
    main()
