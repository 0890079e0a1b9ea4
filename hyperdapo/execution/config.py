"""The typed configuration of the execution stage (``execution:`` and ``reward=``): light, no numerical imports.

:class:`FillConfig` is used by the fill simulator (:mod:`hyperdapo.execution.fills`), :class:`RewardConfig` by
:mod:`hyperdapo.execution.rewards` (see there for the reward definitions). The reward window (``horizon_s``,
``adverse_horizon_s``) is the decisions' (``decisions.*``, :class:`~hyperdapo.features.config.DecisionConfig`): each
decision carries it to the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hyperdapo.features.config import Objective


class FillRule(StrEnum):
    """When a resting order fills (fills.py, rule 4); with book-only data both read the book-only rule."""

    TRADE_THROUGH = "trade_through"  # a trade prints strictly through the limit (conservative)
    TOUCH = "touch"  # or a later snapshot's opposite best reaches the limit (hftbacktest)


class QueueModel(StrEnum):
    NONE = "none"  # no fill from trades at the limit itself
    CONSERVATIVE = "conservative"  # trades at the limit consume the queue ahead seen at placement
    CAPPED = "capped"  # the same, the queue ahead capped at the level's later visible size (hftbacktest)


@dataclass
class FillConfig:
    """How orders fill (times in s): the parts chosen in ``conf/execution/`` (``execution/fill=``,
    ``execution/latency=``). Fees are the venue's (``venue=``, :class:`VenueConfig`), the reward window the
    decisions' (``decisions.horizon_s``, ``decisions.adverse_horizon_s``)."""

    fill_rule: str = FillRule.TRADE_THROUGH  # trade_through | touch
    queue_model: str = QueueModel.NONE  # none | conservative | capped
    # the square-root impact model of depth beyond the visible book (fills.py, rule 6): the window of its
    # volatility (bps of the mid) and traded volume (coins), seconds before the execution
    impact_window_s: float = 300.0
    # the latency model, by Hydra _target_ (hyperdapo/execution/latency.py): the venue's constant latency_ms by default
    latency: dict[str, Any] = field(default_factory=lambda: {"_target_": "hyperdapo.execution.latency.VenueLatency"})

    def __post_init__(self) -> None:
        from hyperdapo.execution.latency import latency_model

        self.latency_model = latency_model(self.latency)
        for key, enum in (("fill_rule", FillRule), ("queue_model", QueueModel)):
            if getattr(self, key) not in {e.value for e in enum}:
                raise ValueError(f"execution.{key}={getattr(self, key)!r}: use one of {[e.value for e in enum]}")
            setattr(self, key, enum(getattr(self, key)))
        if not (math.isfinite(self.impact_window_s) and self.impact_window_s > 0):
            raise ValueError(f"execution.impact_window_s={self.impact_window_s}: must be finite and > 0")


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
    # per objective (aggressive | patient | risk_averse), weights of components added to the reward of the decisions
    # that state it, e.g. {aggressive: {risk: 1.0}}; any component of any reward; empty = the objective is only
    # words in the prompt (conf/reward/by_objective.yaml maps each one)
    objective_weights: dict[str, dict[str, float]] = field(default_factory=dict)

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
        components = {k for w in DEFAULT_WEIGHTS.values() for k in w}
        for objective, weights in self.objective_weights.items():
            if objective not in {o.value for o in Objective}:
                raise ValueError(f"reward.objective_weights.{objective}: no such objective; use "
                                 f"{[o.value for o in Objective]}")
            for key, w in weights.items():
                if key not in components:
                    raise ValueError(f"reward.objective_weights.{objective}.{key}: no such reward component; use "
                                     f"{sorted(components)}")
                if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                    raise ValueError(f"reward.objective_weights.{objective}.{key}={w}: must be a finite number >= 0")
        for key in ("fill_scale_bps", "risk_scale_bps", "invalid_penalty"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"reward.{key}={getattr(self, key)}: must be finite")


@dataclass
class SequentialConfig:
    """Sequential execution (:mod:`hyperdapo.execution.sequential`): the parent order is worked every ``dt_s``
    seconds until its horizon, the decision's ``decisions.horizon_s`` (one home: a horizon lives on the decision), of
    which ``dt_s`` must be a whole fraction; ``dt_s`` = the horizon is the one-shot task."""

    dt_s: float = 10.0  # seconds between the agent's decisions
    # train.py: train and validate the LLM on this task, one answer (KEEP / REPLACE x bps / CROSS) per step of a parent
    # order (hyperdapo.rl.multiturn), instead of the one-shot order held to the horizon
    multi_turn: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dt_s) and self.dt_s > 0 and abs(self.dt_s * 1e6 - round(self.dt_s * 1e6)) < 1e-6):
            raise ValueError(f"sequential.dt_s={self.dt_s}: must be finite, > 0 and a whole number of microseconds")

    @property
    def dt_us(self) -> int:
        return round(self.dt_s * 1e6)

    def n_steps(self, horizon_s: float) -> int:
        """The N = horizon / dt decisions of an episode (at 0, dt, ..., horizon - dt after the decision time)."""
        horizon_us = int(horizon_s * 1e6)  # as the simulator reads a horizon
        if horizon_us % self.dt_us:
            raise ValueError(f"sequential.dt_s={self.dt_s} does not divide decisions.horizon_s={horizon_s}: choose a "
                             f"step that does (e.g. {horizon_s / max(1, round(horizon_s / self.dt_s)):g})")
        return horizon_us // self.dt_us
