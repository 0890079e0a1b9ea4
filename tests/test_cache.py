"""The parquet cache: hit, invalidation by the source's identity, atomic writes."""

from __future__ import annotations

import os

import numpy as np

from hyperdapo.data import cache as cache_mod
from hyperdapo.data.cache import load_cached
from tests.test_readers import book5_lines, write_gz


def test_second_load_hits_the_cache_without_parsing(tmp_path, monkeypatch):
    p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", book5_lines())
    first, s1 = load_cached(p, cache_dir=tmp_path / "c")
    assert not s1.from_cache and s1.rows == 2 and s1.levels == 5

    def parse_forbidden(*a, **k):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(cache_mod, "read_market_file", parse_forbidden)
    second, s2 = load_cached(p, cache_dir=tmp_path / "c")
    assert s2.from_cache and s2.rows == s1.rows and s2.first_ts_us == s1.first_ts_us
    np.testing.assert_array_equal(second.bid_px, first.bid_px)  # NaN-equal: blank levels survive the round trip
    assert [f.suffix for f in (tmp_path / "c").iterdir()] == [".parquet"]  # no temp files left


def test_modified_source_invalidates_the_entry(tmp_path):
    p = write_gz(tmp_path / "hyperliquid_book_snapshot_5_2024-01-01_BTC.csv.gz", book5_lines())
    load_cached(p, cache_dir=tmp_path / "c")
    write_gz(p, book5_lines()[:2])  # one row now
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 1_000_000))
    _, s = load_cached(p, cache_dir=tmp_path / "c")
    assert not s.from_cache and s.rows == 1
