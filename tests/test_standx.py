"""The parquet readers on the real StandX recording (../shared/data/standx, skipped when absent), its quirks, gaps
in a recorder's book, and hourly files read day by day."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.cache import load_cached
from hyperdapo.data.config import DataConfig, FilesConfig
from hyperdapo.data.readers import Kind, detect_kind, read_market_file, tick_test_sides
from hyperdapo.data.schema import Side
from hyperdapo.data.sources import load_market, market_files
from hyperdapo.data.validation import DataFileError
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.daily import DaySpec, build_days, read_days
from hyperdapo.execution.tape import day_files
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import DecisionSet, outside_gaps
from tests.test_daily import all_at_once_table, assert_bitwise_equal

HOUR = "2026-01-06_10"


def test_book_file_round_trip(standx_dir, tmp_path):
    path = standx_dir / f"orderbook_BTC-USD_{HOUR}.parquet"
    raw = pq.read_table(path)
    assert detect_kind(path) is Kind.LEVELS_PARQUET
    result = read_market_file(path)
    book = result.table
    # every row is either kept or dropped in exactly one class; the recorder writes each snapshot twice, and the
    # 0.1-USD book is locked (bid = ask) in ~40 % of its snapshots
    assert len(book) + sum(result.dropped.values()) == raw.num_rows
    assert result.dropped["duplicate"] > 0.25 * raw.num_rows and result.dropped["crossed"] > 0.2 * raw.num_rows
    assert (book.bid_px[:, 0] < book.ask_px[:, 0]).all() and book.n_levels == 20
    # a kept row equals the file's row: times in us (exchange and receive), levels best first
    ts_us = pc.cast(raw["timestamp"], pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy()
    k = int(np.flatnonzero(ts_us == book.ts_us[100])[0])
    row = raw.slice(k, 1).to_pylist()[0]
    assert book.ts_us[100] == int(row["timestamp"].timestamp() * 1_000_000 + 0.5)
    assert book.local_ts_us[100] == int(round(row["received_at"].timestamp() * 1e6))
    np.testing.assert_array_equal(book.bid_px[100], row["bid_prices"])
    np.testing.assert_array_equal(book.ask_sz[100], row["ask_quantities"])
    np.testing.assert_allclose(0.5 * (book.bid_px[100, 0] + book.ask_px[100, 0]), row["mid_price"])
    # the parquet cache returns the same table
    for _ in range(2):
        cached, summary = load_cached(path, None, tmp_path)
        np.testing.assert_array_equal(cached.bid_px, book.bid_px)
        np.testing.assert_array_equal(cached.ts_us, book.ts_us)
    assert summary.from_cache and summary.kind == "book_snapshot" and summary.levels == 20


def test_trade_file_round_trip_with_tick_test_sides(standx_dir, tmp_path):
    path = standx_dir / f"trades_BTC-USD_{HOUR}.parquet"
    raw = pq.read_table(path)
    assert detect_kind(path) is Kind.TRADES_PARQUET
    trades = read_market_file(path).table
    assert len(trades) == raw.num_rows
    np.testing.assert_array_equal(trades.price, raw["price"].to_numpy())
    np.testing.assert_array_equal(trades.amount, raw["quantity"].to_numpy())
    # every trade of the recording says SELL: the reader replaces that by the tick test
    assert set(raw["side"].to_pylist()) == {"SELL"}
    np.testing.assert_array_equal(trades.side, tick_test_sides(raw["price"].to_numpy()))
    assert (trades.side == Side.BUY).mean() > 0.3 and (trades.side == Side.SELL).mean() > 0.3
    cached, _ = load_cached(path, Kind.TRADES_PARQUET, tmp_path)
    cached, summary = load_cached(path, Kind.TRADES_PARQUET, tmp_path)
    assert summary.from_cache and summary.kind == "trades"
    np.testing.assert_array_equal(cached.side, trades.side)


def test_tick_test_by_hand():
    price = np.array([10.0, 10.0, 10.1, 10.1, 10.0, 10.0, 10.2])
    # before the first change: unknown; up-tick buy, zero tick keeps the last non-zero tick, down-tick sell
    np.testing.assert_array_equal(tick_test_sides(price), [0, 0, 1, 1, -1, -1, 1])


def _write(table: pa.Table, path) -> None:
    pq.write_table(table, path)


def test_bad_parquet_files_name_file_row_and_field(standx_dir, tmp_path):
    src = standx_dir / f"orderbook_BTC-USD_{HOUR}.parquet"
    truncated = tmp_path / "orderbook_cut.parquet"
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(DataFileError, match="orderbook_cut.parquet.*truncated or corrupt"):
        read_market_file(truncated)
    table = pq.read_table(src).slice(0, 50)
    _write(table.drop_columns(["ask_quantities"]), tmp_path / "no_asks.parquet")
    with pytest.raises(DataFileError, match="no_asks.parquet.*neither"):
        read_market_file(tmp_path / "no_asks.parquet")
    with pytest.raises(DataFileError, match=r"no_asks.parquet.*missing column\(s\) \['ask_quantities'\]"):
        read_market_file(tmp_path / "no_asks.parquet", Kind.LEVELS_PARQUET)
    ts = table["timestamp"].to_pylist()
    ts[7] = None
    _write(table.set_column(0, "timestamp", pa.array(ts, table.schema.field("timestamp").type)),
           tmp_path / "null_ts.parquet")
    with pytest.raises(DataFileError, match="null_ts.parquet, data row 8, field 'timestamp': missing timestamp"):
        read_market_file(tmp_path / "null_ts.parquet")
    bids = table["bid_prices"].to_pylist()
    bids[3][2] = -1.0
    _write(table.set_column(table.schema.get_field_index("bid_prices"), "bid_prices", pa.array(bids)),
           tmp_path / "neg_px.parquet")
    with pytest.raises(DataFileError, match=r"neg_px.parquet, data row 4, field 'bids\[2\].price'"):
        read_market_file(tmp_path / "neg_px.parquet")


def test_decisions_touching_a_book_gap_are_dropped():
    s = 1_000_000
    book_ts = np.array([0, 1, 2, 3, 100, 101, 102, 200], dtype=np.int64) * s  # gaps 3 -> 100 and 102 -> 200 s
    t = np.array([0, 1, 2, 3, 50, 100, 101, 150], dtype=np.int64) * s
    d = DecisionSet("BTC", t, np.ones(8, np.int8), np.ones(8), np.array(["patient"] * 8), np.array(["train"] * 8),
                    horizon_s=0.5, adverse_horizon_s=0.5)
    kept = outside_gaps(d, book_ts, max_gap_s=10)
    # window [t, t + 1 s]: 2 -> 3 is clear, 3 opens a gap before its window ends, 50 and 150 lie inside gaps,
    # 100 is clear, 101 -> 102 reaches the snapshot at 102 only and the gap opens there (not touched)
    np.testing.assert_array_equal(kept.ts_us // s, [0, 1, 2, 100, 101])
    assert len(outside_gaps(d, book_ts, max_gap_s=1000)) == 8


def test_hourly_files_group_into_days():
    names = [f"orderbook_BTC-USD_2026-01-0{d}_{h:02d}.parquet" for d, h in ((5, 22), (5, 23), (6, 0), (6, 1), (7, 0))]
    days = day_files({"book": names, "trades": [n.replace("orderbook", "trades") for n in names]})
    assert [len(b) for b, _ in days] == [2, 2, 1]
    assert [t.name for t in days[1][1]] == [f"trades_BTC-USD_2026-01-06_0{h}.parquet" for h in (0, 1)]
    assert [len(b) for b, _ in day_files({"book": ["a.csv", "b.csv"]})] == [1, 1]  # no date: a day a file
    with pytest.raises(ValueError, match="trade files of the same days"):
        day_files({"book": names, "trades": names[:3]})


@pytest.mark.slow
def test_hourly_files_day_by_day_equal_all_at_once(standx_dir, tmp_path):
    """Three hours across midnight (two UTC days of hourly files): the day tables equal the all-at-once ones."""
    hours = ["2026-01-05_23", "2026-01-06_00", "2026-01-06_01"]
    for h in hours:
        for kind in ("orderbook", "trades"):
            shutil.copy(standx_dir / f"{kind}_BTC-USD_{h}.parquet", tmp_path)
    files = FilesConfig(book=[str(tmp_path / "orderbook_*.parquet")], trades=[str(tmp_path / "trades_*.parquet")])
    data = DataConfig(source="files", files=files, cache_dir=str(tmp_path / "cache"))
    decisions = DecisionConfig(every_s=60, horizon_s=60, adverse_horizon_s=30, embargo_s=120, warmup_s=600)
    spec = DaySpec(load_asset("btc"), load_venue("standx"), decisions, FeatureConfig(large_trade_lookback_s=1800),
                   FillConfig(), RewardConfig())
    want = all_at_once_table(load_market(spec.asset, data), spec)
    paths = build_days(market_files(spec.asset, data), spec, tmp_path / "days", data.cache_dir)
    assert len(paths) == 2
    got = read_days(paths)
    assert_bitwise_equal(got, want)
    assert len(got) > 100 and set(got["split"]) == {"train", "val", "test"}
    first = dt.datetime.fromtimestamp(got["ts_us"].iloc[0] / 1e6, dt.UTC)
    assert first >= dt.datetime(2026, 1, 5, 23, 10, tzinfo=dt.UTC)  # warm-up after the first snapshot
