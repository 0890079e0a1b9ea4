"""Ingest throughput vs plain gzip decoding of the same files (a synthetic BTC day).

    .venv/bin/python benchmarks/bench_ingest.py [--repeats 5] [--out benchmarks/.out]

Writes one synthetic BTC day of ``book_snapshot_25`` + ``trades`` (Tardis format; reused when present), then
times, in the same process, (a) ingest = read + validate into the columnar schema (no cache) and (b) plain
gzip decoding of the same files (zlib streaming, bytes discarded). Medians over repeats. Throughput is MB of
decompressed CSV per second; the last line is ``RESULT ingest_vs_gunzip=<ingest / decode throughput>``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import zlib
from pathlib import Path

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.readers import read_market_file
from hyperdapo.data.synthetic import write_synthetic_market


def gunzip_bytes(path: Path) -> int:
    d = zlib.decompressobj(wbits=47)  # auto-detect gzip header
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(d.decompress(chunk))
    return n + len(d.flush())


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/.out/synthetic")
    args = ap.parse_args()
    paths = write_synthetic_market(load_asset("btc"), SyntheticConfig(n_days=1), Path(args.out))
    files = [paths["book_snapshot_25"][0], paths["trades"][0]]
    raw_mb = sum(gunzip_bytes(p) for p in files) / 1e6
    t_decode = median_time(lambda: [gunzip_bytes(p) for p in files], args.repeats)
    t_ingest = median_time(lambda: [read_market_file(p) for p in files], args.repeats)
    rows = [len(read_market_file(p).table) for p in files]
    print(f"files: {[p.name for p in files]} rows {rows}, {raw_mb:.1f} MB decompressed CSV")
    print(f"gunzip  median {t_decode:.3f} s  {raw_mb / t_decode:.1f} MB/s")
    print(f"ingest  median {t_ingest:.3f} s  {raw_mb / t_ingest:.1f} MB/s")
    print(f"RESULT ingest_vs_gunzip={t_decode / t_ingest:.3f}")


if __name__ == "__main__":
    main()
