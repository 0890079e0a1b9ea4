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

Objectives: the decision's objective (aggressive / patient / risk_averse) is rendered into the prompt. By default it
does not change the reward (one reward, so that strategies are comparable). ``reward.objective_weights`` adds, to
each decision's reward, components weighted for its own objective (``reward=by_objective``: aggressive pays for the
time exposed (``risk``), patient earns its fill's price improvement again, risk_averse pays its adverse selection
again), so that a policy can learn to honour what the prompt asks.

An answer that cannot be turned into an order gets ``invalid_penalty`` instead (see
:mod:`hyperdapo.prompts.answer`).
"""

from __future__ import annotations

import numpy as np

from hyperdapo.execution.config import RewardConfig


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


def compute_reward(outcomes, cfg: RewardConfig, horizon_s: float, objective: np.ndarray | None = None) -> np.ndarray:
    """The configured reward (bps, higher is better) for simulated orders (D, K); ``objective`` (D,) is each
    decision's objective, for ``cfg.objective_weights``."""
    parts = reward_components(outcomes, horizon_s)
    scale = {"fill": cfg.fill_scale_bps, "risk": cfg.risk_scale_bps}
    reward = sum(w * scale.get(k, 1.0) * parts[k] for k, w in cfg.effective_weights.items())
    for name, weights in cfg.objective_weights.items():
        if objective is None:
            raise ValueError("reward.objective_weights is set: the reward needs each decision's objective")
        mine = (np.asarray(objective) == name).reshape(-1, *[1] * (np.ndim(reward) - 1))
        reward = reward + mine * sum(w * scale.get(k, 1.0) * parts[k] for k, w in weights.items())
    return reward
