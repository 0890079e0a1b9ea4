"""The market as the fill simulator reads it: a run's whole span in memory, or one day's window at a time.

Every order the project scores (training rewards, baselines, the backtest) goes through :meth:`Tape.simulate`, so the
two kinds of tape give the same outcomes:

- :class:`MemoryTape`: the concatenated market of the run (:func:`hyperdapo.data.sources.load_market`).
- :class:`DayTape`: for months of data (``data.day_by_day=true``), the per-day market files, of which at most
  ``max_windows`` day windows are in memory at once. Day k's window is the tail of day k-1 (what the look-back of
  the features and the impact model reaches), day k, and the head of day k+1 (what the reward window of day k's
  last decisions reaches); an order is simulated in the window of the day its time falls in. Outcomes equal
  :class:`MemoryTape`'s bitwise (``tests/test_daily.py``), because every row an order reads is in its window.
  Training batches then draw their decisions from one day each (:meth:`ExecutionTask.sample_train_prompts`), so
  that a step reads one window, and evaluation walks the days in order.

Times in microseconds (``_us``), prices in USD, sizes in coins.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from hyperdapo.data.cache import load_cached
from hyperdapo.data.config import VenueConfig
from hyperdapo.data.readers import trade_kind
from hyperdapo.data.schema import BookSnapshots, MarketData
from hyperdapo.data.sources import concat_books, concat_trades, span_shared
from hyperdapo.execution.config import FillConfig
from hyperdapo.execution.fills import Outcomes, simulate

US_PER_S = 1_000_000
DayFiles = tuple[tuple[Path, ...], tuple[Path, ...]]  # (book snapshot files, trade files or none) of one day
DATE_IN_NAME = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")  # 2024-01-01 or 20240101 in a file name


class Tape(Protocol):
    book_only: bool  # no trades: resting orders fill by the book-only rule (fills.py, rule 4)

    def simulate(self, ts_us: np.ndarray, side: np.ndarray, limit_px: np.ndarray, qty: np.ndarray, cfg: FillConfig,
                 venue: VenueConfig, *, horizon_s: float, adverse_horizon_s: float) -> Outcomes:
        """:func:`hyperdapo.execution.fills.simulate` of D x K orders on this market."""

    def mid_at(self, ts_us: np.ndarray) -> np.ndarray:
        """The mid (USD) of the last snapshot at or before each time."""

    def book_at(self, ts_us: np.ndarray) -> BookSnapshots:
        """The last snapshot at or before each time, one row per time (in the order given)."""

    def minute_volume(self, until_us: int) -> np.ndarray:
        """Traded volume (coins) per minute of the hour (60,), over the trades at or before ``until_us``."""


@dataclass(frozen=True)
class MemoryTape:
    """A market held whole in memory."""

    market: MarketData

    @property
    def book_only(self) -> bool:
        return self.market.trades is None

    def simulate(self, ts_us, side, limit_px, qty, cfg, venue, *, horizon_s, adverse_horizon_s) -> Outcomes:
        return simulate(self.market.book, self.market.trades, ts_us, side, limit_px, qty, cfg, venue,
                        horizon_s=horizon_s, adverse_horizon_s=adverse_horizon_s)

    def mid_at(self, ts_us: np.ndarray) -> np.ndarray:
        return _mid_at(self.market, ts_us)

    def book_at(self, ts_us: np.ndarray) -> BookSnapshots:
        return _book_at(self.market, ts_us)

    def minute_volume(self, until_us: int) -> np.ndarray:
        return _minute_volume(self.market, until_us)


class DayTape:
    """Per-day market files read a day window at a time (module docstring); at most ``max_windows`` in memory."""

    def __init__(self, load: DayLoader, lookback_us: int, window_us: int, day_start_us: np.ndarray,
                 max_windows: int = 2) -> None:
        self.load, self.lookback_us, self.window_us = load, lookback_us, window_us
        self.day_start_us = np.asarray(day_start_us, dtype=np.int64)  # (days,) first book snapshot of each day
        self.max_windows = max_windows
        self._windows: OrderedDict[int, MarketData] = OrderedDict()
        self.book_only = load.span_us is None

    def window(self, k: int) -> MarketData:
        """Day ``k``'s window (the previous day's tail, the day, the next day's head), least recently used first
        out when more than ``max_windows`` are held."""
        if k in self._windows:
            self._windows.move_to_end(k)
            return self._windows[k]
        tail = (None if k == 0 else
                day_tail(self.load(k - 1), self.lookback_us, day_label(self.load.days[k - 1]), k == 1))
        self._windows[k] = day_window(self.load, k, tail, self.window_us)[1]
        while len(self._windows) > self.max_windows:
            self._windows.popitem(last=False)
        return self._windows[k]

    def day_of(self, ts_us: np.ndarray) -> np.ndarray:
        """The day (index into the files) each time falls in; times before the first day belong to it."""
        return np.maximum(np.searchsorted(self.day_start_us, np.asarray(ts_us), side="right") - 1, 0)

    def simulate(self, ts_us, side, limit_px, qty, cfg, venue, *, horizon_s, adverse_horizon_s) -> Outcomes:
        ts = np.asarray(ts_us, dtype=np.int64)
        px = np.asarray(limit_px, dtype=np.float64)
        px = px[:, None] if px.ndim == 1 else px
        q = np.broadcast_to(np.asarray(qty, dtype=np.float64).reshape(len(ts), -1), px.shape)
        sd = np.asarray(side)
        day = self.day_of(ts)
        parts = {}
        for k in np.unique(day):  # in day order: one window load per day
            rows = np.flatnonzero(day == k)
            w = self.window(int(k))
            parts[int(k)] = rows, simulate(w.book, w.trades, ts[rows], sd[rows], px[rows], q[rows], cfg, venue,
                                           horizon_s=horizon_s, adverse_horizon_s=adverse_horizon_s)
        return _gather(parts, len(ts), px.shape[1], self.book_only)

    def mid_at(self, ts_us: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts_us, dtype=np.int64)
        out = np.empty(ts.shape)
        day = self.day_of(ts)
        for k in np.unique(day):
            sel = day == k
            out[sel] = _mid_at(self.window(int(k)), ts[sel])
        return out

    def book_at(self, ts_us: np.ndarray) -> BookSnapshots:
        ts = np.asarray(ts_us, dtype=np.int64)
        day = self.day_of(ts)
        rows = [np.flatnonzero(day == k) for k in np.unique(day)]
        book = concat_books([_book_at(self.window(int(day[r[0]])), ts[r]) for r in rows])
        return book.take(np.argsort(np.concatenate(rows)))  # back to the order of ts_us

    def minute_volume(self, until_us: int) -> np.ndarray:
        """Over the days up to ``until_us``, one day file at a time (not through the window cache); equal to
        :class:`MemoryTape`'s up to the order of the float additions."""
        vol = np.zeros(60)
        for k in range(int(self.day_of(np.array([until_us]))[0]) + 1):
            vol += _minute_volume(self.load(k), until_us)
        return vol


def _gather(parts: dict[int, tuple[np.ndarray, Outcomes]], d: int, k: int, book_only: bool) -> Outcomes:
    """One :class:`Outcomes` of D x K orders from per-day outcomes of some of their rows."""
    first = next(iter(parts.values()))[1]
    out = {}
    for f in fields(Outcomes):
        if f.name == "book_only":
            continue
        like = getattr(first, f.name)
        arr = np.empty((d, *like.shape[1:]), dtype=like.dtype)
        for rows, o in parts.values():
            arr[rows] = getattr(o, f.name)
        out[f.name] = arr
    return Outcomes(**out, book_only=book_only)


def _mid_at(market: MarketData, ts_us: np.ndarray) -> np.ndarray:
    return _book_at(market, ts_us).mid  # the mid of the rows read, not of the whole book


def _book_at(market: MarketData, ts_us: np.ndarray) -> BookSnapshots:
    book = market.book
    return book.take(np.searchsorted(book.ts_us, ts_us, side="right") - 1)


def _minute_volume(market: MarketData, until_us: int) -> np.ndarray:
    if market.trades is None:
        return np.zeros(60)
    t = market.trades
    sel = t.ts_us <= until_us
    minute = (t.ts_us[sel] // (60 * US_PER_S)) % 60
    return np.bincount(minute, weights=t.amount[sel], minlength=60)


# ---------------------------------------------------------------------------------------------- market pieces
class DayLoader:
    """Loads day k's market (parsed-file cache), cut to the span [``span_us``] the book and the trades share over
    all days (None: book only); ``book_span_us``: the first and last snapshot times inside it (us), the
    decisions' span."""

    def __init__(self, asset: str, days: list[DayFiles], cache_dir: Path) -> None:
        self.asset, self.days, self.cache_dir = asset, days, cache_dir
        first, last = self._raw(0), self._raw(len(days) - 1)
        self.span_us = _shared_span_us(first, last, days)
        first_book, last_book = first.book.ts_us, last.book.ts_us
        if self.span_us is None:
            self.book_span_us = int(first_book[0]), int(last_book[-1])
        else:
            start, end = self.span_us
            self.book_span_us = (int(first_book[np.searchsorted(first_book, start)]),
                                 int(last_book[np.searchsorted(last_book, end, side="right") - 1]))

    def _raw(self, k: int) -> MarketData:
        book_paths, trade_paths = self.days[k]
        book = concat_books([load_cached(p, None, self.cache_dir)[0] for p in book_paths])
        trades = (concat_trades([load_cached(p, trade_kind(p), self.cache_dir)[0] for p in trade_paths])
                  if trade_paths else None)
        return MarketData(self.asset, book, trades)

    def __call__(self, k: int) -> MarketData:
        market = self._raw(k)
        if self.span_us is not None:
            market = _cut(market, *self.span_us)
        if not len(market.book):
            raise ValueError(f"{day_label(self.days[k])}: no book snapshot inside the span the book and trades share")
        return market


def day_files(files: dict[str, list[Path]]) -> list[DayFiles]:
    """(book files, trade files) per day from a run's files, in order: one book file (and optionally one trade file)
    a day, or several a day (hourly files) when consecutive file names carry the same date (``2026-01-06`` or
    ``20260106``); a file whose name has no date is a day of its own. Book and trade files must group alike."""
    if files.get("incremental"):
        raise ValueError("day-by-day builds read book snapshot files; incremental_book_L2 files are not supported")
    books, trades = _by_date(files["book"]), _by_date(files.get("trades") or [])
    if not books:
        raise ValueError("no book file to build days from")
    if trades and [len(g) for g in trades] != [len(g) for g in books]:
        raise ValueError(f"{len(files['book'])} book files in {len(books)} day(s) but {len(files['trades'])} trade "
                         f"files in {len(trades)}: give the trade files of the same days (one per book file)")
    return list(zip(books, trades or [()] * len(books), strict=True))


def _by_date(paths: list[Path]) -> list[tuple[Path, ...]]:
    """Consecutive paths grouped by the date in their names (no date: a group of one)."""
    groups: list[list[Path]] = []
    last = None
    for p in map(Path, paths):
        m = DATE_IN_NAME.search(p.name)
        date = m.groups() if m else None
        if date is None or date != last:
            groups.append([])
        groups[-1].append(p)
        last = date
    return [tuple(g) for g in groups]


def day_label(day: DayFiles) -> str:
    """A day's book files for messages: the one file, or the first .. the last."""
    books = day[0]
    return str(books[0]) if len(books) == 1 else f"{books[0]} .. {books[-1].name}"


def _shared_span_us(first: MarketData, last: MarketData, days: list[DayFiles]) -> tuple[int, int] | None:
    """[start, end] (us, inclusive) that the book and the trades of all days share (None: book only)."""
    if first.trades is None:
        return None
    start = span_shared(first.book.ts_us, first.trades.ts_us)[0]
    end = span_shared(last.book.ts_us, last.trades.ts_us)[1]
    if start >= end:
        raise ValueError(f"the book and trade files {days[0]} .. {days[-1]} share no time span")
    return int(start), int(end)


def day_window(load: DayLoader, k: int, tail: MarketData | None,
               window_us: int) -> tuple[MarketData, MarketData, MarketData | None]:
    """Day ``k``, its window (the previous day's ``tail``, the day, the next day's head) and that head (None on
    the last day)."""
    day = load(k)
    if tail is not None and day.book.ts_us[0] <= tail.book.ts_us[-1]:
        raise ValueError(f"{day_label(load.days[k])} starts before the previous day's files end: give the days' "
                         "files in day order")
    last = len(load.days) - 1
    head = None if k == last else _head(load(k + 1), window_us, day_label(load.days[k + 1]), last=k + 1 == last)
    return day, _concat([p for p in (tail, day, head) if p is not None]), head


def take_rows(market: MarketData, book_rows: slice, trade_rows: slice) -> MarketData:
    """A copy of some rows of ``market`` (integer indexing copies, so the rest can be freed)."""
    book = market.book.take(np.arange(len(market.book))[book_rows])
    trades = None if market.trades is None else market.trades.take(np.arange(len(market.trades))[trade_rows])
    return MarketData(market.asset, book, trades)


def _cut(market: MarketData, start_us: int, end_us: int) -> MarketData:
    """The rows with ``start_us <= ts_us <= end_us``, as :func:`hyperdapo.data.sources.shared_span` keeps them."""
    b, t = market.book.ts_us, market.trades.ts_us
    if b[0] >= start_us and b[-1] <= end_us and t[0] >= start_us and t[-1] <= end_us:
        return market
    span = lambda ts: slice(np.searchsorted(ts, start_us), np.searchsorted(ts, end_us, side="right"))  # noqa: E731
    return take_rows(market, span(b), span(t))


def day_tail(day: MarketData, lookback_us: int, path: Path | str, first_day: bool) -> MarketData:
    """The rows of ``day`` that the next day's look-back reaches: the book from the last snapshot at or before
    ``day``'s last snapshot minus ``lookback_us``, the trades after that time."""
    from_us = int(day.book.ts_us[-1]) - lookback_us
    i = np.searchsorted(day.book.ts_us, from_us, side="right") - 1
    if i < 0 and not first_day:
        raise ValueError(f"{path} covers less than the look-back ({lookback_us / US_PER_S:g} s): day-by-day builds "
                         "need it to fit in one day's file")
    j = 0 if day.trades is None else np.searchsorted(day.trades.ts_us, from_us, side="right")
    return take_rows(day, slice(max(i, 0), None), slice(j, None))


def _head(day: MarketData, window_us: int, path: Path | str, last: bool) -> MarketData:
    """The rows of ``day`` that the previous day's reward windows reach: the snapshots up to its first one plus
    ``window_us`` and the next one (so the simulator sees the same last snapshot), the trades up to that one."""
    n = np.searchsorted(day.book.ts_us, day.book.ts_us[0] + window_us, side="right") + 1
    if n > len(day.book) and not last:
        raise ValueError(f"{path} covers less than the reward window ({window_us / US_PER_S:g} s): day-by-day "
                         "builds need it to fit in one day's file")
    end_us = day.book.ts_us[min(n, len(day.book)) - 1]
    m = 0 if day.trades is None else np.searchsorted(day.trades.ts_us, end_us, side="right")
    return take_rows(day, slice(0, n), slice(0, m))


def _concat(pieces: list[MarketData]) -> MarketData:
    trades = None if pieces[0].trades is None else concat_trades([p.trades for p in pieces])
    return MarketData(pieces[0].asset, concat_books([p.book for p in pieces]), trades)
