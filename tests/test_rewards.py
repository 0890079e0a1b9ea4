"""Reward definitions on hand-made outcomes (numbers worked out in the comments)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from hyperdapo.execution.config import RewardConfig, RewardName
from hyperdapo.execution.rewards import compute_reward, reward_components

HORIZON_S = 300.0
MAKER_BPS, TAKER_BPS = 1.5, 4.5


def _outcomes() -> SimpleNamespace:
    """Order 0: filled passively after 60 s, 2 bps better than mid, mid then moved 1 bp against it.
    Order 1: never filled, cleaned up at the horizon 3 bps worse than the arrival mid (plus taker fee)."""
    return SimpleNamespace(
        filled=np.array([True, False]),
        time_to_fill_s=np.array([60.0, np.nan]),
        price_improvement_bps=np.array([2.0, np.nan]),
        adverse_selection_bps=np.array([1.0, np.nan]),
        fee_bps=np.array([MAKER_BPS, TAKER_BPS]),
        is_bps=np.array([-2.0 + MAKER_BPS, 3.0 + TAKER_BPS]),
    )


def test_shortfall_is_minus_is_including_cleanup():
    r = compute_reward(_outcomes(), RewardConfig(), HORIZON_S)
    np.testing.assert_allclose(r, [2.0 - MAKER_BPS, -(3.0 + TAKER_BPS)])


def test_fill_improve_pnl_weights():
    cfg = RewardConfig(name="fill_improve_pnl", weights={"fill": 0.4, "price_improvement": 0.3,
                                                         "pnl_if_filled": 0.3}, fill_scale_bps=10.0)
    r = compute_reward(_outcomes(), cfg, HORIZON_S)
    # order 0: 0.4*10 + 0.3*2 + 0.3*(-1) = 4.3 ; order 1: nothing filled -> 0
    np.testing.assert_allclose(r, [4.3, 0.0])


def test_exec_risk_cost_weights():
    cfg = RewardConfig(name="exec_risk_cost", weights={"execution": 0.5, "risk": 0.3, "cost": 0.2},
                       risk_scale_bps=10.0)
    r = compute_reward(_outcomes(), cfg, HORIZON_S)
    # order 0: execution = -(IS - fee) = 2; risk = -10 * 60/300 = -2; cost = -1.5
    #   -> 0.5*2 + 0.3*(-2) + 0.2*(-1.5) = 1 - 0.6 - 0.3 = 0.1
    # order 1: execution = -3; risk = -10 (exposed the whole horizon); cost = -4.5
    #   -> -1.5 - 3 - 0.9 = -5.4
    np.testing.assert_allclose(r, [0.1, -5.4])


def test_components_shapes_follow_outcomes():
    parts = reward_components(_outcomes(), HORIZON_S)
    assert all(v.shape == (2,) for v in parts.values())
    assert np.isfinite(np.stack(list(parts.values()))).all()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"weights": {"shortfall": -1.0}}, "reward.weights.shortfall"),
        ({"weights": {"shortfall": math.inf}}, "reward.weights.shortfall"),
        ({"weights": {"fill": 1.0}}, "reward.weights.fill"),
        ({"invalid_penalty": math.nan}, "reward.invalid_penalty"),
        ({"name": "sharpe"}, "reward.name"),
    ],
)
def test_invalid_reward_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        RewardConfig(**kwargs)


def test_reward_names_cover_the_yaml_files():
    from omegaconf import OmegaConf

    from hyperdapo.data.assets import CONF_DIR

    names = {OmegaConf.load(p).name for p in (CONF_DIR / "reward").glob("*.yaml")}
    assert names == {n.value for n in RewardName}  # every reward has an option (by_objective is shortfall + weights)


def test_objective_weights_add_each_decisions_own_components():
    """Order 0 (aggressive) also pays risk; order 1 (patient) would earn price improvement, but it did not fill."""
    cfg = RewardConfig(objective_weights={"aggressive": {"risk": 1.0}, "patient": {"price_improvement": 0.5}},
                       risk_scale_bps=10.0)
    r = compute_reward(_outcomes(), cfg, HORIZON_S, objective=np.array(["aggressive", "patient"]))
    # order 0: shortfall 2 - 1.5 = 0.5, risk -10 * 60/300 = -2 -> -1.5 ; order 1: -(3 + 4.5) + 0.5 * 0 = -7.5
    np.testing.assert_allclose(r, [-1.5, -7.5])
    swapped = compute_reward(_outcomes(), cfg, HORIZON_S, objective=np.array(["patient", "aggressive"]))
    # order 0: 0.5 + 0.5 * 2 = 1.5 ; order 1: -7.5 - 10 (exposed the whole horizon) = -17.5
    np.testing.assert_allclose(swapped, [1.5, -17.5])
    # (D, K) outcomes: each decision's objective applies to all its K candidate orders
    two = SimpleNamespace(**{k: np.stack([v, v], axis=1) for k, v in vars(_outcomes()).items()})
    np.testing.assert_allclose(compute_reward(two, cfg, HORIZON_S, np.array(["aggressive", "patient"])),
                               [[-1.5, -1.5], [-7.5, -7.5]])


@pytest.mark.parametrize(("weights", "match"), [
    ({"greedy": {"risk": 1.0}}, "objective_weights.greedy: no such objective"),
    ({"patient": {"speed": 1.0}}, "objective_weights.patient.speed: no such reward component"),
    ({"patient": {"risk": -1.0}}, r"objective_weights.patient.risk=-1.0: must be a finite number >= 0"),
])
def test_objective_weights_are_checked_naming_the_key(weights, match):
    with pytest.raises(ValueError, match=match):
        RewardConfig(objective_weights=weights)
