"""The PPO baseline: stable-baselines3 ``PPO`` (``MlpPolicy``) on the limit-order env, trained on the training split.

Why: Schnaubelt (2022, EJOR 296(3)) places cryptocurrency limit orders with PPO on order-book features; this is that
kind of policy on our decisions, features, simulator and reward, the feature-vector counterpart of the language-model
policies (same registry, same evaluation). Offsets are side-relative bps (negative = passive), rewards bps (higher is
better, ``-IS`` by default).

Training scores decisions through :class:`BatchedLimitOrderEnv`, an SB3 ``VecEnv`` of ``n_envs`` copies of
:class:`~hyperdapo.rl.gym_env.LimitOrderEnv` that places all their orders in one simulator call (the per-call cost
of the simulator dominates one order; a test checks it agrees with the single env decision by decision). Every
``eval_every_steps`` env steps the deterministic policy is scored on every validation decision (``metrics.csv``).
Hyperparameters (``algo.ppo.*``, :class:`~hyperdapo.rl.config.PPOConfig`) were chosen on the validation split of
``experiment=demo`` (1,110 decisions; the test split is never read here), from the validation curves in
``metrics.csv`` at seed 0: the discrete grid beat the continuous band (-2.6 vs -3.0 bps after 40k steps at lr 3e-4),
lr 1e-3 beat 3e-4 and 3e-3 (-1.9 vs -2.6 and -2.2 bps), and with lr 1e-3 the curve is flat from about 33k steps
on (-1.93 at 33k, -1.95 at 82k), hence 40,960 steps (20 rollouts of 64 envs x 32 steps).

Registry entry ``<registry_dir>/<ASSET>/<run_name>/``: ``ppo.zip`` (SB3), ``config.yaml``, ``metrics.csv`` and
``summary.json`` (``"algo": "ppo"`` and the env spec: action kind, band, grid, features), each written atomically,
``summary.json`` last (its presence marks a complete entry). :func:`is_ppo_policy` and :func:`ppo_offsets` load it.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gymnasium.utils import seeding
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from hyperdapo.atomic import atomic_path, write_text_atomic
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split
from hyperdapo.rl.config import ActionKind, PPOConfig
from hyperdapo.rl.gym_env import FEATURES, OBS_DIM, LimitOrderEnv, observe, offsets_of_actions
from hyperdapo.rl.reward_model import reward_model_offsets, ridge_offsets

log = logging.getLogger(__name__)
MODEL_FILE = "ppo.zip"


class BatchedLimitOrderEnv(VecEnv):
    """``n_envs`` one-decision episodes of ``split`` stepped together: one ``score_offsets`` call per step. Every
    step ends every episode, so each step draws ``n_envs`` new decisions (SB3's auto-reset; the finished episode's
    observation is in ``info["terminal_observation"]``).

    On a day-by-day tape (``task.day`` set) the decisions of ``day_block`` consecutive steps (PPO: one rollout) are
    of one day, drawn in proportion to its decisions, so that a rollout reads one day window instead of one per day
    at every step; in memory every step draws from the whole split."""

    def __init__(self, task: ExecutionTask, split: Split | str, n_envs: int, action: ActionKind,
                 offset_grid_bps: list[float], seed: int | None = None, day_block: int = 1):
        self.single = LimitOrderEnv(task, split, action, offset_grid_bps)  # the spaces, index, band and grid
        super().__init__(n_envs, self.single.observation_space, self.single.action_space)
        self.task, self.rng, self.day_block = task, seeding.np_random(seed)[0], day_block
        self.decisions = np.zeros(n_envs, dtype=np.int64)  # (N,) global decision indices
        self.actions: np.ndarray | None = None
        self.draws, self.pool = 0, self.single.index  # steps drawn so far; the decisions the next ones draw from

    def _draw(self) -> np.ndarray:
        if self.task.day is not None and self.draws % self.day_block == 0:
            self.pool = self.task.one_day(self.single.index, self.rng)
        self.draws += 1
        self.decisions = self.rng.choice(self.pool, size=self.num_envs)
        return observe(self.task, self.decisions)  # (N, OBS_DIM)

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:  # PPO(seed=s) seeds the env through VecEnv.seed before its first reset
            self.rng = seeding.np_random(self._seeds[0])[0]
        self._reset_seeds()
        self._reset_options()
        return self._draw()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self):
        s = self.single
        offsets_bps = offsets_of_actions(self.actions, s.kind, s.band_bps, s.grid_bps)  # (N,)
        rewards, outcomes = self.task.score_offsets(self.decisions, offsets_bps[:, None])  # (N, 1) bps
        done_obs = observe(self.task, self.decisions)
        infos = [{"terminal_observation": o, "decision": int(i), "offset_bps": float(x), "filled": bool(f),
                  "TimeLimit.truncated": False}
                 for o, i, x, f in zip(done_obs, self.decisions, offsets_bps, np.asarray(outcomes.filled)[:, 0],
                                       strict=True)]
        return self._draw(), rewards[:, 0].astype(np.float32), np.ones(self.num_envs, dtype=bool), infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(self.single, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        setattr(self.single, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
        return [getattr(self.single, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def policy_offsets(model: PPO, task: ExecutionTask, idx: np.ndarray, env_spec: dict) -> np.ndarray:
    """Deterministic (mean / arg-max) offsets (B,) in side-relative bps of ``model`` for decisions ``idx`` (B,)."""
    actions, _ = model.predict(observe(task, idx), deterministic=True)
    return offsets_of_actions(actions, ActionKind(env_spec["action"]), env_spec["band_bps"],
                              env_spec["offset_grid_bps"])


def env_spec_of(cfg: PPOConfig, task: ExecutionTask) -> dict:
    """What a saved policy needs to turn its actions into offsets and to observe a decision."""
    return {"action": cfg.action.value, "band_bps": float(task.prompt_cfg.band_bps),
            "offset_grid_bps": [float(x) for x in cfg.offset_grid_bps], "features": list(FEATURES),
            "obs_dim": OBS_DIM}


class ValidationCurve(BaseCallback):
    """At the first rollout start after every ``every`` env steps (and at the start and the end of training): the mean
    reward (bps) of the deterministic policy on every validation decision, and the mean training reward of the
    decisions scored since the last row (by the sampling policy)."""

    def __init__(self, task: ExecutionTask, env_spec: dict, every: int):
        super().__init__()
        self.task, self.env_spec, self.every = task, env_spec, every
        self.val_idx = task.split_index(Split.VAL)
        self.rows: list[dict] = []
        self.train_rewards: list[float] = []
        self.next_at = 0

    def _record(self) -> None:
        rewards, _ = self.task.score_offsets(self.val_idx, policy_offsets(self.model, self.task, self.val_idx,
                                                                          self.env_spec)[:, None])
        train = float(np.mean(self.train_rewards)) if self.train_rewards else float("nan")
        self.rows.append({"step": self.num_timesteps, "val/reward_mean": float(rewards.mean()),
                          "train/reward_bps": train})
        log.info("ppo step %d: val reward %.3f bps, train reward %.3f bps", self.num_timesteps, rewards.mean(), train)
        self.train_rewards, self.next_at = [], self.num_timesteps + self.every

    def _on_training_start(self) -> None:
        if not len(self.val_idx):
            raise ValueError("the task has no validation decision: PPO's curve and choices are made on validation "
                             "(raise decisions.val_frac)")
        self._record()

    def _on_step(self) -> bool:
        self.train_rewards.extend(np.asarray(self.locals["rewards"], dtype=float).tolist())
        return True

    def _on_rollout_start(self) -> None:  # after the previous rollout's update (_on_step runs before it)
        if self.num_timesteps >= self.next_at:
            self._record()

    def _on_training_end(self) -> None:  # the policy that is saved
        self._record()


def make_ppo(task: ExecutionTask, cfg: PPOConfig, seed: int) -> PPO:
    env = BatchedLimitOrderEnv(task, Split.TRAIN, cfg.n_envs, cfg.action, cfg.offset_grid_bps, day_block=cfg.n_steps)
    return PPO("MlpPolicy", env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
               n_epochs=cfg.n_epochs, gamma=1.0, gae_lambda=1.0,  # one-step episodes: the return is the reward
               clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
               policy_kwargs={"net_arch": list(cfg.hidden_sizes)}, seed=seed, device="cpu", verbose=0)


def train_ppo(task: ExecutionTask, cfg: PPOConfig, seed: int) -> tuple[PPO, pd.DataFrame]:
    """PPO on the training split of ``task``; returns the model and its validation curve (one row per evaluation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64x64 MLP on 256-row minibatches gains nothing from intra-op threads, and on a
    try:  # shared CPU they thrash (6x slower measured on 2 loaded cores); one thread also fixes the float order
        model = make_ppo(task, cfg, seed)
        curve = ValidationCurve(task, env_spec_of(cfg, task), cfg.eval_every_steps)
        model.learn(total_timesteps=cfg.total_timesteps, callback=curve)
    finally:
        torch.set_num_threads(threads)
    return model, pd.DataFrame(curve.rows)


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_ppo_policy(model: PPO, policy_dir: Path, metrics: pd.DataFrame, config_yaml: str, summary: dict) -> Path:
    """The registry entry (see the module doc): every file atomic, ``summary.json`` last."""
    policy_dir = Path(policy_dir)
    buffer = io.BytesIO()
    model.save(buffer)
    with atomic_path(policy_dir / MODEL_FILE) as tmp:
        tmp.write_bytes(buffer.getvalue())
    write_csv_atomic(policy_dir / "metrics.csv", metrics)
    write_text_atomic(policy_dir / "config.yaml", config_yaml)
    write_text_atomic(policy_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return policy_dir


def run_ppo(task: ExecutionTask, cfg: PPOConfig, seed: int, out_dir: Path, policy_dir: Path, config_yaml: str,
            summary: dict) -> dict:
    """Train, write the run directory (``metrics.csv``, ``config.yaml``, ``summary.json``) and the registry entry;
    ``summary`` holds the run's identity (asset, run_dir, ...), completed here with the results."""
    t_fit = time.perf_counter()
    model, metrics = train_ppo(task, cfg, seed)
    val = task.split_index(Split.VAL)
    spec = env_spec_of(cfg, task)
    n_params = sum(p.numel() for p in model.policy.parameters())
    summary = {**summary, "algo": "ppo", "model": f"MLP {'x'.join(map(str, cfg.hidden_sizes))} (PPO)",
               "fit_seconds": time.perf_counter() - t_fit, "steps": int(model.num_timesteps), "env": spec,
               "trainable_params": n_params, "total_params": n_params, "trainable_share": 1.0,
               "final": {"val/reward_mean": float(metrics["val/reward_mean"].iloc[-1]), "val_decisions": len(val)},
               "policy_dir": str(policy_dir)}
    write_csv_atomic(Path(out_dir) / "metrics.csv", metrics)
    write_text_atomic(Path(out_dir) / "config.yaml", config_yaml)
    save_ppo_policy(model, policy_dir, metrics, config_yaml, summary)
    write_text_atomic(Path(out_dir) / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def teacher_offsets(task: ExecutionTask, teacher: str, cfg: PPOConfig, seed: int, idx: np.ndarray,
                    prompt_features: Mapping[str, bool] | None = None) -> np.ndarray:
    """A teacher's deterministic offsets (B,) in side-relative bps for decisions ``idx`` (B,) (``algo.label_teacher``):
    ``"ppo"`` trains a PPO policy on the training split of ``task`` here (``cfg``, ``seed``); ``"reward_model"`` fits
    the MLP reward model of :mod:`hyperdapo.rl.reward_model` on the training split (its epoch chosen on validation,
    ``seed``) and answers the offset of ``cfg.offset_grid_bps`` of highest predicted reward; ``"ridge"`` does the
    same with ridge regressions on ``prompt_features`` (the z-features the prompt shows, name -> side-relative,
    :func:`~hyperdapo.prompts.render.compact_z_features`); anything else is the path of a PPO registry entry."""
    if teacher == "ridge":
        if not prompt_features:
            raise ValueError("label_teacher=ridge reads the features the prompt shows; none were given")
        return ridge_offsets(task, cfg.offset_grid_bps, prompt_features, idx)
    if teacher == "reward_model":
        return reward_model_offsets(task, cfg.offset_grid_bps, seed, idx)
    if teacher != "ppo":
        return ppo_offsets(teacher, task, idx)
    model, curve = train_ppo(task, cfg, seed)
    log.info("label teacher: PPO, %d env steps, validation reward %.3f bps", cfg.total_timesteps,
             curve["val/reward_mean"].iloc[-1])
    return policy_offsets(model, task, np.asarray(idx), env_spec_of(cfg, task))


# ---------------------------------------------------------------------------------------------- loaders
def is_ppo_policy(policy_dir: Path | str) -> bool:
    """Whether ``policy_dir`` is a complete PPO registry entry (``summary.json`` with ``"algo": "ppo"`` and the
    model)."""
    summary = Path(policy_dir) / "summary.json"
    return (summary.exists() and (Path(policy_dir) / MODEL_FILE).exists()
            and json.loads(summary.read_text()).get("algo") == "ppo")


def ppo_offsets(policy_dir: Path | str, task: ExecutionTask, idx: np.ndarray) -> np.ndarray:
    """The deterministic offsets (B,) in side-relative bps of the PPO policy in ``policy_dir`` for decisions ``idx``
    (B,) of ``task``."""
    policy_dir = Path(policy_dir)
    if not is_ppo_policy(policy_dir):
        raise FileNotFoundError(f"{policy_dir}: not a PPO policy (needs {MODEL_FILE} and summary.json with "
                                "\"algo\": \"ppo\"; train one with algo=ppo)")
    spec = json.loads((policy_dir / "summary.json").read_text())["env"]
    if tuple(spec["features"]) != FEATURES:
        raise ValueError(f"{policy_dir}: the policy observes {spec['features']}, this env {list(FEATURES)}; retrain "
                         "it with algo=ppo")
    model = PPO.load(policy_dir / MODEL_FILE, device="cpu")
    return policy_offsets(model, task, np.asarray(idx), spec)
