"""Where an asset's market data comes from (``data=`` config group) and loading it as one MarketData.

- ``synthetic``: the built-in market (:mod:`hyperdapo.data.synthetic`), written on first use as Tardis files
  under ``<raw_dir>/synthetic/seed<seed>-<hash of every synthetic parameter>`` and read back through the same
  readers as downloaded data.
- ``tardis``: Tardis.dev ``book_snapshot_25`` + ``trades`` (downloaded on first use, ``$TARDIS_API_KEY``).
- ``hyperliquid_archive``: Hyperliquid's l2Book archive files (book only: fills use the book-only rule).
  A relative ``data.archive_files`` entry is looked up from the current directory first and, if nothing
  matches there, from the project root (the directory holding the ``hyperdapo`` package), so the shared
  sample of ``experiment=hl_sample`` is found from any working directory. An entry matching no file fails
  with FileNotFoundError naming the key.

Every file goes through the parquet cache; days are concatenated in time order.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from hyperdapo.data.cache import load_cached
from hyperdapo.data.config import AssetConfig, DataConfig, DataSource, TardisConfig
from hyperdapo.data.download import download_tardis
from hyperdapo.data.readers import Kind
from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.data.synthetic import synthetic_dir_name, write_synthetic_market

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository: parent of the hyperdapo package


def concat_books(books: list[BookSnapshots]) -> BookSnapshots:
    n_levels = max(b.n_levels for b in books)
    pad = lambda a: np.pad(a, ((0, 0), (0, n_levels - a.shape[1])), constant_values=np.nan)  # noqa: E731
    return BookSnapshots(np.concatenate([b.ts_us for b in books]), np.concatenate([b.local_ts_us for b in books]),
                         *(np.concatenate([pad(getattr(b, f)) for b in books])
                           for f in ("bid_px", "bid_sz", "ask_px", "ask_sz")))


def concat_trades(tapes: list[Trades]) -> Trades:
    return Trades(*(np.concatenate([getattr(t, f) for t in tapes])
                    for f in ("ts_us", "local_ts_us", "price", "amount", "side")))


def market_files(asset: AssetConfig, cfg: DataConfig) -> tuple[list[Path], list[Path]]:
    """(book files, trade files) of the configured source, creating or downloading them if needed."""
    if cfg.source is DataSource.SYNTHETIC:
        out = Path(cfg.raw_dir) / "synthetic" / synthetic_dir_name(cfg.synthetic)
        paths = write_synthetic_market(asset, cfg.synthetic, out)
        return paths["book_snapshot_25"], paths["trades"]
    if cfg.source is DataSource.TARDIS:
        tcfg = TardisConfig(**{**cfg.tardis.__dict__, "symbols": [asset.tardis_symbol],
                               "data_types": ["book_snapshot_25", "trades"]})
        paths = download_tardis(tcfg)
        return [p for p in paths if "_book_snapshot_" in p.name], [p for p in paths if "_trades_" in p.name]
    return archive_files(cfg.archive_files), []


def archive_files(patterns: list[str]) -> list[Path]:
    """The files of ``data.archive_files`` (paths or glob patterns), sorted. A relative pattern that matches
    nothing from the current directory is tried from :data:`PROJECT_ROOT`; one matching nothing from either
    raises FileNotFoundError naming the key."""
    files = []
    for i, pattern in enumerate(patterns):
        matches = glob.glob(pattern)
        if not matches and not Path(pattern).is_absolute():
            matches = glob.glob(str(PROJECT_ROOT / pattern))
        if not matches:
            raise FileNotFoundError(f"data.archive_files[{i}]={pattern!r}: no market-data file matches it in the "
                                    f"current directory ({Path.cwd()}) or the project root ({PROJECT_ROOT})")
        files += [Path(p) for p in matches]
    return sorted(files)


def load_market(asset: AssetConfig, cfg: DataConfig) -> MarketData:
    """The asset's market data over the configured span (books concatenated; trades None if book-only)."""
    book_files, trade_files = market_files(asset, cfg)
    books = [load_cached(p, None, cfg.cache_dir)[0] for p in book_files]
    tapes = [load_cached(p, Kind.TRADES, cfg.cache_dir)[0] for p in trade_files]
    book = concat_books(books)
    order = np.argsort(book.ts_us, kind="stable")
    book = book.take(order)
    trades = concat_trades(tapes) if tapes else None
    return MarketData(asset.name, book, trades)
