"""Decisions, features and offset-grid rewards built day by day, so that memory does not grow with the days.

The all-at-once path (:func:`hyperdapo.data.sources.load_market`, then :meth:`ExecutionTask.build` and
:func:`hyperdapo.execution.preferences.offset_rewards`) holds the whole span's book and tape in memory: three
months of tick data do not fit in 24 GiB. :func:`build_days` reads the per-day market files instead (one book
snapshot file and, optionally, one trade file per UTC day, in day order, as
:func:`hyperdapo.data.sources.market_files` returns them) and, for day k, holds only

- the tail of day k-1: the rows the look-back reaches (the features' :func:`~hyperdapo.features.compute.lookback_s`
  and the simulator's ``execution.impact_window_s``, counted back from day k-1's last snapshot);
- day k;
- the head of day k+1: the rows the reward window (``horizon_s + adverse_horizon_s``) of day k's last decisions
  reaches.

Day k's decisions are those at or after its first book snapshot and before day k+1's. For them it computes the
features and the rewards (bps) of each offset of the grid, with the simulator call the task uses
(:meth:`ExecutionTask.score_offsets`), writes the day's table (``ts_us``, ``side``, ``qty``, ``objective``,
``split``, every feature column, ``reward_<offset>bps``) as parquet atomically, and frees the day.

The tables equal the all-at-once ones bitwise (``tests/test_daily.py``):

- decisions: the seeded draws over the whole span are made at once (:func:`draw_decisions`: one row per decision,
  small) and sliced per day; quantities use the as-of mid, which the day's rows hold;
- splits: chronological over the whole span, from the first and last days' files, with the book and the trades
  cut to the span they share as :func:`~hyperdapo.data.sources.load_market` cuts them;
- features: each z-score's EWMA state and the running trade sums the window features difference are carried
  from day to day (:class:`~hyperdapo.features.compute.Carry`).

This holds when every day's book has the same number of levels (the concatenated book pads to the widest) and
the look-back fits in one day's file (checked).

Cache: ``<out_dir>/<asset>-<hash of the configs and every file's identity>/day-<k>.parquet``; each table's
metadata holds the carry after its day, so a second run reads the tables and an interrupted one resumes at its
first missing day. Adding a day moves the span, hence the splits, hence the key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, astuple, dataclass
from hashlib import sha256
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hyperdapo.atomic import atomic_path
from hyperdapo.data.cache import cache_key, load_cached
from hyperdapo.data.config import AssetConfig, VenueConfig
from hyperdapo.data.readers import Kind, detect_kind
from hyperdapo.data.schema import MarketData
from hyperdapo.data.sources import concat_books, concat_trades, span_shared
from hyperdapo.data.venues import Instrument
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.preferences import DEFAULT_OFFSETS_BPS, offset_rewards
from hyperdapo.execution.task import ExecutionTask, check_reward_window
from hyperdapo.features.compute import Carry, EwmState, TradeSums, compute_features_carried, lookback_s
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import DecisionSet, draw_decisions, with_quantity
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.timing import timed

log = logging.getLogger(__name__)
US_PER_S = 1_000_000
TABLE_VERSION = 1  # bump when a day table's columns or meaning change
CARRY_KEY = b"hyperdapo_carry"
DayFiles = tuple[Path, Path | None]  # (book snapshots, trades or None) of one day


@dataclass(frozen=True)
class DaySpec:
    """Everything a day's table depends on besides the market files."""

    asset: AssetConfig
    venue: VenueConfig
    decisions: DecisionConfig
    features: FeatureConfig
    fill: FillConfig
    reward: RewardConfig
    offsets_bps: tuple[float, ...] = DEFAULT_OFFSETS_BPS  # side-relative limit offsets from the arrival mid

    def __post_init__(self) -> None:
        check_reward_window(self.fill, self.decisions)

    @property
    def lookback_us(self) -> int:
        """How far before a decision the features or the simulator's impact model read the market (us)."""
        return int(max(lookback_s(self.features), self.fill.impact_window_s) * US_PER_S)

    @property
    def window_us(self) -> int:
        """How far after a decision its reward reads the market (us)."""
        return int(self.decisions.window_s * US_PER_S)


def reward_column(offset_bps: float) -> str:
    """The day table's column of the reward (bps) of one offset, e.g. ``reward_-15bps``."""
    return f"reward_{offset_bps:+g}bps"


def build_days(files: dict[str, list[Path]], spec: DaySpec, out_dir: Path | str,
               market_cache_dir: Path | str = "data/cache") -> list[Path]:
    """The day tables of ``files`` (``book`` and ``trades`` lists, one file a day, in day order), built or read
    from the cache under ``out_dir``; ``market_cache_dir`` is the parsed market files' cache."""
    days = _day_files(files)
    paths = _table_paths(days, spec, Path(out_dir))
    first = next((k for k, p in enumerate(paths) if not p.exists()), len(days))
    if first == len(days):
        log.info("day tables: all %d from the cache %s", len(days), paths[0].parent)
        return paths
    load = _DayLoader(spec.asset.name, days, Path(market_cache_dir))
    draws = draw_decisions(spec.asset.name, *load.book_span_us, spec.decisions)
    tail, carry = (None, Carry()) if first == 0 else _resume(load, first - 1, paths[first - 1], spec)
    for k in range(first, len(days)):
        with timed(log, f"day {k + 1}/{len(days)}"):
            tail, carry = _build_day(load, k, tail, carry, draws, spec, paths[k])
    return paths


def read_days(paths: list[Path]) -> pd.DataFrame:
    """The day tables as one table, in time order."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


# ---------------------------------------------------------------------------------------------- market pieces
def _build_day(load: _DayLoader, k: int, tail: MarketData | None, carry: Carry,
               draws: tuple[DecisionSet, np.ndarray], spec: DaySpec, path: Path) -> tuple[MarketData, Carry]:
    """Write day ``k``'s table to ``path`` from the previous day's ``tail`` and ``carry`` and the decision
    ``draws`` (:func:`draw_decisions`) of the whole span; return the day's tail and the carry after it. Every
    market piece but the tail is freed on return."""
    decisions, notional_usd = draws
    day, window, head = _window(load, k, tail, spec)
    lo = np.searchsorted(decisions.ts_us, day.book.ts_us[0])
    hi = len(decisions) if head is None else np.searchsorted(decisions.ts_us, head.book.ts_us[0])
    today = with_quantity(decisions.take(np.arange(lo, hi)), notional_usd[lo:hi], window.book.ts_us,
                          window.book.mid, Instrument(spec.venue, spec.asset).round_to_lot)
    table, ewm = _day_table(window, today, spec, carry)
    new_tail = _tail(day, spec.lookback_us, load.days[k][0], first_day=k == 0)
    new_carry = Carry(_sums_before(carry.trade_sums, window, tail, day, new_tail), ewm)
    _write_table(table, new_carry, path)
    return new_tail, new_carry


class _DayLoader:
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
        book_path, trades_path = self.days[k]
        book = load_cached(book_path, None, self.cache_dir)[0]
        trades = None if trades_path is None else load_cached(trades_path, Kind.TRADES, self.cache_dir)[0]
        return MarketData(self.asset, book, trades)

    def __call__(self, k: int) -> MarketData:
        market = self._raw(k)
        if self.span_us is not None:
            market = _cut(market, *self.span_us)
        if not len(market.book):
            raise ValueError(f"{self.days[k][0]}: no book snapshot inside the span the book and trades share")
        return market


def _shared_span_us(first: MarketData, last: MarketData, days: list[DayFiles]) -> tuple[int, int] | None:
    """[start, end] (us, inclusive) that the book and the trades of all days share (None: book only)."""
    if first.trades is None:
        return None
    start = span_shared(first.book.ts_us, first.trades.ts_us)[0]
    end = span_shared(last.book.ts_us, last.trades.ts_us)[1]
    if start >= end:
        raise ValueError(f"the book and trade files {days[0]} .. {days[-1]} share no time span")
    return int(start), int(end)


def _day_files(files: dict[str, list[Path]]) -> list[DayFiles]:
    if files.get("incremental"):
        raise ValueError("day-by-day builds read book snapshot files; incremental_book_L2 files are not supported")
    books, trades = list(files["book"]), list(files.get("trades") or [])
    if not books:
        raise ValueError("no book file to build days from")
    if trades and len(trades) != len(books):
        raise ValueError(f"{len(books)} book files but {len(trades)} trade files: give one of each a day")
    trade_paths = [Path(t) for t in trades] if trades else [None] * len(books)
    return list(zip(map(Path, books), trade_paths, strict=True))


def _window(load: _DayLoader, k: int, tail: MarketData | None,
            spec: DaySpec) -> tuple[MarketData, MarketData, MarketData | None]:
    """Day ``k``, its window (the previous day's ``tail``, the day, the next day's head) and that head (None on
    the last day)."""
    day = load(k)
    if tail is not None and day.book.ts_us[0] <= tail.book.ts_us[-1]:
        raise ValueError(f"{load.days[k][0]} starts before the previous day's file ends: give one file a day, in day "
                         "order")
    last = len(load.days) - 1
    head = None if k == last else _head(load(k + 1), spec.window_us, load.days[k + 1][0], last=k + 1 == last)
    return day, _concat([p for p in (tail, day, head) if p is not None]), head


def _rows(market: MarketData, book_rows: slice, trade_rows: slice) -> MarketData:
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
    return _rows(market, span(b), span(t))


def _tail(day: MarketData, lookback_us: int, path: Path, first_day: bool) -> MarketData:
    """The rows of ``day`` that the next day's look-back reaches: the book from the last snapshot at or before
    ``day``'s last snapshot minus ``lookback_us``, the trades after that time."""
    from_us = int(day.book.ts_us[-1]) - lookback_us
    i = np.searchsorted(day.book.ts_us, from_us, side="right") - 1
    if i < 0 and not first_day:
        raise ValueError(f"{path} covers less than the look-back ({lookback_us / US_PER_S:g} s): day-by-day builds "
                         "need it to fit in one day's file")
    j = 0 if day.trades is None else np.searchsorted(day.trades.ts_us, from_us, side="right")
    return _rows(day, slice(max(i, 0), None), slice(j, None))


def _head(day: MarketData, window_us: int, path: Path, last: bool) -> MarketData:
    """The rows of ``day`` that the previous day's reward windows reach: the snapshots up to its first one plus
    ``window_us`` and the next one (so the simulator sees the same last snapshot), the trades up to that one."""
    n = np.searchsorted(day.book.ts_us, day.book.ts_us[0] + window_us, side="right") + 1
    if n > len(day.book) and not last:
        raise ValueError(f"{path} covers less than the reward window ({window_us / US_PER_S:g} s): day-by-day "
                         "builds need it to fit in one day's file")
    end_us = day.book.ts_us[min(n, len(day.book)) - 1]
    m = 0 if day.trades is None else np.searchsorted(day.trades.ts_us, end_us, side="right")
    return _rows(day, slice(0, n), slice(0, m))


def _concat(pieces: list[MarketData]) -> MarketData:
    trades = None if pieces[0].trades is None else concat_trades([p.trades for p in pieces])
    return MarketData(pieces[0].asset, concat_books([p.book for p in pieces]), trades)


def _sums_before(before_window: TradeSums, window: MarketData, tail: MarketData | None, day: MarketData,
                 new_tail: MarketData) -> TradeSums:
    """The sums of every trade before ``new_tail``'s first: ``before_window`` plus the window's trades up to it."""
    if window.trades is None:
        return before_window
    n = (0 if tail is None else len(tail.trades)) + len(day.trades) - len(new_tail.trades)
    return before_window.plus(window.trades.take(slice(0, n)))


# ---------------------------------------------------------------------------------------------- one day
def _day_table(window: MarketData, decisions: DecisionSet, spec: DaySpec,
               carry: Carry) -> tuple[pd.DataFrame, dict[str, EwmState]]:
    """The day's table (module docstring) and the EWMA states after its rows."""
    features, ewm = compute_features_carried(window, decisions.ts_us, spec.features, carry)
    task = ExecutionTask(spec.asset, spec.venue, window, decisions, [], features["mid_usd"].to_numpy(), [], spec.fill,
                         spec.reward, PromptConfig())
    rewards = (offset_rewards(task, np.arange(len(decisions)), spec.offsets_bps) if len(decisions)
               else np.empty((0, len(spec.offsets_bps))))  # a day without decisions (the simulator needs one)
    table = pd.DataFrame({"ts_us": decisions.ts_us, "side": decisions.side, "qty": decisions.qty,
                          "objective": decisions.objective, "split": decisions.split})
    reward_cols = pd.DataFrame(rewards, columns=[reward_column(o) for o in spec.offsets_bps])
    return pd.concat([table, features.drop(columns="ts_us"), reward_cols], axis=1), ewm


# ---------------------------------------------------------------------------------------------- cache
def _table_paths(days: list[DayFiles], spec: DaySpec, out_dir: Path) -> list[Path]:
    ident = ([cache_key(book, detect_kind(book)) for book, _ in days]
             + [cache_key(trades, Kind.TRADES) for _, trades in days if trades is not None])
    key = json.dumps({"version": TABLE_VERSION, "spec": asdict(spec), "files": ident}, sort_keys=True, default=str)
    root = out_dir / f"{spec.asset.name}-{sha256(key.encode()).hexdigest()[:12]}"
    return [root / f"day-{k:04d}.parquet" for k in range(len(days))]


def _write_table(table: pd.DataFrame, carry: Carry, path: Path) -> None:
    """Write the day's table with the carry after it (JSON floats round-trip exactly) atomically."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {"trade_sums": astuple(carry.trade_sums), "ewm": {k: astuple(s) for k, s in carry.ewm.items()}}
    arrow = arrow.replace_schema_metadata({**arrow.schema.metadata, CARRY_KEY: json.dumps(meta)})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def _resume(load: _DayLoader, k: int, path: Path, spec: DaySpec) -> tuple[MarketData, Carry]:
    """The tail of day ``k`` and the carry after it, from its market file and its table's metadata."""
    meta = json.loads(pq.read_schema(path).metadata[CARRY_KEY])
    carry = Carry(TradeSums(*meta["trade_sums"]), {k: EwmState(*s) for k, s in meta["ewm"].items()})
    log.info("day tables: resuming after day %d (%s)", k + 1, path)
    return _tail(load(k), spec.lookback_us, load.days[k][0], first_day=k == 0), carry
