"""One test per bad-input class: the error names the file and the row (and the field where relevant)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hyperdapo.data.cache import load_cached
from hyperdapo.data.readers import read_market_file
from hyperdapo.data.validation import DataFileError
from tests.test_readers import HEAD, _hl_line, book5_lines, write_gz, write_lz4

TRADES_HEAD = f"{HEAD},id,side,price,amount"


def trades_file(tmp_path, rows: list[str]):
    return write_gz(tmp_path / "hyperliquid_trades_2024-01-01_BTC.csv.gz", [TRADES_HEAD, *rows])


def good_trades(n: int) -> list[str]:
    return [f"hyperliquid,BTC,{1000 + i},{1001 + i},{i},buy,100.5,0.01" for i in range(n)]


def raises_naming(path, *parts: str):
    return pytest.raises(DataFileError, match=re.escape(str(path)) + ".*" + ".*".join(map(re.escape, parts)))


def test_truncated_gzip(tmp_path):
    p = trades_file(tmp_path, good_trades(20_000))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with raises_naming(p, "data row", "truncated"):
        read_market_file(p)


def test_corrupt_gzip(tmp_path):
    p = trades_file(tmp_path, good_trades(100))
    data = bytearray(p.read_bytes())
    data[-200:-180] = b"\x00" * 20  # damage the stream after the first rows
    p.write_bytes(bytes(data))
    with raises_naming(p, "data row"):
        read_market_file(p)


def test_missing_columns(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_trades_2024-01-01_BTC.csv.gz", [f"{HEAD},id,side,price", "x,BTC,1,2,3,buy,1"])
    with raises_naming(p, "header", "missing column", "amount"):
        read_market_file(p)


def test_non_numeric_value(tmp_path):
    rows = good_trades(5)
    rows[3] = "hyperliquid,BTC,1003,1004,3,buy,abc,0.01"
    p = trades_file(tmp_path, rows)
    with raises_naming(p, "data row 4", "field 'price'", "'abc'"):
        read_market_file(p)


def test_negative_size(tmp_path):
    rows = good_trades(5)
    rows[2] = "hyperliquid,BTC,1002,1003,2,sell,100.5,-0.5"
    p = trades_file(tmp_path, rows)
    with raises_naming(p, "data row 3", "field 'amount'", "-0.5", "finite and >= 0"):
        read_market_file(p)


def test_timestamps_going_backwards(tmp_path):
    rows = good_trades(5)
    rows[4] = "hyperliquid,BTC,999,1000,4,buy,100.5,0.01"
    p = trades_file(tmp_path, rows)
    with raises_naming(p, "data row 5", "field 'timestamp'", "backwards"):
        read_market_file(p)


def test_malformed_json_line(tmp_path):
    good = _hl_line(1704110399915, [(100.0, 1.0)], [(101.0, 1.0)])
    p = write_lz4(tmp_path / "l2Book" / "BTC.lz4", [good, good, '{"time": "2024-01-01T12:00:01", "raw": {'])
    with raises_naming(p, "line 3", "malformed JSON"):
        read_market_file(p)


def test_truncated_lz4(tmp_path):
    lines = [_hl_line(1704110399915 + i, [(100.0, 1.0)], [(101.0, 1.0)]) for i in range(2000)]
    p = write_lz4(tmp_path / "l2Book" / "BTC.lz4", lines)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with raises_naming(p, "line", "truncated or corrupt LZ4"):
        read_market_file(p)


def test_crossed_books_dropped_with_warning_and_counted(tmp_path):
    lines = book5_lines()
    cols = lines[0].split(",")
    crossed = lines[1].split(",")
    crossed[2] = "1500000"
    crossed[cols.index("bids[0].price")] = "101"  # best bid == best ask 101
    lines.insert(2, ",".join(crossed))
    lines[3] = lines[3].replace("2000000", "2500000", 1)
    p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", lines)
    with pytest.warns(UserWarning, match=re.escape(str(p)) + ".*1 crossed.*rows \\[2\\]"):
        r = read_market_file(p)
    assert r.crossed == 1 and len(r.table) == 2


def test_failure_leaves_no_partial_cache_file(tmp_path):
    rows = good_trades(5)
    rows[1] = "hyperliquid,BTC,1001,1002,1,buy,oops,0.01"
    p = trades_file(tmp_path, rows)
    cache = tmp_path / "cache"
    with pytest.raises(DataFileError):
        load_cached(p, cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_error_message_is_one_line_in_the_cli(tmp_path, capsys):
    from hyperdapo.data.__main__ import main

    p = trades_file(tmp_path, ["hyperliquid,BTC,1,2,0,buy,1.0,-1"])
    assert main(["ingest", str(p), "--cache-dir", str(tmp_path / "c")]) == 2
    out = capsys.readouterr().out
    assert "error:" in out and "data row 1" in out and "Traceback" not in out


@pytest.mark.parametrize("name", ["hyperliquid_trades_2024-01-01_BTC.csv.gz", "no-format-in-this-name.bin"])
def test_missing_file_is_named(tmp_path, name):
    # issue 14: os.stat failed inside the cache key with a raw error (or the name check came first)
    p = tmp_path / "gone" / name
    with pytest.raises(FileNotFoundError, match=r"^market-data file not found: " + re.escape(str(p))):
        load_cached(p, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_missing_file_is_one_line_in_the_cli(tmp_path, capsys):
    from hyperdapo.data.__main__ import main

    p = tmp_path / "hyperliquid_trades_2024-01-01_BTC.csv.gz"
    assert main(["ingest", str(p), "--cache-dir", str(tmp_path / "c")]) == 2
    out = capsys.readouterr().out
    assert "error:" in out and "not found" in out and p.name in out and "Traceback" not in out


def test_missing_archive_file_names_the_config_key(tmp_path):
    from hyperdapo.data.assets import load_asset
    from hyperdapo.data.config import DataConfig
    from hyperdapo.data.sources import load_market

    cfg = DataConfig(source="hyperliquid_archive", archive_files=[str(tmp_path / "20240101-12-l2Book-BTC.lz4")],
                     cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"data\.archive_files\[0\]=.*20240101-12-l2Book-BTC\.lz4"):
        load_market(load_asset("BTC"), cfg)


def test_relative_archive_path_is_found_from_the_project_root(tmp_path, monkeypatch):
    # a relative entry matching nothing from the cwd is looked up from the project root; the cwd comes first
    from hyperdapo.data import sources

    root, cwd = tmp_path / "root", tmp_path / "cwd"
    in_root = write_lz4(root / "hl" / "20240101-12-l2Book-BTC.lz4", ["{}"])  # resolving paths reads no content
    cwd.mkdir()
    monkeypatch.setattr(sources, "PROJECT_ROOT", root)
    monkeypatch.chdir(cwd)
    assert [p.resolve() for p in sources.archive_files(["hl/*-BTC.lz4"])] == [in_root.resolve()]
    in_cwd = write_lz4(cwd / "hl" / "20240101-13-l2Book-BTC.lz4", ["{}"])
    assert [p.resolve() for p in sources.archive_files(["hl/*-BTC.lz4"])] == [in_cwd.resolve()]


def test_shared_sample_default_path_works_from_any_directory(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from hyperdapo.data.sources import PROJECT_ROOT, archive_files

    patterns = list(OmegaConf.load(PROJECT_ROOT / "conf" / "data" / "hyperliquid_archive.yaml").archive_files)
    if not (PROJECT_ROOT / patterns[0]).exists():
        pytest.skip("the shared Hyperliquid sample is not on this machine")
    monkeypatch.chdir(tmp_path)
    assert [p.resolve() for p in archive_files(patterns)] == [(PROJECT_ROOT / patterns[0]).resolve()]


# ------------------------------------------------------------------ bad market data, one test per class
def _book_file(tmp_path, edit):
    """book_snapshot_5 rows 1-3 (row 3 a copy of row 1 one second later) with ``edit(fields, cols)`` on row 2."""
    lines = book5_lines()
    cols = lines[0].split(",")
    row2 = lines[1].split(",")
    row2[2] = "1500000"
    edit(row2, cols)
    third = lines[1].replace("1000000", "2000000", 1)
    return write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz",
                    [lines[0], lines[1], ",".join(row2), third])


@pytest.mark.parametrize(("cells", "field", "shown"), [
    ({"asks[0].price": "0"}, "asks[0].price", "price 0.0"),  # zero
    ({"asks[0].price": "-101"}, "asks[0].price", "price -101.0"),  # negative
    ({"asks[0].price": "inf"}, "asks[0].price", "price inf"),  # infinite
    ({"bids[1].price": "nan"}, "bids[1].price", "price nan"),  # NaN price on a level with a size
    ({"asks[2].amount": "nan"}, "asks[2].amount", "size nan"),  # NaN size
    ({"bids[1].price": "98", "bids[2].price": "99"}, "bids[2].price", "not descending"),  # unsorted levels
])
def test_bad_book_values_are_rejected_naming_row_and_field(tmp_path, cells, field, shown):
    def edit(row, cols):
        for name, value in cells.items():
            row[cols.index(name)] = value
    p = _book_file(tmp_path, edit)
    with raises_naming(p, "data row 2", f"field '{field}'", shown):
        read_market_file(p)


def test_blank_best_level_rows_are_dropped_and_counted(tmp_path):
    def edit(row, cols):
        for k in range(5):
            row[cols.index(f"bids[{k}].price")] = row[cols.index(f"bids[{k}].amount")] = ""
    p = _book_file(tmp_path, edit)
    with pytest.warns(UserWarning, match=re.escape(str(p)) + ".*dropped 1 blank_best.*rows \\[2\\]"):
        r = read_market_file(p)
    assert r.dropped["blank_best"] == 1 and len(r.table) == 2 and np.isfinite(r.table.mid).all()


def test_duplicated_book_rows_are_dropped_and_counted(tmp_path):
    lines = book5_lines()
    p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", [*lines[:2], lines[1], lines[2]])
    with pytest.warns(UserWarning, match="dropped 1 duplicate.*rows \\[2\\]"):
        r = read_market_file(p)
    assert r.dropped == {"blank_best": 0, "crossed": 0, "duplicate": 1} and len(r.table) == 2


@pytest.mark.parametrize(("field", "value"), [("price", "0"), ("price", "-100.5"), ("price", "inf"), ("price", "nan"),
                                              ("amount", "nan")])
def test_bad_trade_values_are_rejected(tmp_path, field, value):
    rows = good_trades(5)
    parts = rows[3].split(",")
    parts[6 if field == "price" else 7] = value
    rows[3] = ",".join(parts)
    p = trades_file(tmp_path, rows)
    with raises_naming(p, "data row 4", f"field '{field}'", "must be finite"):
        read_market_file(p)


def test_duplicated_trades_are_dropped_and_counted(tmp_path):
    rows = good_trades(4)
    p = trades_file(tmp_path, [*rows[:3], rows[2], rows[3]])
    with pytest.warns(UserWarning, match="dropped 1 duplicate.*rows \\[4\\]"):
        r = read_market_file(p)
    assert r.dropped["duplicate"] == 1 and len(r.table) == 4


def test_a_book_that_only_loses_rows_still_feeds_sane_costs(tmp_path):
    """Dropped rows never reach the simulator: every mid left is finite and inside the quotes."""
    def edit(row, cols):
        row[cols.index("asks[0].price")] = ""
        row[cols.index("asks[0].amount")] = ""
    p = _book_file(tmp_path, edit)
    with pytest.warns(UserWarning, match="blank_best"):
        book = read_market_file(p).table
    assert (book.bid_px[:, 0] < book.mid).all() and (book.mid < book.ask_px[:, 0]).all()


@pytest.mark.parametrize(("value", "shown"), [("sideways", "'sideways'"), ("", "None")])
def test_trade_side_that_is_neither_buy_nor_sell(tmp_path, value, shown):
    rows = good_trades(5)
    rows[2] = f"hyperliquid,BTC,1002,1003,2,{value},100.5,0.01"
    p = trades_file(tmp_path, rows)
    with raises_naming(p, "data row 3", "field 'side'", shown):
        read_market_file(p)


@pytest.mark.parametrize("kind", ["trades", "book"])
def test_header_only_file(tmp_path, kind):
    """A header and no rows (issue 20 item 4: failed with numpy's reshape message)."""
    if kind == "trades":
        p = trades_file(tmp_path, [])
    else:
        p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", book5_lines()[:1])
    with raises_naming(p, "header", "no data rows"):
        read_market_file(p)
