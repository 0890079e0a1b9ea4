"""Readers of raw market-data files into the columnar schema of :mod:`hyperdapo.data.schema`.

Formats (``kind``), detected from Tardis's default file names or the Hyperliquid archive layout:

- ``book_snapshot`` : Tardis ``book_snapshot_25`` / ``book_snapshot_5`` CSV(.gz): ``exchange,symbol,timestamp,
  local_timestamp,asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,...``; blank = empty level (NaN).
- ``incremental_book_L2`` : ``...,is_snapshot,side,price,amount`` (side bid/ask; amount 0 deletes a level).
- ``trades`` : ``...,id,side,price,amount``; side is the taker's (buy/sell; Tardis writes ``unknown`` where the
  venue does not say: kept with side 0, which trade-flow features treat as neither buy nor sell).
- ``quotes`` : ``...,ask_amount,ask_price,bid_price,bid_amount`` -> a one-level book.
- ``hyperliquid_l2book`` : Hyperliquid's archive ``market_data/<YYYYMMDD>/<hour>/l2Book/<COIN>.lz4``, an LZ4
  frame of JSON lines; ``raw.data.levels[0]`` = bids best first, ``[1]`` = asks; ``raw.data.time`` (ms,
  exchange) -> ``ts_us``; the outer ``time`` (ISO, ns, receive time) -> ``local_ts_us``.
- ``levels_parquet`` / ``trades_parquet`` : a recorder's hourly parquet files (StandX's
  ``orderbook_<SYMBOL>_<date>_<hour>.parquet``: a list column of prices and one of quantities per side;
  ``trades_...parquet``: price, quantity, taker side), detected from the columns; see :func:`_read_parquet`.

Tardis timestamps are microseconds since the epoch, UTC. CSVs are parsed by pyarrow with explicit types
(the fast path); when that fails, a slower second pass finds the offending row and field for the error.
Bad values are rejected or dropped class by class (see :mod:`hyperdapo.data.validation`); dropped rows are
counted per class in ``ReadResult.dropped`` (crossed, blank best level, duplicate).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import lz4.frame
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hyperdapo.data.schema import BookSnapshots, BookUpdates, Side, Trades
from hyperdapo.data.validation import (
    DataFileError,
    check_levels,
    check_non_decreasing,
    check_non_negative,
    check_trade_values,
    crossed_rows,
    drop_rows,
    duplicate_rows,
    require_columns,
)

log = logging.getLogger(__name__)


class Kind(StrEnum):
    BOOK_SNAPSHOT = "book_snapshot"
    INCREMENTAL_BOOK_L2 = "incremental_book_L2"
    TRADES = "trades"
    QUOTES = "quotes"
    HYPERLIQUID_L2BOOK = "hyperliquid_l2book"
    LEVELS_PARQUET = "levels_parquet"
    TRADES_PARQUET = "trades_parquet"


@dataclass
class ReadResult:
    """A parsed file: the table (BookSnapshots, Trades or BookUpdates) and what was dropped."""

    kind: Kind
    table: BookSnapshots | Trades | BookUpdates
    dropped: dict[str, int] = field(default_factory=dict)  # rows dropped per class (crossed, blank_best, duplicate)

    @property
    def crossed(self) -> int:
        return self.dropped.get("crossed", 0)


HEAD = ["exchange", "symbol", "timestamp", "local_timestamp"]
REQUIRED = {
    Kind.INCREMENTAL_BOOK_L2: HEAD + ["is_snapshot", "side", "price", "amount"],
    Kind.TRADES: HEAD + ["id", "side", "price", "amount"],
    Kind.QUOTES: HEAD + ["ask_amount", "ask_price", "bid_price", "bid_amount"],
}
NUMERIC = {
    Kind.INCREMENTAL_BOOK_L2: ["price", "amount"],
    Kind.TRADES: ["price", "amount"],
    Kind.QUOTES: ["ask_amount", "ask_price", "bid_price", "bid_amount"],
}
UNCONVERTED = {"exchange", "symbol"}  # required in the header, never used: not converted (a fifth of a book's parse)
_LEVEL = re.compile(r"^(asks|bids)\[(\d+)\]\.(price|amount)$")


def detect_kind(path: Path) -> Kind:
    """The format from the file name (Tardis default names, the Hyperliquid archive layout), else from a CSV
    file's header (so a user's own file names work)."""
    name = Path(path).name
    if name.endswith(".lz4") or "l2Book" in Path(path).parts:
        return Kind.HYPERLIQUID_L2BOOK
    if name.endswith(".parquet"):
        return _parquet_kind(Path(path))
    for kind, pattern in (
        (Kind.BOOK_SNAPSHOT, "_book_snapshot_"), (Kind.INCREMENTAL_BOOK_L2, "_incremental_book_L2_"),
        (Kind.TRADES, "_trades_"), (Kind.QUOTES, "_quotes_"),
    ):
        if pattern in name:
            return kind
    header = set(_csv_header(Path(path))) if ".csv" in name else set()
    for kind, columns in (
        (Kind.INCREMENTAL_BOOK_L2, {"is_snapshot"}), (Kind.BOOK_SNAPSHOT, {"asks[0].price", "bids[0].price"}),
        (Kind.QUOTES, {"ask_price", "bid_price"}), (Kind.TRADES, {"id", "side", "price", "amount"}),
    ):
        if columns <= header:
            return kind
    raise DataFileError(path, "cannot tell the format from the file name or the CSV header; pass kind= one of "
                              f"{[k.value for k in Kind]}")


def trade_kind(path: Path | str) -> Kind:
    """The kind of a file given as trades: parquet trades for ``.parquet``, else Tardis ``trades`` CSV."""
    return Kind.TRADES_PARQUET if Path(path).name.endswith(".parquet") else Kind.TRADES


def read_market_file(path: Path | str, kind: Kind | str | None = None) -> ReadResult:
    """Read and validate one file (see the module docstring for the formats)."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(path, "no such file")
    kind = Kind(kind) if kind is not None else detect_kind(path)
    if kind is Kind.HYPERLIQUID_L2BOOK:
        return _read_hyperliquid(path)
    if kind in (Kind.LEVELS_PARQUET, Kind.TRADES_PARQUET):
        return _read_parquet(path, kind)
    header = _csv_header(path)
    if kind is Kind.BOOK_SNAPSHOT:
        n_levels = _book_levels(path, header)
        numeric = [f"{s}[{k}].{f}" for k in range(n_levels) for s in ("asks", "bids") for f in ("price", "amount")]
        required = HEAD + numeric
    else:
        numeric = NUMERIC[kind]
        required = REQUIRED[kind]
    require_columns(path, header, required)
    types = {"timestamp": pa.int64(), "local_timestamp": pa.int64(), **{c: pa.float64() for c in numeric}}
    if kind is Kind.TRADES:
        types["id"] = pa.string()
    if kind in (Kind.TRADES, Kind.INCREMENTAL_BOOK_L2):
        types["side"] = pa.dictionary(pa.int32(), pa.string())  # a handful of distinct values
    table = _read_csv(path, header, types, numeric, [c for c in required if c not in UNCONVERTED])
    if table.num_rows == 0:
        raise DataFileError(path, "no data rows: the file holds only its header (an interrupted download?)",
                            row=1, unit="line (header)")
    return {
        Kind.BOOK_SNAPSHOT: _book_from_table, Kind.QUOTES: _quotes_from_table,
        Kind.TRADES: _trades_from_table, Kind.INCREMENTAL_BOOK_L2: _updates_from_table,
    }[kind](path, table)


# ----------------------------------------------------------------------------------------------- CSV
def _open_text(path: Path):
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _csv_header(path: Path) -> list[str]:
    try:
        with _open_text(path) as f:
            line = f.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"cannot decompress or decode the file: {exc}", row=1, unit="line (header)") from None
    if not line.strip():
        raise DataFileError(path, "empty file (no header line)", row=1, unit="line (header)")
    return next(csv.reader([line]))


def _book_levels(path: Path, header: list[str]) -> int:
    levels = [int(m.group(2)) for m in map(_LEVEL.match, header) if m]
    if not levels:
        raise DataFileError(path, "no asks[k].price / bids[k].price columns in the header", row=1,
                            unit="line (header)")
    return max(levels) + 1


def _read_csv(path: Path, header: list[str], types: dict[str, pa.DataType], numeric: list[str],
              columns: list[str]) -> pa.Table:
    """The ``columns`` of a CSV file as a table, ``types`` given (others inferred)."""
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, include_columns=columns)
    try:
        return pacsv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        _locate_csv_problem(path, header, ["timestamp", "local_timestamp", *numeric])
        raise DataFileError(path, f"unreadable CSV: {exc}") from None


def _locate_csv_problem(path: Path, header: list[str], numeric: list[str]) -> None:
    """Slow second pass after the fast parser failed: raise a DataFileError at the first bad row."""
    cols = [(header.index(c), c) for c in numeric if c in header]
    row = 0
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            next(reader)
            for row, fields in enumerate(reader, start=1):  # noqa: B007
                if len(fields) != len(header):
                    raise DataFileError(path, f"{len(fields)} fields, the header has {len(header)}", row=row)
                for i, name in cols:
                    value = fields[i]
                    if value == "":
                        continue
                    try:
                        float(value)
                    except ValueError:
                        raise DataFileError(path, f"non-numeric value {value!r}", row=row, field=name) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(path, f"truncated or corrupt compressed data after {row} complete data row(s): {exc}",
                            row=row + 1) from None


def _column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _grid(table: pa.Table, names: list[str]) -> np.ndarray:
    """(N, len(names)) float64, C order, from float64 columns (null = NaN), filled record batch by record batch
    (each batch small enough to transpose in cache: half the time of stacking whole columns)."""
    out = np.empty((table.num_rows, len(names)))
    start = 0
    for batch in table.select(names).to_batches():
        out[start: start + batch.num_rows] = batch.to_tensor(null_to_nan=True, row_major=True).to_numpy()
        start += batch.num_rows
    return out


def _book_from_table(path: Path, table: pa.Table) -> ReadResult:
    n_levels = _book_levels(path, table.column_names)
    grid = {(s, f): _grid(table, [f"{s}[{k}].{f}" for k in range(n_levels)])
            for s in ("asks", "bids") for f in ("price", "amount")}
    return _finish_book(path, _column(table, "timestamp"), _column(table, "local_timestamp"),
                        grid["bids", "price"], grid["bids", "amount"], grid["asks", "price"], grid["asks", "amount"])


def _quotes_from_table(path: Path, table: pa.Table) -> ReadResult:
    col = lambda c: _column(table, c)[:, None]  # noqa: E731
    return _finish_book(path, _column(table, "timestamp"), _column(table, "local_timestamp"),
                        col("bid_price"), col("bid_amount"), col("ask_price"), col("ask_amount"))


def _finish_book(path, ts_us, local_ts_us, bid_px, bid_sz, ask_px, ask_sz, unit: str = "data row") -> ReadResult:
    check_non_decreasing(path, ts_us, unit=unit)
    check_levels(path, "bids", bid_px, bid_sz, unit=unit)
    check_levels(path, "asks", ask_px, ask_sz, unit=unit)
    keep, dropped = drop_rows(path, {
        "blank_best": np.isnan(bid_px[:, 0]) | np.isnan(ask_px[:, 0]),
        "crossed": crossed_rows(bid_px[:, 0], ask_px[:, 0]),
        "duplicate": duplicate_rows(ts_us, bid_px, bid_sz, ask_px, ask_sz),
    }, unit=unit)
    book = BookSnapshots(np.asarray(ts_us, dtype=np.int64), np.asarray(local_ts_us, dtype=np.int64), bid_px, bid_sz,
                         ask_px, ask_sz)
    if not keep.all():  # copy only when rows are dropped
        book = book.take(keep)
    return ReadResult(Kind.BOOK_SNAPSHOT, book, dropped)


def _side_codes(path: Path, table: pa.Table, pos: str, neg: str, allow_unknown: bool) -> np.ndarray:
    """(N,) int8 Side codes of the ``side`` column (``unknown`` -> 0 when allowed), looked up per distinct value
    of the column's dictionary (read as one by the CSV reader; encoded here otherwise)."""
    side = table.column("side")
    if not pa.types.is_dictionary(side.type):
        side = side.dictionary_encode()
    codes = {pos: int(Side.BUY), neg: int(Side.SELL), **({"unknown": 0} if allow_unknown else {})}
    invalid = 2  # a code no Side has: a value outside ``codes``, or null
    out, start = np.empty(len(side), dtype=np.int8), 0
    for chunk in side.chunks:
        lut = np.array([codes.get(v, invalid) for v in chunk.dictionary.to_pylist()] + [invalid], dtype=np.int8)
        index = chunk.indices.fill_null(len(chunk.dictionary)).to_numpy(zero_copy_only=False)
        out[start: start + len(chunk)] = lut[index]
        start += len(chunk)
    if (out == invalid).any():
        k = int(np.flatnonzero(out == invalid)[0])
        raise DataFileError(path, f"side {side[k].as_py()!r} is not {pos!r} or {neg!r}", row=k + 1, field="side")
    return out


def _trades_from_table(path: Path, table: pa.Table) -> ReadResult:
    ts_us, price, amount = _column(table, "timestamp"), _column(table, "price"), _column(table, "amount")
    check_non_decreasing(path, ts_us)
    check_trade_values(path, price, amount)
    side = _side_codes(path, table, "buy", "sell", allow_unknown=True)
    duplicate = duplicate_rows(ts_us, price, amount, side)
    duplicate[duplicate] = _same_as_previous(table.column("id"), np.flatnonzero(duplicate))
    keep, dropped = drop_rows(path, {"duplicate": duplicate})
    trades = Trades(ts_us, _column(table, "local_timestamp"), price, amount, side)
    return ReadResult(Kind.TRADES, trades.take(keep) if not keep.all() else trades, dropped)


def _same_as_previous(values: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """(len(rows),) whether ``values[rows]`` equals ``values[rows - 1]`` (rows >= 1; null equal to null), compared
    as Python objects on these rows only."""
    current = np.asarray(values.take(rows).to_pylist(), dtype=object)
    previous = np.asarray(values.take(rows - 1).to_pylist(), dtype=object)
    return current == previous


def _updates_from_table(path: Path, table: pa.Table) -> ReadResult:
    ts_us, amount = _column(table, "timestamp"), _column(table, "amount")
    check_non_decreasing(path, ts_us)
    check_non_negative(path, {"amount": amount})
    snap = table.column("is_snapshot")
    is_true = pc.equal(pc.utf8_lower(pc.cast(snap, pa.string())), "true").to_numpy(zero_copy_only=False)
    side = _side_codes(path, table, "bid", "ask", allow_unknown=False)
    return ReadResult(Kind.INCREMENTAL_BOOK_L2, BookUpdates(ts_us, _column(table, "local_timestamp"),
                                                            is_true.astype(bool), side, _column(table, "price"),
                                                            amount))


# ----------------------------------------------------------------------------------------------- Hyperliquid
def _read_hyperliquid(path: Path) -> ReadResult:
    ts, local, books = [], [], []
    line_no = 0
    try:
        with lz4.frame.open(path, "rt", encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):  # noqa: B007
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                    data = msg["raw"]["data"]
                    bids, asks = data["levels"]
                    ts.append(int(data["time"]) * 1000)
                    local.append(msg["time"])
                    books.append(([float(x["px"]) for x in bids], [float(x["sz"]) for x in bids],
                                  [float(x["px"]) for x in asks], [float(x["sz"]) for x in asks]))
                except json.JSONDecodeError as exc:
                    raise DataFileError(path, f"malformed JSON: {exc.msg} at column {exc.colno}", row=line_no,
                                        unit="line") from None
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataFileError(path, f"not an l2Book message ({type(exc).__name__}: {exc})", row=line_no,
                                        unit="line", field="raw.data") from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise DataFileError(path, f"truncated or corrupt LZ4 frame after {line_no} complete line(s): {exc}",
                            row=line_no + 1, unit="line") from None
    if not books:
        raise DataFileError(path, "no l2Book messages in the file")
    n_levels = max(max(len(b[0]), len(b[2])) for b in books)
    grids = [np.full((len(books), n_levels), np.nan) for _ in range(4)]
    for i, book in enumerate(books):
        for grid, values in zip(grids, book, strict=True):
            grid[i, : len(values)] = values
    ts_us = np.array(ts, dtype=np.int64)
    try:
        local_ts_us = np.array(local, dtype="datetime64[ns]").astype("datetime64[us]").astype(np.int64)
    except ValueError as exc:
        raise DataFileError(path, f"outer 'time' is not an ISO timestamp: {exc}", field="time") from None
    bid_px, bid_sz, ask_px, ask_sz = grids
    return _finish_book(path, ts_us, local_ts_us, bid_px, bid_sz, ask_px, ask_sz, unit="line")


# ----------------------------------------------------------------------------------------------- parquet
LEVEL_COLUMNS = ("bid_prices", "bid_quantities", "ask_prices", "ask_quantities")  # list<double> per row, best first
PARQUET_TRADE_COLUMNS = ("timestamp", "price", "quantity", "side")
ONE_SIDED_MIN_TRADES = 100  # a file with at least this many trades, all on one taker side, has no side information


def _parquet_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(path, f"not a readable parquet file (truncated or corrupt?): {exc}") from None


def _parquet_kind(path: Path) -> Kind:
    names = set(_parquet_schema(path).names)
    if set(LEVEL_COLUMNS) <= names:
        return Kind.LEVELS_PARQUET
    if set(PARQUET_TRADE_COLUMNS) <= names:
        return Kind.TRADES_PARQUET
    raise DataFileError(path, f"a parquet file with neither the book's level arrays {list(LEVEL_COLUMNS)} nor the "
                              f"trade columns {list(PARQUET_TRADE_COLUMNS)}; it has {sorted(names)}")


def _read_parquet(path: Path, kind: Kind) -> ReadResult:
    """A recorder's parquet file (the StandX files of ``../shared/data/standx``): a book with one list column of
    prices / quantities per side (``bid_prices``, ``bid_quantities``, ``ask_prices``, ``ask_quantities``, best first)
    or trades (``price``, ``quantity``, ``side`` BUY/SELL = the taker's). ``timestamp`` is the exchange time and
    ``received_at`` (optional) the receive time, both UTC, as parquet timestamps (any unit) or integer ms.

    A trade file whose every trade names one taker side (at least :data:`ONE_SIDED_MIN_TRADES`; StandX's recorder
    writes SELL for all) carries no side information: its sides come from the tick test instead
    (:func:`tick_test_sides`), logged."""
    names = _parquet_schema(path).names
    require_columns(path, names, ["timestamp", *(LEVEL_COLUMNS if kind is Kind.LEVELS_PARQUET
                                                 else PARQUET_TRADE_COLUMNS[1:])])
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(path, f"truncated or corrupt parquet data: {exc}") from None
    ts_us = _parquet_time_us(path, table, "timestamp")
    local_ts_us = _parquet_time_us(path, table, "received_at") if "received_at" in names else ts_us.copy()
    if kind is Kind.LEVELS_PARQUET:
        bid_px, bid_sz, ask_px, ask_sz = (_level_grid(path, table, c) for c in LEVEL_COLUMNS)
        return _finish_book(path, ts_us, local_ts_us, bid_px, bid_sz, ask_px, ask_sz)
    price = table.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
    amount = table.column("quantity").to_numpy(zero_copy_only=False).astype(np.float64)
    check_non_decreasing(path, ts_us)
    check_trade_values(path, price, amount)
    side = _side_codes(path, table.set_column(names.index("side"), "side", pc.utf8_upper(table.column("side"))),
                       "BUY", "SELL", allow_unknown=False)
    if len(side) >= ONE_SIDED_MIN_TRADES and (side == side[0]).all():
        log.info("%s: all %d trades name the taker side %s: no side information, sides classified by the tick "
                 "test instead", path, len(side), Side(side[0]).name)
        side = tick_test_sides(price)
    return ReadResult(Kind.TRADES, Trades(ts_us, local_ts_us, price, amount, side))


def _parquet_time_us(path: Path, table: pa.Table, name: str) -> np.ndarray:
    """(N,) int64 us since the epoch, UTC, from a parquet timestamp column (any unit) or an integer column in ms."""
    col = table.column(name)
    if col.null_count:
        k = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataFileError(path, "missing timestamp", row=k + 1, field=name)
    if pa.types.is_timestamp(col.type):
        return pc.cast(col, pa.timestamp("us", col.type.tz)).cast(pa.int64()).to_numpy()
    if pa.types.is_integer(col.type):
        return col.to_numpy().astype(np.int64) * 1000
    raise DataFileError(path, f"type {col.type}: need a timestamp or integer milliseconds", field=name)


def _level_grid(path: Path, table: pa.Table, name: str) -> np.ndarray:
    """A list column (one list of levels per row, best first) as an (N, L) float64 grid, NaN-padded to the longest
    row; a null list or a null element is an empty level (NaN)."""
    col = table.column(name).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise DataFileError(path, f"type {col.type}: need a list of numbers per row", field=name)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
    grid = np.full((len(col), int(lengths.max(initial=1))), np.nan)
    starts = np.cumsum(lengths) - lengths
    grid[np.repeat(np.arange(len(col)), lengths), np.arange(lengths.sum()) - np.repeat(starts, lengths)] = values
    return grid


def tick_test_sides(price: np.ndarray) -> np.ndarray:
    """(N,) int8 taker sides by the tick test (Lee and Ready 1991): +1 (buy) when a trade prints above the last
    different price before it, -1 (sell) below it, 0 (unknown) before the first price change. Uses earlier trades
    only, so it adds no look-ahead."""
    step = np.sign(np.diff(price, prepend=price[:1]))  # (N,) 0 for the first trade and for zero ticks
    last = np.maximum.accumulate(np.where(step != 0, np.arange(len(price)), 0))  # the last non-zero tick so far
    return step[last].astype(np.int8)
