"""Decisions and chronological splits: the embargo keeps every val/test reward window out of training."""

from __future__ import annotations

import numpy as np
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.venues import Instrument, load_venue
from hyperdapo.features.config import DecisionConfig, Objective
from hyperdapo.features.decision_set import US_PER_S, Split, build_decisions, split_bounds_us

SOL_LOTS = Instrument(load_venue("hyperliquid"), load_asset("SOL")).round_to_lot  # 0.01 coin

HOURS = 6
STEP_S = 1


def _book():
    ts_us = np.arange(0, HOURS * 3600, STEP_S, dtype=np.int64) * US_PER_S + 1_700_000_000 * US_PER_S
    mid = 100.0 + np.cumsum(np.random.default_rng(0).normal(0, 0.01, len(ts_us)))
    return ts_us, mid


def test_splits_are_chronological_and_embargoed():
    ts_us, mid = _book()
    cfg = DecisionConfig(every_s=30, jitter_s=10)
    d = build_decisions("SOL", ts_us, mid, SOL_LOTS, cfg)
    window_us = int(cfg.window_s * US_PER_S)
    train, val, test = (d.of_split(s) for s in Split)
    assert len(train) and len(val) and len(test)
    # chronological: every train decision precedes every val decision, which precede every test decision
    assert train.ts_us.max() < val.ts_us.min() and val.ts_us.max() < test.ts_us.min()
    # no validation/test reward window overlaps the training period (its reward windows included)
    train_period_end = (train.ts_us + window_us).max()
    assert val.ts_us.min() >= train_period_end and test.ts_us.min() >= (val.ts_us + window_us).max()
    # and the gap between periods is the embargo, at least the reward window
    bounds = split_bounds_us(int(ts_us[0]) + int(cfg.warmup_s * US_PER_S), int(ts_us[-1]), cfg)
    assert bounds[Split.VAL][0] - bounds[Split.TRAIN][1] == int(cfg.embargo_s * US_PER_S) >= window_us
    # every kept decision's window lies inside its own period
    for s in Split:
        lo, hi = bounds[s]
        sub = d.of_split(s)
        assert (sub.ts_us >= lo).all() and (sub.ts_us + window_us <= hi).all()


def test_draws_are_seeded_and_follow_config():
    ts_us, mid = _book()
    cfg = DecisionConfig(every_s=10, buy_share=0.25, objective_weights={"patient": 1.0}, seed=3)
    a = build_decisions("SOL", ts_us, mid, SOL_LOTS, cfg)
    b = build_decisions("SOL", ts_us, mid, SOL_LOTS, cfg)
    assert np.array_equal(a.ts_us, b.ts_us) and np.array_equal(a.side, b.side) and np.array_equal(a.qty, b.qty)
    assert abs((a.side == 1).mean() - 0.25) < 0.05
    assert set(a.objective) == {Objective.PATIENT.value}
    notional = a.qty * mid[np.searchsorted(ts_us, a.ts_us, side="right") - 1]
    assert notional.min() >= cfg.notional_min_usd - 0.01 * 100 and notional.max() <= cfg.notional_max_usd + 1
    assert np.allclose(a.qty, np.round(a.qty, 2))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"embargo_s": 100.0}, "decisions.embargo_s"),
        ({"buy_share": 1.5}, "decisions.buy_share"),
        ({"objective_weights": {"greedy": 1.0}}, "decisions.objective_weights"),
        ({"train_frac": 0.95, "val_frac": 0.1}, "decisions.train_frac"),
        ({"every_s": 0.0}, "decisions.every_s"),
    ],
)
def test_invalid_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        DecisionConfig(**kwargs)


def test_train_every_thins_only_the_training_split():
    """decisions.train_every=k (the data-size sweep) keeps every k-th training decision; validation and test
    decisions are identical (times, sides, quantities, objectives) for every k."""
    ts_us, mid = _book()
    full = build_decisions("SOL", ts_us, mid, SOL_LOTS, DecisionConfig(every_s=30))
    thin = build_decisions("SOL", ts_us, mid, SOL_LOTS, DecisionConfig(every_s=30, train_every=4))
    tr_full, tr_thin = full.of_split(Split.TRAIN), thin.of_split(Split.TRAIN)
    assert len(tr_thin) == -(-len(tr_full) // 4)
    np.testing.assert_array_equal(tr_thin.ts_us, tr_full.ts_us[::4])
    np.testing.assert_array_equal(tr_thin.qty, tr_full.qty[::4])
    for split in (Split.VAL, Split.TEST):
        a, b = full.of_split(split), thin.of_split(split)
        assert len(a) > 0
        for key in ("ts_us", "side", "qty", "objective"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    with pytest.raises(ValueError, match="decisions.train_every"):
        DecisionConfig(train_every=0)
