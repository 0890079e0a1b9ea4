"""Latency models (conf/execution/latency/): per-decision delays, shared by every order of a decision."""

from __future__ import annotations

import numpy as np
import pytest

from hyperdapo.data.schema import Side
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig
from hyperdapo.execution.fills import simulate
from hyperdapo.execution.latency import UniformLatency, VenueLatency
from hyperdapo.pipeline.config import compose_run_config
from tests.test_fills import S, flat_book

VENUE = load_venue("hyperliquid")
UNIFORM = {"_target_": "hyperdapo.execution.latency.UniformLatency", "low_ms": 5.0, "high_ms": 50.0}


def test_uniform_latency_is_a_seeded_function_of_the_decision_time():
    ts = np.arange(10_000, dtype=np.int64) * 1_000_003 + 1_700_000_000 * S
    delay = UniformLatency()(ts, VENUE)
    assert delay.dtype == np.int64 and delay.min() >= 5_000 and delay.max() <= 50_000  # us
    # uniform over [5, 50] ms: deciles of 4.5 ms each hold about a tenth of the decisions
    counts = np.histogram(delay, bins=10, range=(5_000, 50_000))[0]
    assert counts.min() > 850 and counts.max() < 1150
    np.testing.assert_array_equal(UniformLatency()(ts[::-1], VENUE), delay[::-1])  # the time decides, not the order
    assert (UniformLatency(seed=1)(ts, VENUE) != delay).mean() > 0.9
    np.testing.assert_array_equal(VenueLatency()(ts[:3], VENUE), [VENUE.latency_ms * 1000] * 3)


def test_every_order_of_a_decision_is_placed_after_the_decisions_delay():
    """Marketable buys (limit 102 >= ask 101) fill at placement: time to fill = the decision's delay, the same for
    each of its candidate prices, and different across decisions."""
    cfg = FillConfig(latency=UNIFORM)
    ts = np.array([10, 20, 30, 40], dtype=np.int64) * S + 123
    out = simulate(flat_book(), None, ts, np.full(4, Side.BUY), np.full((4, 3), 102.0), np.full(4, 0.5), cfg, VENUE,
                   horizon_s=300.0, adverse_horizon_s=60.0)
    expected_s = cfg.latency_model(ts, VENUE) / 1e6
    np.testing.assert_allclose(out.time_to_fill_s, np.repeat(expected_s[:, None], 3, axis=1))
    assert len(np.unique(expected_s)) == 4 and (0.005 <= expected_s).all() and (expected_s <= 0.05).all()


def test_the_execution_group_chooses_fill_rules_and_latency():
    cfg = compose_run_config(["execution/fill=hftbacktest", "execution/latency=uniform"])
    assert (cfg.execution.fill_rule, cfg.execution.queue_model) == ("touch", "capped")
    assert cfg.execution.latency_model == UniformLatency(5.0, 50.0, 0)
    default = compose_run_config([])
    assert (default.execution.fill_rule, default.execution.queue_model) == ("trade_through", "none")
    assert default.execution.latency_model == VenueLatency()
    with pytest.raises(Exception, match="execution.latency"):
        compose_run_config(["execution/latency=uniform", "execution.latency.low_ms=80"])
