"""The synthetic market: formats, determinism, price rules, stylised facts and the information it carries."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.orderbook import reconstruct_snapshots
from hyperdapo.data.readers import read_market_file
from hyperdapo.data.stats import imbalance
from hyperdapo.data.synthetic import simulate_market, write_synthetic_market
from hyperdapo.data.venues import Instrument, load_venue

HOURS = 1 / 24


@pytest.fixture(scope="module")
def btc_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    cfg = SyntheticConfig(n_days=HOURS, seed=3)
    return cfg, write_synthetic_market(load_asset("btc"), cfg, out)


def test_files_have_tardis_names_and_headers(btc_files):
    _, paths = btc_files
    assert paths["book_snapshot_25"][0].name == "hyperliquid_book_snapshot_25_2024-01-01_BTC.csv.gz"
    with gzip.open(paths["trades"][0], "rt") as f:
        assert f.readline().replace('"', "").strip() == "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    with gzip.open(paths["book_snapshot_25"][0], "rt") as f:
        head = f.readline().replace('"', "").strip().split(",")
    assert head[:8] == ["exchange", "symbol", "timestamp", "local_timestamp", "asks[0].price", "asks[0].amount",
                        "bids[0].price", "bids[0].amount"]
    assert head[-1] == "bids[24].amount"


def test_round_trip_files_readers_reconstruction(btc_files):
    """synthetic -> files -> readers -> incremental reconstruction == the snapshots (in memory, too)."""
    cfg, paths = btc_files
    market = simulate_market(load_asset("btc"), cfg)
    book = read_market_file(paths["book_snapshot_25"][0]).table
    trades = read_market_file(paths["trades"][0]).table
    updates = read_market_file(paths["incremental_book_L2"][0]).table
    for f in ("ts_us", "local_ts_us", "bid_px", "ask_px", "bid_sz", "ask_sz"):
        np.testing.assert_array_equal(getattr(book, f), getattr(market.book, f), err_msg=f)
    np.testing.assert_array_equal(trades.price, market.trades.price)
    np.testing.assert_array_equal(trades.side, market.trades.side)
    rebuilt = reconstruct_snapshots(updates, book.ts_us, 25)
    assert rebuilt.missing_deletes == 0
    for f in ("bid_px", "ask_px", "bid_sz", "ask_sz"):
        np.testing.assert_array_equal(getattr(rebuilt.book, f), getattr(book, f), err_msg=f)


def test_deterministic_by_seed_byte_identical(tmp_path):
    cfg = SyntheticConfig(n_days=0.2 * HOURS, seed=11)
    a = write_synthetic_market(load_asset("sol"), cfg, tmp_path / "a")
    b = write_synthetic_market(load_asset("sol"), cfg, tmp_path / "b")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    for kind in a:
        assert digest(a[kind][0]) == digest(b[kind][0]), kind
    other = write_synthetic_market(load_asset("sol"), SyntheticConfig(n_days=0.2 * HOURS, seed=12), tmp_path / "c")
    assert digest(other["trades"][0]) != digest(a["trades"][0])


def test_existing_day_is_skipped(btc_files):
    cfg, paths = btc_files
    mtimes = {p: p.stat().st_mtime_ns for ps in paths.values() for p in ps}
    write_synthetic_market(load_asset("btc"), cfg, paths["trades"][0].parent)
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())


@pytest.mark.parametrize("name", ["btc", "eth", "sol", "hype"])
def test_price_rules_ranges_and_spreads(name):
    asset = load_asset(name)
    m = simulate_market(asset, SyntheticConfig(n_days=HOURS, seed=1))
    b = m.book
    tick = Instrument(load_venue("hyperliquid"), asset).tick_size(b.mid)
    # on the tick grid, at most 5 significant figures, monotone, never crossed
    for px in (b.bid_px, b.ask_px):
        np.testing.assert_allclose(px / tick[:, None], np.round(px / tick[:, None]), atol=1e-6)
    assert (np.diff(b.bid_px, axis=1) < 0).all() and (np.diff(b.ask_px, axis=1) > 0).all()
    assert (b.bid_px[:, 0] < b.ask_px[:, 0]).all()
    # sizes on the lot grid and positive
    lot = 10.0 ** -asset.sz_decimals
    assert (b.bid_sz >= lot).all()
    np.testing.assert_allclose(b.bid_sz / lot, np.round(b.bid_sz / lot), atol=1e-6)
    # in (about) the asset's range; spread one tick most of the time
    lo, hi = asset.price_low_usd, asset.price_high_usd
    assert 0.9 * lo < b.mid.min() and b.mid.max() < 1.1 * hi
    spread_ticks = (b.ask_px[:, 0] - b.bid_px[:, 0]) / tick
    assert np.mean(np.isclose(spread_ticks, 1)) > 0.6


def _info(m, horizon_s: int = 30) -> float:
    """corr(top-5 imbalance at t, mid log-return over the next 30 s) on the 1-s snapshot grid."""
    mid = m.book.mid
    return float(np.corrcoef(imbalance(m.book)[:-horizon_s], np.log(mid[horizon_s:] / mid[:-horizon_s]))[0, 1])


@pytest.mark.slow
def test_imbalance_predicts_next_30s_return_and_switches_off():
    asset = load_asset("btc")
    on = simulate_market(asset, SyntheticConfig(n_days=6 * HOURS, seed=5))
    off = simulate_market(asset, SyntheticConfig(n_days=6 * HOURS, seed=5, signal_strength=0.0))
    assert _info(on) > 0.08
    assert abs(_info(off)) < 0.03
    # trade flow carries the same signal: taker buys are more frequent when the latent signal is positive
    step = np.searchsorted(on.book.ts_us, on.trades.ts_us, side="right") - 1
    buys = on.trades.side > 0
    assert buys[on.signal[step] > 1].mean() > buys[on.signal[step] < -1].mean() + 0.1


def test_volatility_clusters_and_trades_cluster():
    m = simulate_market(load_asset("btc"), SyntheticConfig(n_days=6 * HOURS, seed=2))
    r = np.abs(np.diff(np.log(m.book.mid)))
    # volatility clustering: |r_t| autocorrelated at a 60 s lag; volatile regime visibly wilder
    assert np.corrcoef(r[:-60], r[60:])[0, 1] > 0.05
    assert r[m.volatile[1:]].mean() > 1.5 * r[~m.volatile[1:]].mean()
    # clustered arrivals: per-second trade counts over-dispersed relative to Poisson (variance > mean)
    counts = np.bincount((m.trades.ts_us - m.book.ts_us[0]) // 1_000_000)
    assert counts.var() > 1.5 * counts.mean()


@pytest.mark.parametrize(("key", "value"), [("n_days", 0), ("signal_strength", -1.0), ("hawkes_alpha", 0.9),
                                            ("start_date", "2024-13-01"), ("imbalance_levels", 30)])
def test_invalid_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"data.synthetic.{key}"):
        SyntheticConfig(**{key: value})


@pytest.mark.slow
def test_market_with_other_parameters_is_never_read_from_stale_files(tmp_path):
    from hyperdapo.data.config import DataConfig
    from hyperdapo.data.sources import load_market

    books = {}
    for strength in (0.08, 0.25):
        cfg = DataConfig(raw_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "cache"),
                         synthetic=SyntheticConfig(n_days=0.05, signal_strength=strength))
        books[strength] = load_market(load_asset("BTC"), cfg).book
    assert len(list((tmp_path / "raw" / "synthetic").iterdir())) == 2  # one directory per parameter set
    assert not np.array_equal(books[0.08].mid, books[0.25].mid)


def test_the_market_directory_does_not_depend_on_int_or_float_parameters():
    """Hydra gives ``data.synthetic.n_days=6`` as 6.0; a script's ``SyntheticConfig(n_days=6)`` must name the same
    market directory (else it simulates the market again), and another value names another directory."""
    from hyperdapo.data.synthetic import synthetic_dir_name

    assert synthetic_dir_name(SyntheticConfig(n_days=6, signal_tau_s=120)) == synthetic_dir_name(
        SyntheticConfig(n_days=6.0, signal_tau_s=120.0))
    assert synthetic_dir_name(SyntheticConfig(n_days=6)) != synthetic_dir_name(SyntheticConfig(n_days=5))
