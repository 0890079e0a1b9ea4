"""Real data as a first-class path: ``data=files`` with another venue's Tardis ``quotes`` + ``trades`` files trains
and evaluates without an API key; ``incremental_book_L2`` input gives the snapshots it was written from; the
``tardis`` source uses files on disk without a key and honours ``data_types``; book and trades are cut to the span
they share."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from hyperdapo.data.config import DataConfig, FilesConfig, TardisConfig
from hyperdapo.data.readers import read_market_file
from hyperdapo.data.sources import load_market
from hyperdapo.pipeline.evaluate_run import run_evaluation
from hyperdapo.pipeline.train_run import run_training
from tests.pipeline_helpers import fast, run_config

HEAD = "exchange,symbol,timestamp,local_timestamp"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Synthetic BTC files (0.2 day) and the asset config, written once."""
    tmp = tmp_path_factory.mktemp("synthetic")
    cfg = run_config(fast(tmp))
    market = load_market(cfg.asset, cfg.data)
    raw = next((tmp / "raw" / "synthetic").iterdir())
    return tmp, cfg, market, raw


@pytest.fixture(scope="module")
def binance_files(synthetic):
    """Another venue's Tardis files (binance-futures BTCUSDT): ``quotes`` (top of book) and ``trades``, the trades
    starting 10 minutes after the quotes, with no Hyperliquid in the names."""
    tmp, _, market, _ = synthetic
    b, t = market.book, market.trades
    out = tmp / "binance"
    out.mkdir()
    quotes = out / "binance-futures_quotes_2024-01-01_BTCUSDT.csv.gz"
    with gzip.open(quotes, "wt") as f:
        f.write(f"{HEAD},ask_amount,ask_price,bid_price,bid_amount\n")
        for i in range(len(b)):
            f.write(f"binance-futures,BTCUSDT,{b.ts_us[i]},{b.local_ts_us[i]},{b.ask_sz[i, 0]},{b.ask_px[i, 0]},"
                    f"{b.bid_px[i, 0]},{b.bid_sz[i, 0]}\n")
    trades = out / "binance-futures_trades_2024-01-01_BTCUSDT.csv.gz"
    later = t.ts_us >= t.ts_us[0] + 600_000_000
    with gzip.open(trades, "wt") as f:
        f.write(f"{HEAD},id,side,price,amount\n")
        for i in np.flatnonzero(later):
            side = {1: "buy", -1: "sell"}.get(int(t.side[i]), "unknown")
            f.write(f"binance-futures,BTCUSDT,{t.ts_us[i]},{t.local_ts_us[i]},{i},{side},{t.price[i]},"
                    f"{t.amount[i]}\n")
    return quotes, trades, t.ts_us[later][0]


@pytest.mark.slow
def test_files_source_cuts_book_and_trades_to_their_shared_span(synthetic, binance_files):
    tmp, cfg, market, _ = synthetic
    quotes, trades, first_trade = binance_files
    data = DataConfig(source="files", cache_dir=str(tmp / "cache"),
                      files=FilesConfig(book=[str(quotes)], trades=[str(trades)]))
    own = load_market(cfg.asset, data)
    assert own.book.n_levels == 1 and own.book.ts_us[0] >= first_trade and own.trades.ts_us[0] == first_trade
    assert own.book.ts_us[-1] <= own.trades.ts_us[-1] and own.trades.ts_us[-1] <= own.book.ts_us[-1] + 1_000_000
    kept = market.book.ts_us >= first_trade
    np.testing.assert_array_equal(own.book.mid, market.book.mid[kept][: len(own.book)])


@pytest.mark.slow
def test_another_venues_quotes_and_trades_train_and_evaluate_without_a_key(binance_files, tmp_path, monkeypatch):
    monkeypatch.delenv("TARDIS_API_KEY", raising=False)
    quotes, trades, _ = binance_files
    own = ["data=files", f"data.files.book=[{quotes}]", f"data.files.trades=[{trades}]", "decisions.warmup_s=300"]
    sft = run_training(run_config(fast(tmp_path, *own, "algo=sft", "trainer.max_steps=2", "run_name=own")),
                       tmp_path / "run")
    result = run_evaluation(run_config(fast(tmp_path, *own, f"evaluate.policy={sft['policy_dir']}"), "evaluate"),
                            tmp_path / "eval")
    assert {"llm", "market", "twap"} <= set(result["metrics"])
    market_is = result["metrics"]["market"]["IS [bps]"]
    assert 0 < market_is < 20  # a one-level book's market order costs half a spread plus the fee, not 500 bps
    assert "files data" in result["caption"]


def test_incremental_book_l2_files_give_the_snapshots_they_were_written_from(synthetic):
    tmp, cfg, market, raw = synthetic
    incremental = sorted(raw.glob("*incremental_book_L2*"))
    data = DataConfig(source="files", cache_dir=str(tmp / "cache"),
                      files=FilesConfig(incremental=[str(p) for p in incremental],
                                        trades=[str(p) for p in sorted(raw.glob("*_trades_*"))],
                                        snapshot_every_s=1.0, n_levels=25))
    replayed = load_market(cfg.asset, data).book
    common, a, b = np.intersect1d(replayed.ts_us, market.book.ts_us, return_indices=True)
    assert len(common) >= 0.99 * len(market.book)
    for f in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        np.testing.assert_array_equal(getattr(replayed, f)[a], getattr(market.book, f)[b], err_msg=f)


def test_tardis_source_uses_files_on_disk_without_a_key_and_honours_data_types(synthetic, monkeypatch, tmp_path):
    monkeypatch.delenv("TARDIS_API_KEY", raising=False)
    _, cfg, market, raw = synthetic
    tardis = tmp_path / "tardis"
    tardis.mkdir()
    for p in raw.glob("*"):  # a day that is not the 1st of a month would need a key to download
        (tardis / p.name.replace("2024-01-01", "2024-01-15")).symlink_to(p)
    tc = dict(from_date="2024-01-15", to_date="2024-01-16", download_dir=str(tardis),
              endpoint="http://127.0.0.1:9")  # nothing listens there: any network use would fail
    incremental = load_market(cfg.asset, DataConfig(source="tardis", cache_dir=str(tmp_path / "cache"), tardis=
                              TardisConfig(**tc, data_types=["incremental_book_L2", "trades"])))
    snapshots = load_market(cfg.asset, DataConfig(source="tardis", cache_dir=str(tmp_path / "cache"), tardis=
                            TardisConfig(**tc, data_types=["book_snapshot_25", "trades"])))
    assert len(snapshots.book) == len(market.book) and len(incremental.book) >= 0.99 * len(market.book)
    (tardis / "hyperliquid_trades_2024-01-15_BTC.csv.gz").unlink()
    with pytest.raises(ValueError, match=r"TARDIS_API_KEY is not set.*hyperliquid_trades_2024-01-15_BTC\.csv\.gz"):
        load_market(cfg.asset, DataConfig(source="tardis", tardis=TardisConfig(**tc)))
    with pytest.raises(ValueError, match=r"data\.tardis\.data_types=.*cannot use \['derivative_ticker'\]"):
        DataConfig(source="tardis", tardis=TardisConfig(**tc, data_types=["book_snapshot_25", "derivative_ticker"]))


def test_files_without_a_shared_span_name_the_files(synthetic, tmp_path):
    tmp, cfg, market, raw = synthetic
    trades = tmp_path / "late_trades.csv.gz"
    t = market.trades
    pd.DataFrame({"exchange": "x", "symbol": "BTC", "timestamp": t.ts_us[:3] + 86_400_000_000,
                  "local_timestamp": t.ts_us[:3] + 86_400_000_000, "id": [1, 2, 3], "side": "buy",
                  "price": t.price[:3], "amount": t.amount[:3]}).to_csv(trades, index=False)
    book = sorted(raw.glob("*book_snapshot*"))[0]
    data = DataConfig(source="files", cache_dir=str(tmp_path / "cache"),
                      files=FilesConfig(book=[str(book)], trades=[str(trades)]))
    with pytest.raises(ValueError, match=r"late_trades.*share no time span"):
        load_market(cfg.asset, data)
    assert read_market_file(trades).kind.value == "trades"  # the format from the header: the name does not say
