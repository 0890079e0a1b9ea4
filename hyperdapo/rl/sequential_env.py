"""Sequential execution as a Gymnasium env (``HyperDAPO/Execution-v0``) and the PPO baseline on it (issue 22).

One episode is one parent order (a decision of the env's split), one env step one dt of
:class:`~hyperdapo.execution.sequential.SequentialEpisodes` (the same simulator, fills, latency, fees and reward as
the one-shot env, :mod:`hyperdapo.rl.gym_env`).

- Observation (float32, :data:`OBS_DIM`): the one-shot env's (:func:`hyperdapo.rl.gym_env.observe`: the decision's
  causal z-features at t0, side, objective one-hot), then the step's state (:data:`STEP_FEATURES`, data at or before
  t_k only): time left and remaining quantity as shares of T and Q, whether an order works, its offset from the mid,
  the queue ahead of it as a share of Q (unknown: the bound), the running IS, the mid's move since arrival
  (side-relative, positive = against) and the spread; bps divided by :data:`BPS_SCALE`; NaN (an empty side of the
  book) as 0; everything clipped to +-``Z_CLIP``.
- Action: ``Discrete(2 + K)``: 0 KEEP, 1 CROSS all that remains, 2 + j REPLACE all that remains at
  ``offset_grid_bps[j]`` (side-relative bps from the mid at t_k, negative = passive; by default ``algo.ppo``'s grid).
- Reward: 0 until the episode ends (all executed, or T), then the episode's reward (bps of the parent, ``-IS`` by
  default): undiscounted, the return is the episode's reward.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from hyperdapo.execution.config import SequentialConfig
from hyperdapo.execution.sequential import Act, Actions, SequentialEpisodes, StepState
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split
from hyperdapo.rl import gym_env
from hyperdapo.rl.config import PPOConfig
from hyperdapo.rl.gym_env import Z_CLIP, observe

ENV_ID = "HyperDAPO/Execution-v0"
STEP_FEATURES = ("time_left_share", "remaining_share", "working", "working_offset_bps", "queue_ahead_share",
                 "is_bps", "mid_move_bps", "spread_bps")
BPS_SCALE = 10.0  # bps features in units of 10 bps: +-Z_CLIP is +-50 bps
OBS_DIM = gym_env.OBS_DIM + len(STEP_FEATURES)


def observe_step(task: ExecutionTask, idx: np.ndarray, s: StepState) -> np.ndarray:
    """Observations (B, OBS_DIM) float32 of episodes of decisions ``idx`` (B,) in state ``s``."""
    working = s.working_qty > 0
    step = np.stack([
        np.full(len(s.side), s.time_left_s / s.horizon_s), s.remaining_qty / s.parent_qty, working.astype(np.float64),
        np.where(working, s.working_offset_bps, 0.0) / BPS_SCALE,
        np.where(working, np.nan_to_num(s.queue_ahead_qty, nan=np.inf), 0.0) / s.parent_qty,  # unknown: the bound
        s.is_bps / BPS_SCALE, s.mid_move_bps / BPS_SCALE, s.spread_bps / BPS_SCALE,
    ], axis=1)  # (B, len(STEP_FEATURES))
    step = np.clip(np.nan_to_num(step, nan=0.0), -Z_CLIP, Z_CLIP)  # NaN: a side of the book is empty at t_k
    return np.concatenate([observe(task, idx), step], axis=1).astype(np.float32)


def actions_of(a: np.ndarray, grid_bps: list[float]) -> Actions:
    """Env actions (B,) as episode actions: 0 KEEP, 1 CROSS, 2 + j REPLACE at ``grid_bps[j]``, all that remains."""
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    kind = np.where(a == 0, Act.KEEP, np.where(a == 1, Act.CROSS, Act.REPLACE))
    offsets = np.asarray(grid_bps, dtype=np.float64)[np.clip(a - 2, 0, len(grid_bps) - 1)]
    return Actions.of(kind, np.where(kind == Act.REPLACE, offsets, np.nan))


class ExecutionEnv(gym.Env):
    """One parent order (a decision of ``split`` of ``task``) per episode, one dt per step (see the module doc)."""

    metadata = {"render_modes": []}

    def __init__(self, task: ExecutionTask, split: Split | str = Split.TRAIN, cfg: SequentialConfig | None = None,
                 offset_grid_bps: list[float] | None = None):
        """``cfg``: None = :class:`SequentialConfig`'s defaults; ``offset_grid_bps``: None = ``algo.ppo``'s grid."""
        self.task, self.cfg = task, cfg or SequentialConfig()
        self.cfg.n_steps(task.decisions.horizon_s)  # dt must divide the horizon: fail here, not at the first reset
        self.grid_bps = [float(x) for x in (offset_grid_bps or PPOConfig().offset_grid_bps)]
        self.index = task.split_index(split)
        if not len(self.index):
            raise ValueError(f"split {Split(split).value!r} of the task holds no decision")
        self.observation_space = spaces.Box(-Z_CLIP, Z_CLIP, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = spaces.Discrete(2 + len(self.grid_bps))
        self.episode: SequentialEpisodes | None = None

    def _obs(self) -> np.ndarray:
        return observe_step(self.task, self.episode.idx, self.episode.state())[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """A decision of the split drawn with the env's RNG, or ``options={"decision": i}`` (a global index)."""
        super().reset(seed=seed)
        options = options or {}
        decision = int(options["decision"] if "decision" in options else self.np_random.choice(self.index))
        self.episode = SequentialEpisodes(self.task, np.array([decision]), self.cfg)
        return self._obs(), {"decision": decision}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.episode is None or self.episode.finished:
            raise RuntimeError("ExecutionEnv.step before reset: an episode is one parent order, call reset() first")
        ep = self.episode
        ep.step(actions_of(np.asarray(action), self.grid_bps))
        info = {"decision": int(ep.idx[0]), "step": ep.k}
        if not ep.finished:
            return self._obs(), 0.0, False, False, info
        out = ep.outcomes()
        info |= {"is_bps": float(out.is_bps[0, 0]), "filled": bool(out.filled[0, 0]), "orders": int(ep.n_orders[0])}
        return self._obs(), float(ep.rewards()[0]), True, False, info


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=ExecutionEnv)


# ---------------------------------------------------------------------------------------------- PPO
def make_sequential_ppo(task: ExecutionTask, cfg: PPOConfig, seq_cfg: SequentialConfig, seed: int) -> PPO:
    """stable-baselines3 PPO (``MlpPolicy``, ``algo.ppo``'s hyperparameters and grid) on ``cfg.n_envs`` copies of
    the env over the training split; undiscounted (``gamma`` 1: the return is the episode's reward)."""
    env = DummyVecEnv([lambda: ExecutionEnv(task, Split.TRAIN, seq_cfg, cfg.offset_grid_bps)] * cfg.n_envs)
    return PPO("MlpPolicy", env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
               n_epochs=cfg.n_epochs, gamma=1.0, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
               policy_kwargs={"net_arch": list(cfg.hidden_sizes)}, seed=seed, device="cpu", verbose=0)


def train_sequential_ppo(task: ExecutionTask, cfg: PPOConfig, seq_cfg: SequentialConfig, seed: int) -> PPO:
    """PPO trained for ``cfg.total_timesteps`` env steps (dt steps of parent orders) on the training split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP gains nothing from intra-op threads on a shared CPU (see rl/ppo.py)
    try:
        model = make_sequential_ppo(task, cfg, seq_cfg, seed)
        model.learn(total_timesteps=cfg.total_timesteps)
    finally:
        torch.set_num_threads(threads)
    return model


def ppo_policy(model: PPO, task: ExecutionTask, idx: np.ndarray, grid_bps: list[float]):
    """The deterministic policy of ``model`` on episodes of ``task``'s decisions ``idx``, as a sequential policy
    (``StepState -> Actions``) for :func:`~hyperdapo.execution.sequential.run_episodes`."""
    return lambda s: actions_of(model.predict(observe_step(task, idx, s), deterministic=True)[0], grid_bps)
