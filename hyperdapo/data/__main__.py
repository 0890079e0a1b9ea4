"""Command line of the data layer: ``python -m hyperdapo.data synth|download|ingest|inspect``.

Errors from bad or missing files print one clear line (file, row, field) and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hyperdapo.data.assets import load_asset
from hyperdapo.data.cache import DEFAULT_CACHE_DIR, load_cached
from hyperdapo.data.readers import Kind, trade_kind
from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.data.stats import market_statistics
from hyperdapo.data.validation import DataFileError
from hyperdapo.data.venues import Instrument, load_venue

console = Console(width=120)


def _synth(args) -> None:
    from hyperdapo.data.config import SyntheticConfig
    from hyperdapo.data.synthetic import write_synthetic_market

    cfg = SyntheticConfig(start_date=args.start, n_days=args.days, seed=args.seed,
                          signal_strength=args.signal_strength)
    paths = write_synthetic_market(load_asset(args.asset), cfg, Path(args.out))
    for kind, files in paths.items():
        for p in files:
            console.print(f"{kind:22s} {p}")


def _download(args) -> None:
    from hyperdapo.data.config import TardisConfig
    from hyperdapo.data.download import download_tardis

    cfg = TardisConfig(symbols=[load_asset(a).tardis_symbol for a in args.asset], from_date=args.from_date,
                       to_date=args.to_date, data_types=args.data_types, download_dir=args.out,
                       max_total_s=args.max_total_s)
    if args.endpoint:
        cfg.endpoint = args.endpoint
    for p in download_tardis(cfg):
        console.print(str(p))


def _ingest(args) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, summary = load_cached(args.file, args.kind, args.cache_dir)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    console.print(str(summary))


def _inspect(args) -> None:
    book, _ = load_cached(args.book, None, args.cache_dir)
    if not isinstance(book, BookSnapshots):
        raise DataFileError(args.book, "inspect needs a book file (book_snapshot_*, quotes or Hyperliquid l2Book)")
    trades = None
    if args.trades:
        trades, _ = load_cached(args.trades, trade_kind(args.trades), args.cache_dir)
        assert isinstance(trades, Trades)
    instrument = Instrument(load_venue(args.venue), load_asset(args.asset)) if args.asset else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = market_statistics(book, trades, instrument)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)
    table = Table(title=f"market statistics: {Path(args.book).name}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, "unavailable (no trades)" if key == "trades_per_min" and trades is None else f"{value:.4g}")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperdapo.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write a synthetic market in Tardis.dev file formats")
    p.add_argument("--asset", default="BTC")
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--start", default="2024-01-01", help="first UTC day, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--signal-strength", type=float, default=0.08)
    p.add_argument("--out", default="data/raw/synthetic")
    p.set_defaults(run=_synth)
    p = sub.add_parser("download", help="download Tardis.dev files ($TARDIS_API_KEY)")
    p.add_argument("--asset", nargs="+", default=["BTC"])
    p.add_argument("--from", dest="from_date", default="2024-01-01")
    p.add_argument("--to", dest="to_date", default="2024-01-02", help="exclusive")
    p.add_argument("--data-types", nargs="+", default=["book_snapshot_25", "trades"])
    p.add_argument("--out", default="data/raw/tardis")
    p.add_argument("--max-total-s", type=float, default=180.0)
    p.add_argument("--endpoint", default=None, help="datasets API base URL (default: Tardis.dev's)")
    p.set_defaults(run=_download)
    p = sub.add_parser("ingest", help="validate a file, write its parquet cache, print a summary")
    p.add_argument("file")
    p.add_argument("--kind", choices=[k.value for k in Kind], default=None)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    p.set_defaults(run=_ingest)
    p = sub.add_parser("inspect", help="market statistics of a book file (and its trades, over the span both cover); "
                       "the price tick is inferred from the book's prices and reported (tick_inferred_usd)")
    p.add_argument("book")
    p.add_argument("trades", nargs="?")
    p.add_argument("--asset", default=None, help="asset name: compare the venue's tick with the one inferred from "
                   "the data (the one-tick share uses the data's; the venue's is added when they differ)")
    p.add_argument("--venue", default="hyperliquid", help="venue (conf/venue/) whose tick is compared with the data's")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    p.set_defaults(run=_inspect)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.run(args)
    except (DataFileError, ValueError, RuntimeError, FileNotFoundError, ConnectionError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
