"""The limit-order placement task as a Gymnasium env (``HyperDAPO/LimitOrder-v0``), for feature-vector RL baselines.

Why: Schnaubelt (2022, "Deep reinforcement learning for the optimal placement of cryptocurrency limit orders",
EJOR 296(3)) trains PPO on order-book features to choose a limit price; this env poses the same decision the
language model answers in text, scored by the same simulator and reward (:meth:`ExecutionTask.score_offsets`), so
a PPO reward and an LLM reward mean the same thing.

- One episode is one decision: :meth:`LimitOrderEnv.reset` draws a decision of the env's split with the env's RNG
  (``reset(seed=...)`` reseeds it); :meth:`LimitOrderEnv.step` places the order and terminates.
- Observation (float32, ``len(FEATURES) + 4``): the decision's causal z-scored features (:data:`FEATURES`, computed
  from data up to t against causal EWMA statistics, see :mod:`hyperdapo.features.compute`), clipped to
  +-:data:`Z_CLIP` with NaN (too little history, no trades) as 0 (the EWMA mean); then side (+1 buy, -1 sell);
  then the objective one-hot in :class:`~hyperdapo.features.config.Objective` order.
- Action: the limit offset from the arrival mid in side-relative bps (negative = passive, positive = crossing).
  ``continuous``: ``Box(-1, 1, (1,))``, ``offset_bps = a * band_bps`` over the answer band
  (``prompt.band_bps``, the LLM's valid answers); ``discrete``: ``Discrete(K)``, ``offset_bps = grid[a]``.
- Reward: the configured reward of that one order (bps, higher is better; ``-IS`` by default).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import Objective
from hyperdapo.features.decision_set import Split
from hyperdapo.rl.config import ActionKind, PPOConfig

ENV_ID = "HyperDAPO/LimitOrder-v0"
FEATURES = (  # every z-scored feature of features/compute.py (book and trades); raw prices are not stationary
    "spread_bps_z", "imbalance_top5_z", "depth_ratio_10bps_z", "book_pressure_50bps_z", "liquidity_50bps_z",
    "microprice_offset_bps_z", "book_update_intensity_per_min_z", "volatility_5m_bps_z", "momentum_1m_bps_z",
    "momentum_5m_bps_z", "momentum_15m_bps_z", "volume_5m_z", "mid_vs_vwap_5m_bps_z", "trade_flow_5m_z",
    "trade_intensity_per_min_z", "large_trade_ratio_5m_z", "volume_profile_ratio_z",
)
OBJECTIVES = tuple(o.value for o in Objective)
Z_CLIP = 5.0  # z-scores beyond +-5 (heavy tails, the first rows of a day) are clipped: bounded inputs for the MLP
OBS_DIM = len(FEATURES) + 1 + len(OBJECTIVES)


def observe(task: ExecutionTask, idx: np.ndarray) -> np.ndarray:
    """Observations (B, OBS_DIM) float32 of decisions ``idx`` (B,): clipped z-features, side, objective one-hot."""
    idx = np.asarray(idx)
    z = np.array([[task.features[i][name] for name in FEATURES] for i in idx], dtype=np.float64).reshape(len(idx), -1)
    z = np.clip(np.nan_to_num(z, nan=0.0), -Z_CLIP, Z_CLIP)  # (B, F)
    side = task.decisions.side[idx].astype(np.float64)[:, None]  # (B, 1) +1 buy, -1 sell
    objective = (task.decisions.objective[idx][:, None] == np.array(OBJECTIVES)[None, :]).astype(np.float64)  # (B, 3)
    return np.concatenate([z, side, objective], axis=1).astype(np.float32)


def action_space(kind: ActionKind, grid_bps: list[float]) -> spaces.Space:
    if ActionKind(kind) is ActionKind.CONTINUOUS:
        return spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    return spaces.Discrete(len(grid_bps))


def offsets_of_actions(actions: np.ndarray, kind: ActionKind, band_bps: float, grid_bps: list[float]) -> np.ndarray:
    """Side-relative offsets (B,) in bps of actions (B,) or (B, 1): ``a * band_bps`` (a clipped to [-1, 1]) or
    ``grid_bps[a]``."""
    a = np.asarray(actions).reshape(-1)
    if ActionKind(kind) is ActionKind.CONTINUOUS:
        return np.clip(a.astype(np.float64), -1.0, 1.0) * band_bps
    return np.asarray(grid_bps, dtype=np.float64)[a.astype(np.int64)]


class LimitOrderEnv(gym.Env):
    """One decision per episode from ``split`` of ``task``; the action is the limit offset (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(self, task: ExecutionTask, split: Split | str = Split.TRAIN, action: str | None = None,
                 offset_grid_bps: list[float] | None = None):
        """``action`` and ``offset_grid_bps``: None takes :class:`PPOConfig`'s (``algo.ppo.*``)."""
        default = PPOConfig()
        self.kind = ActionKind(action or default.action)
        self.grid_bps = [float(x) for x in (offset_grid_bps or default.offset_grid_bps)]
        self.task = task
        self.index = task.split_index(split)
        if not len(self.index):
            raise ValueError(f"split {Split(split).value!r} of the task holds no decision")
        self.band_bps = float(task.prompt_cfg.band_bps)
        self.observation_space = spaces.Box(-Z_CLIP, Z_CLIP, shape=(OBS_DIM,), dtype=np.float32)  # side, one-hot fit
        self.action_space = action_space(self.kind, self.grid_bps)
        self.decision: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A decision of the split drawn with the env's RNG, or ``options={"decision": i}`` (a global index)."""
        super().reset(seed=seed)
        options = options or {}
        self.decision = int(options["decision"] if "decision" in options else self.np_random.choice(self.index))
        return observe(self.task, np.array([self.decision]))[0], {"decision": self.decision}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.decision is None:
            raise RuntimeError("LimitOrderEnv.step before reset: each episode is one decision, call reset() first")
        i = np.array([self.decision])
        offset_bps = offsets_of_actions(np.asarray(action), self.kind, self.band_bps, self.grid_bps)
        rewards, outcomes = self.task.score_offsets(i, offset_bps[:, None])  # (1, 1) bps
        obs = observe(self.task, i)[0]
        info = {"decision": self.decision, "offset_bps": float(offset_bps[0]),
                "filled": bool(np.asarray(outcomes.filled)[0, 0])}
        self.decision = None
        return obs, float(rewards[0, 0]), True, False, info


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=LimitOrderEnv)
