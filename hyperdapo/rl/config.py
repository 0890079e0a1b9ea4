"""Typed configs of the learning algorithms (``algo=``) and the optimiser. Values live in ``conf/algo/``;
these dataclasses are their schema and check them (errors name the key)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class AlgoName(StrEnum):
    DAPO = "dapo"
    GRPO = "grpo"
    DPO = "dpo"
    SFT = "sft"
    PPO = "ppo"  # the feature-vector baseline (stable-baselines3), not a language model: see PPOConfig


class ActionKind(StrEnum):
    """The action space of the limit-order Gymnasium env (:mod:`hyperdapo.rl.gym_env`)."""

    CONTINUOUS = "continuous"  # Box([-1, 1]): the offset scaled by the answer band, offset_bps = a * band_bps
    DISCRETE = "discrete"  # Discrete(K): the index of an offset in ``offset_grid_bps``


@dataclass
class PPOConfig:
    """The PPO baseline (stable-baselines3 ``PPO`` with ``MlpPolicy``, Schulman et al. 2017) on the limit-order env
    (``algo=ppo``). One episode is one decision, so ``gamma`` and GAE do not matter; a rollout scores
    ``n_envs * n_steps`` training decisions in one simulator call per step. Offsets are side-relative bps."""

    action: str = ActionKind.DISCRETE
    offset_grid_bps: list[float] = field(default_factory=lambda: [-50.0, -30.0, -15.0, -10.0, -5.0, -2.0, -1.0, 0.0,
                                                                  1.0, 2.0, 5.0])  # the discrete actions (bps)
    total_timesteps: int = 40_960  # training decisions scored (env steps over all envs): 20 rollouts of 2,048
    n_envs: int = 64  # decisions scored together per env step (one batched simulator call)
    n_steps: int = 32  # steps per env per rollout: a rollout is n_envs * n_steps decisions
    batch_size: int = 256  # PPO minibatch (decisions)
    n_epochs: int = 10  # passes over each rollout
    learning_rate: float = 1e-3  # Adam; chosen on validation over 3e-4 (hyperdapo/rl/ppo.py)
    clip_range: float = 0.2
    ent_coef: float = 0.0
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])  # MlpPolicy net_arch (policy and value)
    eval_every_steps: int = 4096  # env steps between validation evaluations (a metrics.csv row each)

    def __post_init__(self) -> None:
        if self.action not in {e.value for e in ActionKind}:
            raise ValueError(f"algo.ppo.action={self.action!r}: use one of {[e.value for e in ActionKind]}")
        self.action = ActionKind(self.action)
        if len(self.offset_grid_bps) < 2 or not all(map(math.isfinite, self.offset_grid_bps)):
            raise ValueError(f"algo.ppo.offset_grid_bps={list(self.offset_grid_bps)}: need >= 2 finite offsets (bps)")
        if len(set(self.offset_grid_bps)) != len(self.offset_grid_bps):
            raise ValueError(f"algo.ppo.offset_grid_bps={list(self.offset_grid_bps)}: offsets must be distinct")
        for key in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_every_steps"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"algo.ppo.{key}={getattr(self, key)}: must be >= 1")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"algo.ppo.hidden_sizes={list(self.hidden_sizes)}: need one or more layer sizes >= 1")
        for key in ("learning_rate", "clip_range"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise ValueError(f"algo.ppo.{key}={getattr(self, key)}: must be finite and > 0")
        if not (math.isfinite(self.ent_coef) and self.ent_coef >= 0):
            raise ValueError(f"algo.ppo.ent_coef={self.ent_coef}: must be finite and >= 0")


class OnStarvation(StrEnum):
    """What an RL step does when dynamic sampling keeps fewer than B groups in ``max_gen_batches`` batches."""

    ERROR = "error"  # stop the run with an error naming the keys (exit 2, no traceback)
    CONTINUE = "continue"  # train on the groups kept (none: skip the update) and log how many (train/kept_groups)


class LossAgg(StrEnum):
    TOKEN_MEAN = "token-mean"  # DAPO: sum over every valid token of the batch / global token count
    SEQ_MEAN_TOKEN_MEAN = "seq-mean-token-mean"  # GRPO: mean per answer, then mean over answers


@dataclass
class AlgoConfig:
    """One learning algorithm. RL fields (dapo, grpo) follow Yu et al. 2025 (arXiv 2503.14476) names."""

    name: str = AlgoName.DAPO  # dapo | grpo | dpo | sft | ppo
    # --- rollouts (dapo, grpo)
    prompts_per_batch: int = 8  # B: groups per optimisation batch
    group_size: int = 8  # G: answers sampled per prompt
    temperature: float = 1.0  # rollout sampling temperature (at the first RL step)
    temperature_end: float | None = None  # linear schedule to this temperature at the last RL step; None = constant
    top_p: float = 1.0
    entropy_coef: float = 0.0  # entropy bonus: loss - entropy_coef * token-mean entropy (nats) of the trained answers
    max_new_tokens: int = 16  # generation cap; also L_max of the overlong shaping
    # --- DAPO components (each can be switched off for ablations)
    eps_low: float = 0.20  # ratio clipped below at 1 - eps_low
    eps_high: float = 0.28  # ratio clipped above at 1 + eps_high (decoupled: clip-higher)
    loss_agg: str = LossAgg.TOKEN_MEAN
    adv_scale_bps: float | None = None  # None: divide by the group std (DAPO); a number: by this constant
    dynamic_sampling: bool = True
    min_reward_std: float = 0.5  # bps: groups whose reward std is below this carry no signal and are dropped
    max_gen_batches: int = 8  # generation batches an RL step may draw to fill B informative groups
    on_starvation: str = OnStarvation.ERROR  # error | continue: when max_gen_batches did not fill B groups
    overlong_shaping: bool = True
    overlong_cache_len: int = 4  # L_cache: soft penalty over the last tokens before max_new_tokens
    overlong_penalty_bps: float = 10.0  # reward scale of the overlong penalty (the penalty is in [-1, 0])
    mask_truncated: bool = False  # drop truncated answers from the loss (DAPO's overlong filtering)
    mu: int = 1  # passes over each rollout batch
    minibatches: int = 2  # optimiser steps per pass (the 2nd onwards is off-policy, so clipping acts)
    micro_batch_size: int = 64  # sequences per forward/backward (gradient accumulation; does not change the loss)
    kl_beta: float = 0.0  # KL penalty to the reference (adapters disabled / initial weights); 0 = none
    sft_warmup_steps: int = 0  # SFT steps on the chosen answers before the first RL step (dapo, grpo)
    # --- offline algorithms (and the SFT warm-up)
    dpo_beta: float = 0.1
    sft_batch_size: int = 32  # (prompt, answer) pairs or preference pairs per step
    # the candidate offsets (bps, side-relative) the SFT and DPO labels are chosen from: chosen = the best ex post
    label_offsets_bps: list[float] = field(default_factory=lambda: [-50.0, -30.0, -15.0, -5.0, 0.0, 5.0])
    label_tie_bps: float = 0.0  # soft labels: every offset within this of the best is a target (one drawn per step)
    label_smoothing: float = 0.0  # SFT cross-entropy smoothed toward the uniform token distribution by this weight
    # SFT labels from a teacher policy instead of the ex-post best offsets: null (ex post), "ppo" (a PPO policy on the
    # features, trained in-process on the training split with algo.ppo and the run's seed), "reward_model" (the offset
    # of algo.ppo.offset_grid_bps of highest predicted reward of a 64x64 MLP regressing every offset's reward on PPO's
    # features, fitted on the training split, its epoch chosen on validation, the run's seed:
    # hyperdapo/rl/reward_model.py), "ridge" (the same rule from one ridge regression per offset on the z-features the
    # compact prompt shows, side-relative: the model can see what its teacher reads; penalty chosen on validation)
    # or a PPO registry entry's path. Ex-post labels are a per-decision lottery whose
    # mode SFT learns; a teacher's answers are a function of the causal state, which the language model can imitate
    # before RL refines it on the real reward.
    label_teacher: str | None = None
    # --- the PPO baseline (algo=ppo; the fields above are for the language-model algorithms)
    ppo: PPOConfig = field(default_factory=PPOConfig)

    def __post_init__(self) -> None:
        for key, kind in (("name", AlgoName), ("loss_agg", LossAgg), ("on_starvation", OnStarvation)):
            if getattr(self, key) not in {e.value for e in kind}:
                raise ValueError(f"algo.{key}={getattr(self, key)!r}: use one of {[e.value for e in kind]}")
        self.name, self.loss_agg = AlgoName(self.name), LossAgg(self.loss_agg)
        self.on_starvation = OnStarvation(self.on_starvation)
        for key in ("prompts_per_batch", "max_new_tokens", "max_gen_batches", "mu", "minibatches",
                    "micro_batch_size", "sft_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"algo.{key}={getattr(self, key)}: must be >= 1")
        if self.group_size < 2:
            raise ValueError(f"algo.group_size={self.group_size}: group advantages need G >= 2 answers per prompt")
        if not (0 <= self.eps_low < 1 and self.eps_high >= 0):
            raise ValueError(f"algo.eps_low={self.eps_low}, algo.eps_high={self.eps_high}: need 0 <= eps_low < 1, "
                             "eps_high >= 0")
        if self.eps_low > self.eps_high:
            raise ValueError(f"algo.eps_low={self.eps_low} > algo.eps_high={self.eps_high}: DAPO's clip-higher "
                             "needs eps_low <= eps_high (use equal values for symmetric clipping)")
        if not 0 <= self.overlong_cache_len < self.max_new_tokens:
            raise ValueError(f"algo.overlong_cache_len={self.overlong_cache_len}: must be in [0, max_new_tokens)")
        for key in ("temperature", "top_p", "dpo_beta"):
            if not getattr(self, key) > 0:
                raise ValueError(f"algo.{key}={getattr(self, key)}: must be > 0")
        if self.sft_warmup_steps < 0:
            raise ValueError(f"algo.sft_warmup_steps={self.sft_warmup_steps}: must be >= 0")
        if self.temperature_end is not None and not self.temperature_end > 0:
            raise ValueError(f"algo.temperature_end={self.temperature_end}: must be > 0 (or null: constant)")
        if len(self.label_offsets_bps) < 2 or len(set(self.label_offsets_bps)) != len(self.label_offsets_bps) \
                or not all(map(math.isfinite, self.label_offsets_bps)):
            raise ValueError(f"algo.label_offsets_bps={list(self.label_offsets_bps)}: need >= 2 distinct finite "
                             "offsets (bps)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"algo.label_smoothing={self.label_smoothing}: must be in [0, 1)")
        for key in ("min_reward_std", "kl_beta", "overlong_penalty_bps", "entropy_coef", "label_tie_bps"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                raise ValueError(f"algo.{key}={getattr(self, key)}: must be finite and >= 0")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr`` at ``trainer.max_steps``."""

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr={self.lr}: must be > 0")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps={self.warmup_steps}: must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")
