"""The typed configuration of the features stage (``features:`` and ``decisions:``): light, no numerical imports.

:class:`FeatureConfig` is used by :mod:`hyperdapo.features.compute`, :class:`DecisionConfig` and the user's
:class:`Objective` by :mod:`hyperdapo.features.decision_set`; each ``__post_init__`` names the offending key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Objective(StrEnum):
    """What the user asks the execution to optimise; rendered into the prompt with its trade-off."""

    AGGRESSIVE = "aggressive"
    PATIENT = "patient"
    RISK_AVERSE = "risk_averse"


@dataclass
class FeatureConfig:
    """Feature windows in seconds; ``imbalance_levels`` book levels for the imbalance."""

    imbalance_levels: int = 5
    window_s: float = 300.0  # the "5-min" window of trade, volatility and update features
    large_trade_lookback_s: float = 3600.0
    large_trade_quantile: float = 0.9
    ewm_tau_s: float = 3600.0
    ewm_min_rows: int = 5

    def __post_init__(self) -> None:
        if self.imbalance_levels < 1:
            raise ValueError(f"features.imbalance_levels={self.imbalance_levels}: must be >= 1")
        for key in ("window_s", "large_trade_lookback_s", "ewm_tau_s"):
            if not getattr(self, key) > 0:
                raise ValueError(f"features.{key}={getattr(self, key)}: must be > 0")
        if not 0 < self.large_trade_quantile < 1:
            raise ValueError(f"features.large_trade_quantile={self.large_trade_quantile}: must be in (0, 1)")
        if self.ewm_min_rows < 1:
            raise ValueError(f"features.ewm_min_rows={self.ewm_min_rows}: must be >= 1")


@dataclass
class DecisionConfig:
    """How decisions are laid out and drawn. Times in seconds, sizes in USD notional."""

    every_s: float = 60.0  # decision grid step
    jitter_s: float = 0.0  # uniform jitter added to each grid time, in [0, jitter_s)
    warmup_s: float = 900.0  # no decision before the first snapshot + warmup (15-min features need history)
    horizon_s: float = 300.0  # fill horizon: unfilled orders are cleaned up by a market order then
    adverse_horizon_s: float = 60.0  # adverse selection is measured this long after a fill
    buy_share: float = 0.5  # probability that a decision is a buy
    notional_min_usd: float = 5_000.0
    notional_max_usd: float = 20_000.0
    objective_weights: dict[str, float] = field(
        default_factory=lambda: {"aggressive": 1.0, "patient": 1.0, "risk_averse": 1.0}
    )
    train_frac: float = 0.8
    val_frac: float = 0.1  # test gets the rest
    embargo_s: float = 360.0  # gap between splits; must be >= horizon_s + adverse_horizon_s
    # a decision is dropped when the book has a gap longer than this (s) between its last snapshot at or before t
    # and the end of its reward window: a recorder's missing minutes are not a market in which nothing happened
    max_gap_s: float = 60.0
    # keep every k-th training decision (1 = all): the data-size sweep (experiments/ablations.py); the validation and
    # test decisions (times, sides, quantities, objectives) are the same for every k
    train_every: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("every_s", "horizon_s", "notional_min_usd", "max_gap_s"):
            if not getattr(self, key) > 0:
                raise ValueError(f"decisions.{key}={getattr(self, key)}: must be > 0")
        if not (isinstance(self.train_every, int) and self.train_every >= 1):
            raise ValueError(f"decisions.train_every={self.train_every}: must be an integer >= 1")
        for key in ("jitter_s", "warmup_s", "adverse_horizon_s"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"decisions.{key}={getattr(self, key)}: must be >= 0")
        if not 0 <= self.buy_share <= 1:
            raise ValueError(f"decisions.buy_share={self.buy_share}: must be in [0, 1]")
        if self.notional_max_usd < self.notional_min_usd:
            raise ValueError(
                f"decisions.notional_max_usd={self.notional_max_usd} < notional_min_usd={self.notional_min_usd}"
            )
        unknown = set(self.objective_weights) - {o.value for o in Objective}
        if unknown:
            raise ValueError(
                f"decisions.objective_weights: unknown objective(s) {sorted(unknown)}; "
                f"use {[o.value for o in Objective]}"
            )
        weights = list(self.objective_weights.values())
        if any(not (math.isfinite(w) and w >= 0) for w in weights) or sum(weights) <= 0:
            raise ValueError(f"decisions.objective_weights={self.objective_weights}: need finite weights >= 0, sum > 0")
        if not (0 < self.train_frac < 1 and 0 <= self.val_frac < 1 and self.train_frac + self.val_frac < 1):
            raise ValueError(
                f"decisions.train_frac={self.train_frac}, decisions.val_frac={self.val_frac}: "
                "need 0 < train_frac, 0 <= val_frac and train_frac + val_frac < 1"
            )
        if self.embargo_s < self.window_s:
            raise ValueError(
                f"decisions.embargo_s={self.embargo_s}: must be >= horizon_s + adverse_horizon_s = {self.window_s} "
                "so that no validation/test reward window overlaps the training period"
            )

    @property
    def window_s(self) -> float:
        """Length of a decision's reward window: fill horizon plus the adverse-selection look."""
        return self.horizon_s + self.adverse_horizon_s
