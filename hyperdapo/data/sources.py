"""Where an asset's market data comes from (``data=`` config group) and loading it as one MarketData.

- ``synthetic``: the built-in market (:mod:`hyperdapo.data.synthetic`), written on first use as Tardis files
  under ``<raw_dir>/synthetic/seed<seed>-<hash of every synthetic parameter>`` and read back through the same
  readers as downloaded data.
- ``tardis``: Tardis.dev files of ``data.tardis.data_types`` (one book type + optionally ``trades``), used from
  ``download_dir`` when present (no key needed) and downloaded otherwise (``$TARDIS_API_KEY``).
- ``hyperliquid_archive``: Hyperliquid's l2Book archive files (book only: fills use the book-only rule).
- ``files``: local files of any venue per kind (``data.files.book`` / ``incremental`` / ``trades``, paths or
  globs); ``incremental_book_L2`` is replayed into a snapshot every ``data.files.snapshot_every_s``.
  A relative ``data.archive_files`` entry is looked up from the current directory first and, if nothing
  matches there, from the project root (the directory holding the ``hyperdapo`` package), so the shared
  sample of ``experiment=hl_sample`` is found from any working directory. An entry matching no file fails
  with FileNotFoundError naming the key.

Every file goes through the parquet cache; days are concatenated in time order. When trades are given, the
book and the trades are cut to the span they share (logged), so no decision's fills read a tape that is not
there.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
from pathlib import Path

import numpy as np

from hyperdapo.data.cache import load_cached
from hyperdapo.data.config import BOOK_TYPES, AssetConfig, DataConfig, DataSource, TardisConfig
from hyperdapo.data.download import download_tardis
from hyperdapo.data.orderbook import reconstruct_snapshots
from hyperdapo.data.readers import Kind, trade_kind
from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.data.synthetic import synthetic_dir_name, write_synthetic_market

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository: parent of the hyperdapo package
CUT_WARN_SHARE = 0.05  # cutting more than this share of the book rows or the trades to the shared span is a warning


def concat_books(books: list[BookSnapshots]) -> BookSnapshots:
    n_levels = max(b.n_levels for b in books)
    pad = lambda a: np.pad(a, ((0, 0), (0, n_levels - a.shape[1])), constant_values=np.nan)  # noqa: E731
    return BookSnapshots(np.concatenate([b.ts_us for b in books]), np.concatenate([b.local_ts_us for b in books]),
                         *(np.concatenate([pad(getattr(b, f)) for b in books])
                           for f in ("bid_px", "bid_sz", "ask_px", "ask_sz")))


def concat_trades(tapes: list[Trades]) -> Trades:
    return Trades(*(np.concatenate([getattr(t, f) for t in tapes])
                    for f in ("ts_us", "local_ts_us", "price", "amount", "side")))


def market_files(asset: AssetConfig, cfg: DataConfig) -> dict[str, list[Path]]:
    """Files per kind (``book``, ``incremental``, ``trades``) of the configured source, creating or downloading
    them if needed."""
    if cfg.source is DataSource.SYNTHETIC:
        out = Path(cfg.raw_dir) / "synthetic" / synthetic_dir_name(cfg.synthetic)
        paths = write_synthetic_market(asset, cfg.synthetic, out)
        return {"book": paths["book_snapshot_25"], "incremental": [], "trades": paths["trades"]}
    if cfg.source is DataSource.TARDIS:
        tcfg = TardisConfig(**{**cfg.tardis.__dict__, "symbols": [asset.tardis_symbol]})
        paths = download_tardis(tcfg)
        of = lambda t: [p for p in paths if f"_{t}_" in p.name]  # noqa: E731
        return {"book": [p for t in BOOK_TYPES for p in of(t)], "incremental": of("incremental_book_L2"),
                "trades": of("trades")}
    if cfg.source is DataSource.FILES:
        f = cfg.files
        return {kind: archive_files(getattr(f, kind), f"data.files.{kind}") for kind in ("book", "incremental",
                                                                                        "trades")}
    return {"book": archive_files(cfg.archive_files), "incremental": [], "trades": []}


def archive_files(patterns: list[str], key: str = "data.archive_files") -> list[Path]:
    """The files of ``data.archive_files`` (paths or glob patterns), sorted. A relative pattern that matches
    nothing from the current directory is tried from :data:`PROJECT_ROOT`; one matching nothing from either
    raises FileNotFoundError naming the key."""
    files = []
    for i, pattern in enumerate(patterns):
        matches = glob.glob(pattern)
        if not matches and not Path(pattern).is_absolute():
            matches = glob.glob(str(PROJECT_ROOT / pattern))
        if not matches:
            raise FileNotFoundError(f"{key}[{i}]={pattern!r}: no market-data file matches it in the "
                                    f"current directory ({Path.cwd()}) or the project root ({PROJECT_ROOT})")
        files += [Path(p) for p in matches]
    return sorted(files)


def load_market(asset: AssetConfig, cfg: DataConfig) -> MarketData:
    """The asset's market data over the configured span (books concatenated; trades None if book-only)."""
    files = market_files(asset, cfg)
    books = [load_cached(p, None, cfg.cache_dir)[0] for p in files["book"]]
    books += [_replay(p, cfg) for p in files["incremental"]]
    book = concat_books(books)
    book = book.take(np.argsort(book.ts_us, kind="stable"))
    tapes = [load_cached(p, trade_kind(p), cfg.cache_dir)[0] for p in files["trades"]]
    trades = concat_trades(tapes) if tapes else None
    if trades is not None:
        book, trades = shared_span(book, trades, files)
    return MarketData(asset.name, book, trades)


def _replay(path: Path, cfg: DataConfig) -> BookSnapshots:
    """An ``incremental_book_L2`` file as snapshots every ``data.files.snapshot_every_s`` over its span."""
    updates = load_cached(path, Kind.INCREMENTAL_BOOK_L2, cfg.cache_dir)[0]
    step_us = int(round(cfg.files.snapshot_every_s * 1e6))
    at = np.arange(updates.ts_us[0], updates.ts_us[-1] + 1, step_us, dtype=np.int64)
    book = reconstruct_snapshots(updates, at, cfg.files.n_levels).book
    keep = ~(np.isnan(book.bid_px[:, 0]) | np.isnan(book.ask_px[:, 0]))  # before both sides were first quoted
    return book.take(keep)


def span_shared(book_ts_us: np.ndarray, trade_ts_us: np.ndarray) -> tuple[int, int]:
    """[start, end] (us, inclusive) that a book and a tape both cover; ``start >= end`` when they share none."""
    return int(max(book_ts_us[0], trade_ts_us[0])), int(min(book_ts_us[-1], trade_ts_us[-1]))


def shared_span(book: BookSnapshots, trades: Trades, files: dict[str, list[Path]]) -> tuple[BookSnapshots, Trades]:
    """Book and trades cut to the time span both cover (inclusive); an error naming the files when they share
    none."""
    start, end = span_shared(book.ts_us, trades.ts_us)
    if start >= end:
        raise ValueError(f"the book files {[str(p) for p in files['book'] + files['incremental']]} and the trade "
                         f"files {[str(p) for p in files['trades']]} share no time span (book "
                         f"{_utc(book.ts_us[0])}..{_utc(book.ts_us[-1])}, trades {_utc(trades.ts_us[0])}.."
                         f"{_utc(trades.ts_us[-1])})")
    in_book = (book.ts_us >= start) & (book.ts_us <= end)
    in_tape = (trades.ts_us >= start) & (trades.ts_us <= end)
    cut_book, cut_tape = 1 - in_book.mean(), 1 - in_tape.mean()
    level = logging.WARNING if max(cut_book, cut_tape) > CUT_WARN_SHARE else logging.INFO
    log.log(level, "book and trades overlap %s .. %s (%.1f h); cut %d book rows (%.1f %%) and %d trades (%.1f %%) "
            "outside it%s", _utc(start), _utc(end), (end - start) / 3.6e9, int((~in_book).sum()), 100 * cut_book,
            int((~in_tape).sum()), 100 * cut_tape,
            f" (book {_utc(book.ts_us[0])}..{_utc(book.ts_us[-1])}, trades {_utc(trades.ts_us[0])}.."
            f"{_utc(trades.ts_us[-1])}: check that the files cover the same days)" if level == logging.WARNING else "")
    return (book, trades) if in_book.all() and in_tape.all() else (book.take(in_book), trades.take(in_tape))


def _utc(ts_us: int) -> str:
    return dt.datetime.fromtimestamp(int(ts_us) / 1e6, dt.UTC).isoformat(timespec="seconds")
