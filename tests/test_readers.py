"""Readers on small hand-written files of every supported format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import lz4.frame
import numpy as np
import pytest

from hyperdapo.data.orderbook import reconstruct_snapshots
from hyperdapo.data.readers import Kind, detect_kind, read_market_file
from hyperdapo.data.schema import BookUpdates, Side

HEAD = "exchange,symbol,timestamp,local_timestamp"


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return path


def book5_lines() -> list[str]:
    cols = ",".join(f"asks[{k}].price,asks[{k}].amount,bids[{k}].price,bids[{k}].amount" for k in range(5))
    full = ",".join(f"{101 + k},{1 + k},{100 - k},{2 + k}" for k in range(5))
    partial = "102,1,99,2," + ",,,," * 3 + ",,,"  # one level a side, then blanks
    return [f"{HEAD},{cols}", f"hyperliquid,BTC,1000000,1000500,{full}", f"hyperliquid,BTC,2000000,2000100,{partial}"]


def test_book_snapshot_5_blank_levels_are_nan(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", book5_lines())
    r = read_market_file(p)
    b = r.table
    assert r.kind is Kind.BOOK_SNAPSHOT and b.n_levels == 5 and len(b) == 2
    np.testing.assert_array_equal(b.ask_px[0], [101, 102, 103, 104, 105])
    np.testing.assert_array_equal(b.bid_px[0], [100, 99, 98, 97, 96])
    np.testing.assert_array_equal(b.bid_sz[0], [2, 3, 4, 5, 6])
    assert b.ask_px[1, 0] == 102 and np.isnan(b.ask_px[1, 1:]).all() and np.isnan(b.bid_sz[1, 1:]).all()
    assert b.ts_us.tolist() == [1_000_000, 2_000_000] and b.local_ts_us.tolist() == [1_000_500, 2_000_100]
    assert b.mid.tolist() == [100.5, 100.5]


def test_trades_sides_and_unknown(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_trades_2024-01-01_BTC.csv.gz", [
        f"{HEAD},id,side,price,amount",
        "hyperliquid,BTC,1,2,a1,buy,100.5,0.01",
        "hyperliquid,BTC,3,4,a2,sell,100.0,0.02",
        "hyperliquid,BTC,5,6,a3,unknown,100.0,0.03",
    ])
    t = read_market_file(p).table
    assert t.side.tolist() == [Side.BUY, Side.SELL, 0]
    assert t.price.tolist() == [100.5, 100.0, 100.0] and t.amount.tolist() == [0.01, 0.02, 0.03]


def test_quotes_become_one_level_book(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_quotes_2024-01-01_BTC.csv.gz", [
        f"{HEAD},ask_amount,ask_price,bid_price,bid_amount", "hyperliquid,BTC,1,2,3.0,101,100,4.0"])
    b = read_market_file(p).table
    assert b.n_levels == 1 and b.ask_px[0, 0] == 101 and b.bid_sz[0, 0] == 4.0


def test_incremental_updates_and_reconstruction_by_hand(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_incremental_book_L2_2024-01-01_BTC.csv.gz", [
        f"{HEAD},is_snapshot,side,price,amount",
        "hyperliquid,BTC,10,11,true,bid,100,1", "hyperliquid,BTC,10,11,true,bid,99,2",
        "hyperliquid,BTC,10,11,true,ask,101,3",
        "hyperliquid,BTC,20,21,false,bid,100,5",  # size change
        "hyperliquid,BTC,30,31,false,bid,100,0",  # delete -> best bid 99
        "hyperliquid,BTC,30,31,false,ask,105,0",  # delete an absent level (tolerated, counted)
        "hyperliquid,BTC,40,41,true,bid,90,1", "hyperliquid,BTC,40,41,true,ask,91,1",  # new snapshot replaces all
    ])
    u = read_market_file(p).table
    assert isinstance(u, BookUpdates) and u.is_snapshot.tolist()[:3] == [True] * 3
    r = reconstruct_snapshots(u, np.array([10, 15, 20, 35, 40]), 2)
    b = r.book
    assert b.bid_px[:, 0].tolist() == [100, 100, 100, 99, 90]
    assert b.bid_sz[:, 0].tolist() == [1, 1, 5, 2, 1]
    assert b.bid_px[1].tolist() == [100, 99] and np.isnan(b.bid_px[4, 1])
    assert b.ask_px[:, 0].tolist() == [101, 101, 101, 101, 91]
    assert r.missing_deletes == 1


def _hl_line(ms: int, bids, asks, local="2024-01-01T12:00:01.138942031") -> str:
    lv = lambda xs: [{"px": str(p), "sz": str(s), "n": 1} for p, s in xs]  # noqa: E731
    return json.dumps({"time": local, "ver_num": 1,
                       "raw": {"channel": "l2Book",
                               "data": {"coin": "BTC", "time": ms, "levels": [lv(bids), lv(asks)]}}})


def write_lz4(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lz4.frame.compress(("\n".join(lines) + "\n").encode()))
    return path


def test_hyperliquid_archive_layout(tmp_path):
    p = write_lz4(tmp_path / "market_data/20240101/12/l2Book/BTC.lz4", [
        _hl_line(1704110399915, [(42727.0, 0.5), (42726.0, 1.0)], [(42728.0, 0.25)]),
        _hl_line(1704110400915, [(42727.0, 0.5)], [(42728.0, 0.25), (42729.0, 2.0)]),
    ])
    assert detect_kind(p) is Kind.HYPERLIQUID_L2BOOK
    b = read_market_file(p).table
    assert b.n_levels == 2 and b.ts_us.tolist() == [1704110399915000, 1704110400915000]
    assert b.local_ts_us[0] == 1704110401138942  # ns truncated to us
    assert b.ask_px[0, 0] == 42728.0 and np.isnan(b.ask_px[0, 1]) and np.isnan(b.bid_px[1, 1])


def test_unknown_name_is_read_by_its_header_or_needs_kind(tmp_path):
    p = write_gz(tmp_path / "mystery.csv.gz", book5_lines())
    assert read_market_file(p).table.n_levels == 5  # the header has asks[0].price: a book snapshot
    q = write_gz(tmp_path / "mystery2.csv.gz", [f"{HEAD},a,b", "x,BTC,1,2,3,4"])
    with pytest.raises(ValueError, match="mystery2.csv.gz.*name or the CSV header"):
        read_market_file(q)
    assert read_market_file(p, kind="book_snapshot").table.n_levels == 5
