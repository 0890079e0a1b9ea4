"""``python -m hyperdapo.data inspect``: trade rates over the span the files share, a warning when their spans
differ, and the one-tick share on the venue's tick."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest

from hyperdapo.data.__main__ import main
from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.stats import market_statistics
from hyperdapo.data.synthetic import _write_csv_gz, book_table, simulate_market, tardis_file_name, trades_table

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


def test_cli_warns_and_uses_the_venues_tick(files, capsys):
    _, _, book_path, trades_path, cache = files
    args = ["inspect", str(book_path), str(trades_path), "--asset", "BTC", "--cache-dir", str(cache)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "warning:" in text and "different spans" in text and "shared_hours" in text
    hyperliquid = _row(text, "share_one_tick")
    assert main([*args, "--venue", "binance_futures"]) == 0
    binance = _row(capsys.readouterr().out, "share_one_tick")
    # the synthetic book quotes on Hyperliquid's 1 USD grid, mostly one tick wide: on Binance's 0.1 USD tick a
    # 1 USD spread is ten ticks
    assert hyperliquid > 0.5 and binance == 0.0


def _row(text: str, key: str) -> float:
    line = next(line for line in text.splitlines() if f" {key} " in line)
    return float(line.split("│")[2].strip())
