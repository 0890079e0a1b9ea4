"""Decisions and chronological splits.

A *decision* is (asset, t, side, quantity, objective, horizon_s): one prompt, one order per strategy, one
outcome. Decision times come from a regular grid (plus optional seeded jitter); side, quantity and objective
are drawn by a seeded rule from :class:`DecisionConfig`. Training and evaluation build decisions with the same
function, so a reward in training and a number in a table describe the same thing.

Splits are chronological: the span is cut at the train / validation / test fractions, and a decision belongs
to a split only when its whole *reward window* ``[t, t + window_s]`` lies inside that split's period, where
``window_s = horizon_s + adverse_horizon_s`` (the fill horizon plus the 60 s adverse-selection look after a
fill). An embargo of ``embargo_s >= window_s`` separates the periods, so no validation or test reward window
overlaps the training period, and features (which look back, never forward) cannot carry labels across.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from hyperdapo.data.schema import Side

US_PER_S = 1_000_000


class Objective(StrEnum):
    """What the user asks the execution to optimise; rendered into the prompt with its trade-off."""

    AGGRESSIVE = "aggressive"
    PATIENT = "patient"
    RISK_AVERSE = "risk_averse"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


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
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("every_s", "horizon_s", "notional_min_usd"):
            if not getattr(self, key) > 0:
                raise ValueError(f"decisions.{key}={getattr(self, key)}: must be > 0")
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


@dataclass(frozen=True)
class DecisionSet:
    """D decisions of one asset, sorted by time."""

    asset: str
    ts_us: np.ndarray  # (D,) int64 decision times
    side: np.ndarray  # (D,) int8, Side values
    qty: np.ndarray  # (D,) float64 coins, on the asset's size grid
    objective: np.ndarray  # (D,) str, Objective values
    split: np.ndarray  # (D,) str, Split values
    horizon_s: float

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, index: np.ndarray) -> DecisionSet:
        return DecisionSet(
            self.asset, self.ts_us[index], self.side[index], self.qty[index], self.objective[index],
            self.split[index], self.horizon_s,
        )

    def of_split(self, split: Split | str) -> DecisionSet:
        return self.take(np.flatnonzero(self.split == Split(split).value))


def split_bounds_us(start_us: int, end_us: int, cfg: DecisionConfig) -> dict[Split, tuple[int, int]]:
    """[begin, end) of each split's period in us; periods are separated by ``embargo_s``."""
    span = end_us - start_us
    t1 = start_us + int(span * cfg.train_frac)
    t2 = start_us + int(span * (cfg.train_frac + cfg.val_frac))
    gap = int(cfg.embargo_s * US_PER_S)
    return {Split.TRAIN: (start_us, t1), Split.VAL: (t1 + gap, t2), Split.TEST: (t2 + gap, end_us)}


def assign_splits(ts_us: np.ndarray, start_us: int, end_us: int, cfg: DecisionConfig) -> np.ndarray:
    """Split value of each decision time, or "" when its reward window crosses a period's end (dropped)."""
    window_us = int(cfg.window_s * US_PER_S)
    out = np.full(len(ts_us), "", dtype="<U5")
    for split, (lo, hi) in split_bounds_us(start_us, end_us, cfg).items():
        inside = (ts_us >= lo) & (ts_us + window_us <= hi)
        out[inside] = split.value
    return out


def build_decisions(
    asset: str, book_ts_us: np.ndarray, mid_usd: np.ndarray, sz_decimals: int, cfg: DecisionConfig
) -> DecisionSet:
    """Decisions over the span of a book (its snapshot times and mids), deterministic by ``cfg.seed``.

    Quantity is drawn as a USD notional in [notional_min_usd, notional_max_usd] and converted at the mid of
    the last snapshot at or before t (no look-ahead), rounded to ``sz_decimals``.
    """
    rng = np.random.default_rng(cfg.seed)
    start_us, end_us = int(book_ts_us[0]), int(book_ts_us[-1])
    first_us = start_us + int(cfg.warmup_s * US_PER_S)
    grid_us = np.arange(first_us, end_us, int(cfg.every_s * US_PER_S), dtype=np.int64)
    grid_us = grid_us + (rng.uniform(0, cfg.jitter_s, len(grid_us)) * US_PER_S).astype(np.int64)
    split = assign_splits(grid_us, first_us, end_us, cfg)
    keep = split != ""
    ts_us, split = grid_us[keep], split[keep]
    n = len(ts_us)
    side = np.where(rng.random(n) < cfg.buy_share, Side.BUY, Side.SELL).astype(np.int8)
    names = list(cfg.objective_weights)
    probs = np.array([cfg.objective_weights[k] for k in names], dtype=np.float64)
    objective = np.array([Objective(k).value for k in names])[rng.choice(len(names), n, p=probs / probs.sum())]
    notional_usd = rng.uniform(cfg.notional_min_usd, cfg.notional_max_usd, n)
    asof = np.searchsorted(book_ts_us, ts_us, side="right") - 1
    qty = np.maximum(np.round(notional_usd / mid_usd[asof], sz_decimals), 10.0**-sz_decimals)
    return DecisionSet(asset, ts_us, side, qty, objective, split, cfg.horizon_s)
