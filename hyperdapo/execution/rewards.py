"""Rewards: one number per simulated order, in bps of the arrival mid (higher is better).

Three definitions, chosen by ``reward=`` (``conf/reward/``):

- ``shortfall`` (default): ``-IS`` in bps, cleanup included, fees included. Exactly the number the
  evaluation tables report, so training optimises what is measured.
- ``fill_improve_pnl`` (the seeds' docs): ``0.4 * fill + 0.3 * price_improvement + 0.3 * pnl_if_filled`` where
  ``fill`` is 1 for a limit fill times ``fill_scale_bps`` (so that a fill is worth that many bps),
  ``price_improvement`` the fill's improvement over mid (bps, 0 if unfilled) and ``pnl_if_filled`` the
  mark-to-market 60 s after the fill, ``-adverse_selection_bps`` (0 if unfilled or unknown).
- ``exec_risk_cost`` (the thesis): ``0.5 * execution + 0.3 * risk + 0.2 * cost`` where ``execution`` is the
  price part of the shortfall, ``-(IS - fee)`` (bps), ``risk`` is ``-risk_scale_bps * time_exposed / horizon``
  (time until the order completed, by fill or cleanup: an inventory-risk proxy), and ``cost`` is ``-fee_bps``.

An answer that cannot be turned into an order gets ``invalid_penalty`` instead (see
:mod:`hyperdapo.prompts.answer`). The user's objective is rendered into the prompt; it does not change the
reward (one reward, so that strategies are comparable; say so in any result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class RewardName(StrEnum):
    SHORTFALL = "shortfall"
    FILL_IMPROVE_PNL = "fill_improve_pnl"
    EXEC_RISK_COST = "exec_risk_cost"


DEFAULT_WEIGHTS = {  # the home of each reward's formula weights (dimensionless)
    RewardName.SHORTFALL: {"shortfall": 1.0},
    RewardName.FILL_IMPROVE_PNL: {"fill": 0.4, "price_improvement": 0.3, "pnl_if_filled": 0.3},
    RewardName.EXEC_RISK_COST: {"execution": 0.5, "risk": 0.3, "cost": 0.2},
}


@dataclass
class RewardConfig:
    """Reward definition; weights are dimensionless, scales in bps, the penalty in bps.

    ``weights`` holds one entry per component of any reward, ``None`` = the reward's :data:`DEFAULT_WEIGHTS`
    value, so a plain override changes one weight (``reward=exec_risk_cost reward.weights.risk=0.4``); the
    others keep their defaults (set one to 0 to drop that component). Setting a weight of a component the
    chosen reward does not have is an error.
    """

    name: str = RewardName.SHORTFALL  # shortfall | fill_improve_pnl | exec_risk_cost
    weights: dict[str, float | None] = field(
        default_factory=lambda: {k: None for w in DEFAULT_WEIGHTS.values() for k in w})  # overrides (None = default)
    fill_scale_bps: float = 10.0  # what one limit fill is worth in fill_improve_pnl
    risk_scale_bps: float = 10.0  # cost of being exposed for the whole horizon in exec_risk_cost
    invalid_penalty: float = -50.0  # reward of an unparsable or invalid answer (bps)

    @property
    def effective_weights(self) -> dict[str, float]:
        """The reward's weights: its defaults with the configured overrides."""
        defaults = DEFAULT_WEIGHTS[RewardName(self.name)]
        return {k: d if self.weights.get(k) is None else self.weights[k] for k, d in defaults.items()}

    def __post_init__(self) -> None:
        if self.name not in {n.value for n in RewardName}:
            raise ValueError(f"reward.name={self.name!r}: unknown reward; use one of {[n.value for n in RewardName]}")
        self.name = RewardName(self.name)
        defaults = DEFAULT_WEIGHTS[self.name]
        unknown = sorted(k for k, w in self.weights.items() if w is not None and k not in defaults)
        if unknown:
            raise ValueError(f"reward.weights.{unknown[0]}: reward {self.name.value!r} has no such component; "
                             f"its weights are {sorted(defaults)}")
        for key, w in self.effective_weights.items():
            if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                raise ValueError(f"reward.weights.{key}={w}: must be a finite number >= 0")
        for key in ("fill_scale_bps", "risk_scale_bps", "invalid_penalty"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"reward.{key}={getattr(self, key)}: must be finite")


def reward_components(outcomes, horizon_s: float) -> dict[str, np.ndarray]:
    """Every component (bps) of every reward, from simulator outcomes (arrays of any shape)."""
    filled = np.asarray(outcomes.filled, dtype=bool)
    is_bps, fee_bps = np.asarray(outcomes.is_bps), np.asarray(outcomes.fee_bps)
    exposed_s = np.where(filled, np.nan_to_num(outcomes.time_to_fill_s, nan=horizon_s), horizon_s)
    return {
        "shortfall": -is_bps,
        "fill": filled.astype(np.float64),
        "price_improvement": np.where(filled, np.nan_to_num(outcomes.price_improvement_bps), 0.0),
        "pnl_if_filled": np.where(filled, -np.nan_to_num(outcomes.adverse_selection_bps), 0.0),
        "execution": -(is_bps - fee_bps),
        "risk": -np.clip(exposed_s / horizon_s, 0.0, 1.0),
        "cost": -fee_bps,
    }


def compute_reward(outcomes, cfg: RewardConfig, horizon_s: float) -> np.ndarray:
    """The configured reward (bps, higher is better) for simulated orders."""
    parts = reward_components(outcomes, horizon_s)
    scale = {"fill": cfg.fill_scale_bps, "risk": cfg.risk_scale_bps}
    return sum(w * scale.get(k, 1.0) * parts[k] for k, w in cfg.effective_weights.items())
