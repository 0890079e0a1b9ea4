"""Venues: tick and lot rules, fees and latency read from conf/venue/, the asset / venue check, the caption."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.schema import Side
from hyperdapo.data.venues import Instrument, load_venue, step_decimals
from hyperdapo.execution.config import FillConfig
from hyperdapo.execution.fills import simulate
from hyperdapo.pipeline.evaluate_run import caption
from tests.pipeline_helpers import compose_cfg, run_config
from tests.test_fills import flat_book

HYPERLIQUID, BINANCE = load_venue("hyperliquid"), load_venue("binance_futures")


def test_hyperliquid_ticks_are_five_significant_figures_within_the_decimals():
    ticks = {a: Instrument(HYPERLIQUID, load_asset(a)).tick_size(p)
             for a, p in (("BTC", 117_000.0), ("ETH", 3_700.0), ("SOL", 200.0), ("HYPE", 25.0))}
    assert ticks == pytest.approx({"BTC": 1.0, "ETH": 0.1, "SOL": 0.01, "HYPE": 0.001})
    # SOL below 100: 5 significant figures would be 0.001, but 6 - szDecimals(2) = 4 decimals allow it
    assert Instrument(HYPERLIQUID, load_asset("SOL")).tick_size(95.0) == pytest.approx(0.001)


def test_binance_ticks_and_lots_are_fixed_per_symbol():
    btc, eth = Instrument(BINANCE, load_asset("BTC")), Instrument(BINANCE, load_asset("ETH"))
    assert btc.tick_size(117_000.0) == 0.1 and eth.tick_size(3_700.0) == 0.01
    assert np.array_equal(btc.tick_size(np.array([10.0, 117_000.0])), [0.1, 0.1])
    assert btc.round_to_tick(117_000.06) == 117_000.1 and eth.round_to_tick(3_700.004) == 3_700.0
    assert btc.lot_size == 0.001 and Instrument(BINANCE, load_asset("SOL")).round_to_lot(2.4) == 2.0
    assert (step_decimals(0.1), step_decimals(0.0025), step_decimals(5.0)) == (1, 4, 0)


def test_the_venue_must_list_the_asset():
    with pytest.raises(ValueError, match=r"venue\.tick_usd\.HYPE"):
        Instrument(BINANCE, load_asset("HYPE"))
    with pytest.raises(ValueError, match=r"venue\.tick_usd\.HYPE"):
        run_config(["venue=binance_futures", "asset=HYPE"])
    with pytest.raises(ValueError, match="unknown venue"):
        load_venue("nyse")


def test_the_default_run_is_on_hyperliquid_and_binance_is_one_override_away():
    assert run_config([]).venue == HYPERLIQUID
    cfg = run_config(["venue=binance_futures"])
    assert (cfg.venue.maker_fee_bps, cfg.venue.taker_fee_bps, cfg.venue.tick_usd["BTC"]) == (2.0, 5.0, 0.1)


def test_the_simulator_charges_the_venues_fees_after_its_latency():
    # marketable buy (limit 102 >= ask 101) fills at placement, t + latency, with the venue's taker fee
    book = flat_book()
    for venue in (HYPERLIQUID, BINANCE):
        out = simulate(book, None, np.array([10_000_000]), np.array([Side.BUY]), np.array([[102.0]]),
                       np.array([0.5]), FillConfig(), venue, horizon_s=300.0, adverse_horizon_s=60.0)
        assert out.fee_bps[0, 0] == venue.taker_fee_bps
        assert out.time_to_fill_s[0, 0] == pytest.approx(venue.latency_ms / 1e3)


def test_the_caption_names_the_venue_and_its_fees():
    cfg = run_config(["venue=binance_futures"])
    text = caption(cfg, SimpleNamespace(tape=SimpleNamespace(book_only=True)), 10)
    assert "BTC on binance_futures (maker 2 / taker 5 bps, latency 20 ms)" in text and "book-only fills" in text
    touch = caption(run_config(["execution.fill_rule=touch", "execution.queue_model=capped"]),
                    SimpleNamespace(tape=SimpleNamespace(book_only=False)), 10)
    assert "fills when the opposite best touches the limit price or a trade prints through it, or by trades at it " \
           "beyond the queue ahead (capped at the level's visible size)" in touch


def test_a_registry_config_from_before_venues_reads_as_hyperliquid_with_its_own_fees(tmp_path):
    """Policies registered before the venue group kept fees and latency in execution.* (and unread copies in
    asset.*): their config.yaml loads, with the simulator's old values on the Hyperliquid venue."""
    from omegaconf import OmegaConf

    from hyperdapo.pipeline.trained import run_config_of

    raw = OmegaConf.to_container(compose_cfg([]), resolve=True)
    del raw["venue"]
    raw["execution"].update(latency_ms=35.0, taker_fee_bps=3.5, maker_fee_bps=0.5)
    raw["asset"].update(taker_fee_bps=9.0, maker_fee_bps=9.0)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(raw))
    cfg = run_config_of(tmp_path)
    assert (cfg.venue.name, cfg.venue.latency_ms, cfg.venue.taker_fee_bps, cfg.venue.maker_fee_bps) == (
        "hyperliquid", 35.0, 3.5, 0.5)
    assert cfg.venue.tick_sig_figs == 5

    raw["venue"] = OmegaConf.to_container(compose_cfg([]).venue)  # today's configs: an old key is an error
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(raw))
    with pytest.raises(Exception, match="latency_ms|taker_fee_bps"):
        run_config_of(tmp_path)


def test_a_registry_config_with_the_simulators_own_horizons_loads_with_the_decisions_window(tmp_path):
    """Policies registered when the simulator kept a copy of the reward window (execution.horizon_s and
    execution.adverse_horizon_s, equal to decisions.* by a check then) load; the window is the decisions'."""
    from omegaconf import OmegaConf

    from hyperdapo.pipeline.trained import run_config_of

    raw = OmegaConf.to_container(compose_cfg(["decisions.horizon_s=120"]), resolve=True)
    raw["execution"].update(horizon_s=120.0, adverse_horizon_s=60.0)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(raw))
    cfg = run_config_of(tmp_path)
    assert (cfg.decisions.horizon_s, cfg.decisions.adverse_horizon_s) == (120.0, 60.0)
    assert not hasattr(cfg.execution, "horizon_s")
