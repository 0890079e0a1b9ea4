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
from hyperdapo.data.cache import cache_key
from hyperdapo.data.config import AssetConfig, VenueConfig
from hyperdapo.data.readers import detect_kind, trade_kind
from hyperdapo.data.schema import MarketData
from hyperdapo.data.venues import Instrument
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.preferences import DEFAULT_OFFSETS_BPS, offset_rewards
from hyperdapo.execution.tape import (
    DayFiles,
    DayLoader,
    DayTape,
    MemoryTape,
    day_files,
    day_label,
    day_tail,
    day_window,
)
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.compute import Carry, EwmState, TradeSums, compute_features_carried, lookback_s
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import DecisionSet, draw_decisions, outside_gaps, with_quantity
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.timing import timed

log = logging.getLogger(__name__)
US_PER_S = 1_000_000
TABLE_VERSION = 2  # bump when a day table's columns or meaning change
CARRY_KEY = b"hyperdapo_carry"
DAY_START_KEY = b"hyperdapo_day_start_us"  # the day's first book snapshot (us), where a DayTape routes orders


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
    days = day_files(files)
    paths = _table_paths(days, spec, Path(out_dir))
    first = next((k for k, p in enumerate(paths) if not p.exists()), len(days))
    if first == len(days):
        log.info("day tables: all %d from the cache %s", len(days), paths[0].parent)
        return paths
    load = DayLoader(spec.asset.name, days, Path(market_cache_dir))
    draws = draw_decisions(spec.asset.name, *load.book_span_us, spec.decisions)
    tail, carry = (None, Carry()) if first == 0 else _resume(load, first - 1, paths[first - 1], spec)
    for k in range(first, len(days)):
        with timed(log, f"day {k + 1}/{len(days)}"):
            tail, carry = _build_day(load, k, tail, carry, draws, spec, paths[k])
    return paths


def read_days(paths: list[Path]) -> pd.DataFrame:
    """The day tables as one table, in time order."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


DECISION_COLUMNS = ("side", "qty", "objective", "split")  # a day table's decision columns besides ts_us


def day_task(files: dict[str, list[Path]], spec: DaySpec, prompt_cfg: PromptConfig, table_dir: Path | str,
             market_cache_dir: Path | str, days_in_memory: int = 2) -> ExecutionTask:
    """The task of a run whose market is read day by day: decisions and features from the day tables
    (:func:`build_days`), orders simulated on a :class:`~hyperdapo.execution.tape.DayTape` holding at most
    ``days_in_memory`` day windows. Equal to :meth:`ExecutionTask.build` on the concatenated market (same decisions,
    features, prompts and scores; ``tests/test_daily.py``) except that training batches draw from one day each."""
    paths = build_days(files, spec, table_dir, market_cache_dir)
    tables = [pd.read_parquet(p) for p in paths]
    table = pd.concat(tables, ignore_index=True)
    decisions = DecisionSet(spec.asset.name, table["ts_us"].to_numpy(), table["side"].to_numpy(),
                            table["qty"].to_numpy(), table["objective"].to_numpy(), table["split"].to_numpy(),
                            spec.decisions.horizon_s, spec.decisions.adverse_horizon_s)
    features = table[[c for c in table.columns if c not in DECISION_COLUMNS and not c.startswith("reward_")]]
    starts = np.array([int(pq.read_schema(p).metadata[DAY_START_KEY]) for p in paths], dtype=np.int64)
    tape = DayTape(DayLoader(spec.asset.name, day_files(files), Path(market_cache_dir)), spec.lookback_us,
                   spec.window_us, starts, days_in_memory)
    day = np.repeat(np.arange(len(tables)), [len(t) for t in tables])
    return ExecutionTask.assemble(spec.asset, spec.venue, tape, decisions, features.to_dict("records"),
                                  spec.decisions.window_s, spec.fill, spec.reward, prompt_cfg, day=day)


# ---------------------------------------------------------------------------------------------- market pieces
def _build_day(load: DayLoader, k: int, tail: MarketData | None, carry: Carry,
               draws: tuple[DecisionSet, np.ndarray], spec: DaySpec, path: Path) -> tuple[MarketData, Carry]:
    """Write day ``k``'s table to ``path`` from the previous day's ``tail`` and ``carry`` and the decision
    ``draws`` (:func:`draw_decisions`) of the whole span; return the day's tail and the carry after it. Every
    market piece but the tail is freed on return."""
    decisions, notional_usd = draws
    day, window, head = day_window(load, k, tail, spec.window_us)
    lo = np.searchsorted(decisions.ts_us, day.book.ts_us[0])
    hi = len(decisions) if head is None else np.searchsorted(decisions.ts_us, head.book.ts_us[0])
    today = with_quantity(decisions.take(np.arange(lo, hi)), notional_usd[lo:hi], window.book.ts_us,
                          window.book.mid, Instrument(spec.venue, spec.asset).round_to_lot)
    today = outside_gaps(today, window.book.ts_us, spec.decisions.max_gap_s)
    table, ewm = _day_table(window, today, spec, carry)
    new_tail = day_tail(day, spec.lookback_us, day_label(load.days[k]), first_day=k == 0)
    new_carry = Carry(_sums_before(carry.trade_sums, window, tail, day, new_tail), ewm)
    _write_table(table, new_carry, int(day.book.ts_us[0]), path)
    return new_tail, new_carry


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
    task = ExecutionTask(spec.asset, spec.venue, MemoryTape(window), decisions, [], features["mid_usd"].to_numpy(), [],
                         spec.fill, spec.reward, PromptConfig())
    rewards = (offset_rewards(task, np.arange(len(decisions)), spec.offsets_bps) if len(decisions)
               else np.empty((0, len(spec.offsets_bps))))  # a day without decisions (the simulator needs one)
    table = pd.DataFrame({"ts_us": decisions.ts_us, "side": decisions.side, "qty": decisions.qty,
                          "objective": decisions.objective, "split": decisions.split})
    reward_cols = pd.DataFrame(rewards, columns=[reward_column(o) for o in spec.offsets_bps])
    return pd.concat([table, features.drop(columns="ts_us"), reward_cols], axis=1), ewm


# ---------------------------------------------------------------------------------------------- cache
def _table_paths(days: list[DayFiles], spec: DaySpec, out_dir: Path) -> list[Path]:
    ident = ([cache_key(book, detect_kind(book)) for books, _ in days for book in books]
             + [cache_key(trades, trade_kind(trades)) for _, tapes in days for trades in tapes])
    key = json.dumps({"version": TABLE_VERSION, "spec": asdict(spec), "files": ident}, sort_keys=True, default=str)
    root = out_dir / f"{spec.asset.name}-{sha256(key.encode()).hexdigest()[:12]}"
    return [root / f"day-{k:04d}.parquet" for k in range(len(days))]


def _write_table(table: pd.DataFrame, carry: Carry, day_start_us: int, path: Path) -> None:
    """Write the day's table with the carry after it (JSON floats round-trip exactly) and the day's first
    snapshot time atomically."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {"trade_sums": astuple(carry.trade_sums), "ewm": {k: astuple(s) for k, s in carry.ewm.items()}}
    arrow = arrow.replace_schema_metadata({**arrow.schema.metadata, CARRY_KEY: json.dumps(meta),
                                           DAY_START_KEY: str(day_start_us)})
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def _resume(load: DayLoader, k: int, path: Path, spec: DaySpec) -> tuple[MarketData, Carry]:
    """The tail of day ``k`` and the carry after it, from its market file and its table's metadata."""
    meta = json.loads(pq.read_schema(path).metadata[CARRY_KEY])
    carry = Carry(TradeSums(*meta["trade_sums"]), {k: EwmState(*s) for k, s in meta["ewm"].items()})
    log.info("day tables: resuming after day %d (%s)", k + 1, path)
    return day_tail(load(k), spec.lookback_us, day_label(load.days[k]), first_day=k == 0), carry
