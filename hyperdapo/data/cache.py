"""Parquet cache of parsed market-data files, keyed by the source file's identity.

The key is (absolute path, size, mtime in ns, reader format version): editing or replacing the source
invalidates the entry. Entries are written atomically (a temp file in the cache directory, then rename),
so a failed or interrupted ingest leaves no partial cache file behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hyperdapo.atomic import atomic_path
from hyperdapo.data.readers import Kind, ReadResult, detect_kind, read_market_file
from hyperdapo.data.schema import BookSnapshots, BookUpdates, Trades

FORMAT_VERSION = 2
DEFAULT_CACHE_DIR = Path("data/cache")
MarketTable = BookSnapshots | Trades | BookUpdates
# every other kind is a book
TABLE_TYPES = {Kind.TRADES: Trades, Kind.TRADES_PARQUET: Trades, Kind.INCREMENTAL_BOOK_L2: BookUpdates}


@dataclass
class IngestSummary:
    """What an ingest read: rows kept, time span (UTC), levels a side, rows dropped per class."""

    path: str
    kind: str
    rows: int
    first_ts_us: int
    last_ts_us: int
    levels: int  # book levels a side (0 for trades / updates)
    dropped: dict[str, int]  # rows dropped per class: crossed, blank_best, duplicate
    from_cache: bool

    def __str__(self) -> str:
        utc = lambda us: dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat(timespec="milliseconds")  # noqa: E731
        return (f"{self.path}\n  kind     {self.kind}\n  rows     {self.rows}\n"
                f"  span     {utc(self.first_ts_us)} .. {utc(self.last_ts_us)} "
                f"({(self.last_ts_us - self.first_ts_us) / 1e6:,.1f} s)\n"
                f"  levels   {self.levels} a side\n"
                f"  dropped  {', '.join(f'{k} {v}' for k, v in self.dropped.items()) or 'none'}\n"
                f"  cache    {'hit' if self.from_cache else 'written'}")


def require_file(path: Path) -> None:
    """Raise FileNotFoundError naming ``path`` (as given and absolute) unless it is an existing file."""
    if not path.is_file():
        raise FileNotFoundError(f"market-data file not found: {path} (absolute: {path.absolute()})")


def cache_key(path: Path, kind: Kind) -> str:
    """The entry's key from the file's identity (see the module docstring); the file must exist."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{kind.value}|v{FORMAT_VERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def load_cached(path: Path | str, kind: Kind | str | None = None,
                cache_dir: Path | str = DEFAULT_CACHE_DIR) -> tuple[MarketTable, IngestSummary]:
    """The parsed table of ``path``, from the cache when its entry is current, else parsed and cached."""
    path, cache_dir = Path(path), Path(cache_dir)
    require_file(path)
    kind = Kind(kind) if kind is not None else detect_kind(path)
    entry = cache_dir / f"{path.name}.{cache_key(path, kind)}.parquet"
    if entry.exists():
        table = pq.read_table(entry)
        meta = json.loads(table.schema.metadata[b"hyperdapo"])
        obj = TABLE_TYPES.get(kind, BookSnapshots).from_arrow(table)
        return obj, IngestSummary(**{**meta, "from_cache": True})
    result = read_market_file(path, kind)
    summary = summarize(path, result)
    _write_atomic(result.table.to_arrow(), entry, asdict(summary))
    return result.table, summary


def summarize(path: Path, result: ReadResult) -> IngestSummary:
    t = result.table
    levels = t.n_levels if isinstance(t, BookSnapshots) else 0
    first, last = (int(t.ts_us[0]), int(t.ts_us[-1])) if len(t) else (0, 0)
    return IngestSummary(str(path), result.kind.value, len(t), first, last, levels, result.dropped, False)


def _write_atomic(table: pa.Table, entry: Path, meta: dict) -> None:
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"hyperdapo": json.dumps(meta)})
    with atomic_path(entry) as tmp:
        pq.write_table(table, tmp)
