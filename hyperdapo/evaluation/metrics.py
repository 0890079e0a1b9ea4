"""Execution metrics of one strategy over the decisions of a backtest.

Input: :class:`StrategyOutcomes`, per decision (D,) arrays as the fill simulator defines them (bps of the
arrival mid; implementation shortfall is a cost, positive = worse, cleanup and fees included).

- ``Fill rate [%]``: share of decisions whose limit order(s) filled without the cleanup market order
  (for sliced parents, the share of the parent quantity filled by the child limit orders).
- ``IS [bps]``: mean implementation shortfall.
- ``Slippage [bps]``: the seeds' definition ``|exec - target| / target * 1e4`` with exec the average
  execution price (cleanup included) and target the price the executed quantity aimed at: the limit price for the
  quantity its limit order(s) filled, the arrival mid for the rest (a market order, a cleanup): an unfilled limit
  price never traded, so it is no target of an execution (:func:`slippage_bps`).
- ``Price improvement [%]``: share of limit fills with price improvement > 0 (better than the arrival mid).
- ``Time to fill [s]``: mean over filled decisions. ``Adverse selection [bps]``: mean over fills, 60 s after.
- ``Depth-short``: decisions with an order (a limit taking liquidity, a cleanup, a child) larger than the visible
  book, whose rest the simulator priced by the square-root impact model.
- PnL per decision ``pnl_usd = -IS / 1e4 * arrival_mid * qty``: the cost avoided relative to trading at the
  arrival mid (negative = a cost). ``Sharpe per decision``: mean / std of the per-decision PnL, not annualised (a
  decision is one order, not a day's return); ``Sharpe annualised`` (results only) scales it by
  ``sqrt(365 * decisions_per_day)``, crypto trading all year. Both are NaN below ``MIN_SHARPE_DECISIONS`` decisions.
  ``Max drawdown [USD]``: largest fall of the cumulative PnL from its peak.
- ``Win rate [%]`` (:func:`win_rate`, set by the evaluation for a policy): share of decisions where its IS is
  strictly lower (cheaper) than a reference strategy's on the same decision; a tie is not a win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_SHARPE_DECISIONS = 30  # fewer decisions: no Sharpe (a ratio of two noisy moments, e.g. thousands from 18)

@dataclass
class StrategyOutcomes:
    name: str
    side: np.ndarray  # (D,) +1 buy / -1 sell
    arrival_mid: np.ndarray  # (D,) USD
    qty: np.ndarray  # (D,) coins
    fill_share: np.ndarray  # (D,) in [0, 1]: quantity filled by limit orders (1 or 0 for a single order)
    time_to_fill_s: np.ndarray  # (D,) NaN unless (fully) filled
    exec_price: np.ndarray  # (D,) USD, cleanup included
    target_price: np.ndarray  # (D,) USD, the limit price (arrival mid for a market order)
    is_bps: np.ndarray  # (D,)
    price_improvement_bps: np.ndarray  # (D,) NaN unless filled
    adverse_selection_bps: np.ndarray  # (D,) NaN unless filled or unknown
    depth_short: np.ndarray  # (D,) bool: an order went beyond the visible book (impact-priced rest)
    invalid: np.ndarray | None = None  # (D,) bool: the policy's answer was invalid (fallback used)
    offset_bps: np.ndarray | None = None  # (D,) the one order's side-relative offset from the arrival mid (bps)

    @property
    def pnl_usd(self) -> np.ndarray:
        return -self.is_bps / 1e4 * self.arrival_mid * self.qty


def max_drawdown(pnl: np.ndarray) -> float:
    """Largest peak-to-trough fall of the cumulative sum (>= 0), starting from 0."""
    cum = np.concatenate([[0.0], np.cumsum(pnl)])
    return float(np.max(np.maximum.accumulate(cum) - cum))


def win_rate(is_bps: np.ndarray, reference_is_bps: np.ndarray) -> float:
    """Share (%) of decisions whose IS (bps) is strictly below the reference's on the same decision."""
    return 100 * float(np.mean(np.asarray(is_bps) < np.asarray(reference_is_bps)))


def sharpe_per_decision(pnl_usd: np.ndarray, min_decisions: int = MIN_SHARPE_DECISIONS) -> float:
    """``mean / std`` (ddof 1) of the per-decision PnL (unitless, not annualised); NaN with fewer than
    ``min_decisions`` decisions or no spread."""
    if len(pnl_usd) < min_decisions:
        return math.nan
    sd = float(np.std(pnl_usd, ddof=1))
    return float(np.mean(pnl_usd)) / sd if sd > 0 else math.nan


def slippage_bps(o: StrategyOutcomes) -> np.ndarray:
    """Per decision ``|exec - target| / target * 1e4`` (bps, >= 0): exec the average execution price, target the
    quantity-weighted price the executed parts aimed at (the limit for the share filled by limit orders, the
    arrival mid for the rest: market order or cleanup)."""
    target = o.fill_share * o.target_price + (1 - o.fill_share) * o.arrival_mid
    return np.abs(o.exec_price - target) / target * 1e4


def strategy_metrics(o: StrategyOutcomes, decisions_per_day: float) -> dict[str, float]:
    """The metrics of the module docstring; ``decisions_per_day`` (the decision grid's rate) annualises the Sharpe."""
    per_decision = sharpe_per_decision(o.pnl_usd)
    filled = o.fill_share > 0
    pi = o.price_improvement_bps[filled & np.isfinite(o.price_improvement_bps)]
    return {
        "Fill rate [%]": 100 * float(np.mean(o.fill_share)),
        "IS [bps]": float(np.mean(o.is_bps)),
        "Slippage [bps]": float(np.mean(slippage_bps(o))),
        "Price improvement [%]": 100 * float(np.mean(pi > 0)) if len(pi) else math.nan,
        "Time to fill [s]": float(np.nanmean(o.time_to_fill_s)) if np.isfinite(o.time_to_fill_s).any() else math.nan,
        "Adverse selection [bps]": float(np.nanmean(o.adverse_selection_bps))
        if np.isfinite(o.adverse_selection_bps).any() else math.nan,
        "Sharpe per decision": per_decision,
        "Sharpe annualised": per_decision * math.sqrt(365 * decisions_per_day),
        "Max drawdown [USD]": max_drawdown(o.pnl_usd),
        "PnL [USD]": float(np.sum(o.pnl_usd)),
        "Decisions": float(len(o.is_bps)),
        "Filled": float(np.sum(o.fill_share >= 1)),
        "Cleanups": float(np.sum(o.fill_share < 1)),
        "Invalid": float(np.sum(o.invalid)) if o.invalid is not None else 0.0,
        "Depth-short": float(np.sum(o.depth_short)),
    }
