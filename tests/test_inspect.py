"""``python -m hyperdapo.data inspect``: trade rates over the span the files share, a warning when their spans
differ, the tick inferred from the data and the one-tick share on it (the venue's beside it when they differ)."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest

from hyperdapo.data.__main__ import main
from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.schema import BookSnapshots
from hyperdapo.data.stats import infer_tick, market_statistics
from hyperdapo.data.synthetic import _write_csv_gz, book_table, simulate_market, tardis_file_name, trades_table
from hyperdapo.data.venues import Instrument, load_venue

US_PER_MIN = 60_000_000
DAY = dt.date(2024, 1, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-hour BTC book and the trades of its first 30 minutes only (different spans), as Tardis CSV.gz."""
    out = tmp_path_factory.mktemp("inspect")
    market = simulate_market(load_asset("BTC"), SyntheticConfig(n_days=2 / 24, seed=3))
    early = market.trades.take(np.flatnonzero(market.trades.ts_us < market.book.ts_us[0] + 30 * US_PER_MIN))
    book_path, trades_path = (out / tardis_file_name(t, DAY, "BTC") for t in ("book_snapshot_25", "trades"))
    _write_csv_gz(book_table(market.book, "BTC"), book_path)
    _write_csv_gz(trades_table(early, "BTC", 0), trades_path)
    return market.book, early, book_path, trades_path, out / "cache"


def test_trade_rate_is_over_the_shared_span_with_a_warning(files):
    book, trades, *_ = files
    with pytest.warns(UserWarning, match="different spans"):
        stats = market_statistics(book, trades)
    # the trades lie inside the book's 2 hours: the shared span is the trades' own ~30 minutes
    minutes = (trades.ts_us[-1] - trades.ts_us[0]) / US_PER_MIN
    assert stats["trades_per_min"] == pytest.approx(len(trades) / minutes)
    assert stats["shared_hours"] == pytest.approx(minutes / 60) and 29 / 60 < stats["shared_hours"] <= 0.5
    # the old rate divided by the book's span: about 4x too low here
    assert stats["trades_per_min"] > 3.5 * len(trades) / ((book.ts_us[-1] - book.ts_us[0]) / US_PER_MIN)


def test_same_spans_do_not_warn_and_disjoint_spans_fail(files):
    book, trades, *_ = files
    inside = book.take(np.flatnonzero((book.ts_us >= trades.ts_us[0]) & (book.ts_us <= trades.ts_us[-1])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        market_statistics(inside, trades)
    late = book.take(np.flatnonzero(book.ts_us > trades.ts_us[-1]))
    with pytest.raises(ValueError, match="share no time span"):
        market_statistics(late, trades)


def test_cli_reports_the_datas_tick_and_the_venues(files, capsys):
    _, _, book_path, trades_path, cache = files
    args = ["inspect", str(book_path), str(trades_path), "--asset", "BTC", "--cache-dir", str(cache)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "warning:" in text and "different spans" in text and "shared_hours" in text
    # the synthetic book quotes on Hyperliquid's 1 USD grid, mostly one tick wide
    assert _row(text, "tick_inferred_usd") == 1.0 and _row(text, "share_one_tick") > 0.5
    assert "share_one_tick_venue" not in text  # Hyperliquid's tick is the data's: nothing to add
    assert main([*args, "--venue", "binance_futures"]) == 0
    text = capsys.readouterr().out
    # Binance's 0.1 USD tick is not the data's: the one-tick share stays on the data's tick, the venue's is beside
    # it (a 1 USD spread is ten of its ticks) with a warning naming both
    assert _row(text, "share_one_tick") > 0.5 and _row(text, "share_one_tick_venue") == 0.0
    assert "binance_futures tick 0.1 USD differs from the data's 1 USD" in " ".join(text.split())


@pytest.mark.parametrize(("prices", "tick"), [
    ([42727.0, 42728.0, 42730.0], 1.0), ([100.0, 100.5, 101.0, 102.5], 0.5), ([0.12345, 0.12347, 0.1235], 1e-5),
    ([2000.05, 2000.1, 2000.25], 0.05), ([99.975, 100.0, 100.025], 0.025),
])
def test_tick_is_the_greatest_common_increment_of_the_prices(prices, tick):
    assert infer_tick(np.array(prices)) == pytest.approx(tick)


def test_old_data_on_a_finer_tick_is_measured_on_its_own_tick(files):
    book, *_ = files
    # the same book on a 0.5 USD grid (prices halved, as if quoted before a tick change), with 0.5 % stray quotes
    old = BookSnapshots(book.ts_us, book.local_ts_us, book.bid_px / 2, book.bid_sz, book.ask_px / 2, book.ask_sz)
    stray = old.bid_px[:, 1].copy()
    stray[:: 200] += 0.3
    old.bid_px[:, 1] = stray
    assert infer_tick(np.concatenate([old.bid_px.ravel(), old.ask_px.ravel()])) == 0.5
    today = market_statistics(book, None)
    hyperliquid = Instrument(load_venue("hyperliquid"), load_asset("BTC"))  # 1 USD at 21,000 USD
    with pytest.warns(UserWarning, match="hyperliquid tick 1 USD differs from the data's 0.5 USD"):
        stats = market_statistics(old, None, hyperliquid)
    assert stats["tick_inferred_usd"] == 0.5
    assert stats["share_one_tick"] == today["share_one_tick"] > 0.5  # one tick of its own grid, as before halving
    # on today's 1 USD tick the one-tick spreads are those two of the data's ticks wide (2 USD before halving)
    seconds = np.arange(book.ts_us[0], book.ts_us[-1] + 1, 1_000_000)
    asof = np.searchsorted(book.ts_us, seconds, side="right") - 1
    two_ticks = np.mean(np.isclose(book.ask_px[asof, 0] - book.bid_px[asof, 0], 2.0))
    assert stats["share_one_tick_venue"] == pytest.approx(two_ticks) and two_ticks < 0.5 * stats["share_one_tick"]


def _row(text: str, key: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith("│") and f" {key} " in line)
    return float(line.split("│")[2].strip())
