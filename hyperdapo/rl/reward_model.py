"""Reward models on the causal features, and the teachers their rules make (``algo.label_teacher=reward_model|ridge``).

A reward model regresses the reward (bps) of every candidate offset of a grid on the PPO baseline's observation (the
clipped causal z-features, side and objective, :func:`~hyperdapo.rl.gym_env.observe`); its rule answers the offset
of highest predicted reward. Two kinds, both fitted on the training split only, their one setting chosen on the
validation split (the test split is never read here):

- ridge (:func:`ridge_fit`): one linear regression per offset plus an unpenalised intercept, the penalty chosen on
  validation (:func:`ridge_choose`);
- MLP (:func:`fit_mlp`): a 64x64 tanh network regressing all offsets' rewards at once (Adam, lr 1e-3, minibatch
  128, mean squared error), its epoch (every 20, up to 300) the one whose rule earns most on validation.

Why a teacher: on StandX BTC (``experiment=standx_btc``) the constant 0-bps answer is nearly optimal, and SFT on the
ex-post best offsets (a per-decision lottery) or on a PPO teacher learns that constant;
``experiments/learnability.py`` (which uses this module) measured that the MLP rule beats the best fixed offset on
validation (+0.03..+0.06 bps over 3 seeds). :func:`reward_model_offsets` gives that rule's answers as SFT labels.
The tiny language model did not imitate it: the rule reads features the compact prompt does not show.
:func:`ridge_offsets` (the preset's teacher) reads only what the prompt shows, side-relative
(:func:`prompt_observation`; with ``prompt.book_depth`` the depth features that carry the signal there): +0.09 bps
over the best fixed offset on validation, and the model learns it in 1,500 SFT steps.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from hyperdapo.execution.preferences import offset_rewards
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split
from hyperdapo.rl.gym_env import FEATURES, observe

log = logging.getLogger(__name__)
RIDGE_LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0)
MLP_EPOCHS = 300  # the most epochs of the MLP; its rule is scored on validation every MLP_EVAL_EVERY of them
MLP_EVAL_EVERY = 20


def mean_reward(r: np.ndarray, choice: np.ndarray) -> float:
    """Mean reward (bps) of answering offset index ``choice`` (N,) on rewards ``r`` (N, K)."""
    return float(r[np.arange(len(r)), choice].mean())


def ridge_fit(x: np.ndarray, r: np.ndarray, lam: float) -> np.ndarray:
    """Weights (F + 1, K) of the ridge regressions of rewards ``r`` (N, K) on ``x`` (N, F) plus an unpenalised
    intercept."""
    xa = np.c_[x, np.ones(len(x))]
    penalty = lam * np.eye(xa.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(xa.T @ xa + penalty, xa.T @ r)


def ridge_predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Predicted rewards (N, K) of the ridge weights ``w`` (F + 1, K) for ``x`` (N, F)."""
    return np.c_[x, np.ones(len(x))] @ w


def ridge_choose(x_train: np.ndarray, r_train: np.ndarray, x_val: np.ndarray, r_val: np.ndarray,
                 lambdas=RIDGE_LAMBDAS) -> tuple[np.ndarray, float]:
    """The ridge weights fitted on the training rows whose rule earns most on the validation rows, and its penalty."""
    lam = max(lambdas, key=lambda lam: mean_reward(r_val, ridge_predict(ridge_fit(x_train, r_train, lam),
                                                                         x_val).argmax(1)))
    return ridge_fit(x_train, r_train, lam), lam


@dataclass
class MLPRewardModel:
    """A fitted MLP reward model: ``net`` at the validation-chosen ``epoch``, its rule's validation reward (bps)."""

    net: torch.nn.Module
    epoch: int
    val_reward: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted rewards (N, K) bps for observations ``x`` (N, F)."""
        with torch.no_grad():
            return self.net(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()

    def choose(self, x: np.ndarray) -> np.ndarray:
        """The rule: the offset index (N,) of highest predicted reward."""
        return self.predict(x).argmax(1)


def fit_mlp(x_train: np.ndarray, r_train: np.ndarray, x_val: np.ndarray, r_val: np.ndarray, seed: int,
            epochs: int = MLP_EPOCHS, every: int = MLP_EVAL_EVERY) -> MLPRewardModel:
    """The 64x64 tanh MLP regressing rewards ``r_train`` (N, K) bps on ``x_train`` (N, F), fitted on those rows only;
    of the networks after every ``every`` epochs, the one whose rule earns most on ``(x_val, r_val)`` (the first on
    ties). Deterministic for a seed; runs on one thread inside a forked torch RNG (the caller's RNG and thread count
    are left as they were)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: intra-op threads only thrash a shared CPU, and one fixes the float order
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            k = r_train.shape[1]
            net = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                      torch.nn.Tanh(), torch.nn.Linear(64, k))
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            xt = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
            rt = torch.as_tensor(np.asarray(r_train, dtype=np.float32))
            xv = torch.as_tensor(np.asarray(x_val, dtype=np.float32))
            best: MLPRewardModel | None = None
            for epoch in range(1, epochs + 1):
                for batch in torch.randperm(len(xt)).split(128):
                    loss = ((net(xt[batch]) - rt[batch]) ** 2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                if epoch % every == 0:
                    with torch.no_grad():
                        val = mean_reward(r_val, net(xv).argmax(1).numpy())
                    if best is None or val > best.val_reward:
                        best = MLPRewardModel(copy.deepcopy(net).eval(), epoch, val)
    finally:
        torch.set_num_threads(threads)
    if best is None:
        raise ValueError(f"fit_mlp: epochs={epochs} < every={every}: no epoch was scored on validation")
    return best


def _fit_and_val_splits(task: ExecutionTask, teacher: str) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation decisions a teacher is fitted and chosen on; a clear error when either is empty."""
    train, val = task.split_index(Split.TRAIN), task.split_index(Split.VAL)
    if not len(train) or not len(val):
        raise ValueError(f"label_teacher={teacher}: {len(train)} training / {len(val)} validation decisions; the "
                         "model is fitted on the first and its setting chosen on the second (raise "
                         "decisions.train_frac / decisions.val_frac)")
    return train, val


def _log_teacher(name: str, grid: np.ndarray, r_val: np.ndarray, val_reward: float, offsets: np.ndarray) -> None:
    best_fixed = int(r_val.mean(axis=0).argmax())
    log.info("label teacher: %s: validation reward %.3f bps (best fixed offset %+g bps: %.3f); %d distinct answers on "
             "%d decisions", name, val_reward, grid[best_fixed], r_val[:, best_fixed].mean(), len(np.unique(offsets)),
             len(offsets))


def reward_model_offsets(task: ExecutionTask, offsets_bps, seed: int, idx: np.ndarray,
                         epochs: int = MLP_EPOCHS) -> np.ndarray:
    """The MLP reward model's rule as a teacher (``algo.label_teacher=reward_model``): offsets (B,) in side-relative
    bps, one of ``offsets_bps`` each, for decisions ``idx`` (B,). The model regresses the rewards of ``offsets_bps`` on
    the training split's decisions (:func:`fit_mlp`, ``seed``), its epoch chosen on the validation split; the test
    split is never scored."""
    grid = np.asarray(offsets_bps, dtype=np.float64)
    train, val = _fit_and_val_splits(task, "reward_model")
    r_val = offset_rewards(task, val, grid)  # (V, K) bps
    model = fit_mlp(observe(task, train), offset_rewards(task, train, grid), observe(task, val), r_val, seed, epochs)
    offsets = grid[model.choose(observe(task, np.asarray(idx)))]
    _log_teacher(f"MLP reward model (seed {seed}), epoch {model.epoch}", grid, r_val, model.val_reward, offsets)
    return offsets


def prompt_observation(task: ExecutionTask, idx: np.ndarray, features: Mapping[str, bool]) -> np.ndarray:
    """Inputs (B, len(features) + 3) of decisions ``idx`` (B,) for a teacher that reads what the prompt shows: the
    clipped causal z-features named in ``features`` (:data:`~hyperdapo.rl.gym_env.FEATURES`), each multiplied by the
    side (+1 buy, -1 sell) when its value is True (side-relative, positive = against a passive order), then the
    objective one-hot."""
    obs = observe(task, np.asarray(idx))
    n, side = len(FEATURES), obs[:, len(FEATURES)]
    cols = [obs[:, FEATURES.index(name)] * (side if relative else 1.0) for name, relative in features.items()]
    return np.column_stack([*cols, obs[:, n + 1:]])


def ridge_offsets(task: ExecutionTask, offsets_bps, features: Mapping[str, bool], idx: np.ndarray) -> np.ndarray:
    """The ridge reward model's rule as a teacher (``algo.label_teacher=ridge``): offsets (B,) in side-relative bps,
    one of ``offsets_bps`` each, for decisions ``idx`` (B,). One linear regression of the reward per offset on
    :func:`prompt_observation` (the features the prompt shows, so the language model can see what the rule reads),
    fitted on the training split, its penalty chosen on the validation split (:func:`ridge_choose`); the test split
    is never scored. Deterministic."""
    grid = np.asarray(offsets_bps, dtype=np.float64)
    train, val = _fit_and_val_splits(task, "ridge")
    r_val = offset_rewards(task, val, grid)  # (V, K) bps
    x_val = prompt_observation(task, val, features)
    w, lam = ridge_choose(prompt_observation(task, train, features), offset_rewards(task, train, grid), x_val, r_val)
    offsets = grid[ridge_predict(w, prompt_observation(task, idx, features)).argmax(1)]
    _log_teacher(f"ridge on {', '.join(features)} (lambda {lam:g})", grid, r_val,
                 mean_reward(r_val, ridge_predict(w, x_val).argmax(1)), offsets)
    return offsets
