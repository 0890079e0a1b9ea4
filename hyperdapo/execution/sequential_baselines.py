"""Sequential baselines (issue 22, item 4): rules that work a parent order step by step, each a callable
``StepState -> Actions`` (:func:`hyperdapo.execution.sequential.run_episodes` runs them).

Offsets are side-relative bps from the mid at the step (negative = passive), quantities coins, times seconds. "The
touch" is the parent's own best at the step (the best bid of a buy), so an order there joins the queue.

- :class:`HeldOffset`: the one-shot policy held to T: REPLACE at x at step 0, KEEP after (= ``score_offsets`` at x).
- :class:`TouchThenCross`: rest at the touch, cross what is left ``cross_before_end_s`` before T.
- :class:`PegToBest`: re-price to the touch at every step where the order is not there (a market that moved away).
- :class:`TWAP`: a child at the touch every step, of the quantity behind the linear schedule by the end of the step
  (an unfilled child rolls into the next); the last child is all that remains, cleaned up at T.
- :class:`AlmgrenChriss`: market orders along the Almgren-Chriss (2000) trajectory, remaining
  ``x(t) = Q sinh(kappa (T - t)) / sinh(kappa T)``; risk-neutral (``kappa_per_s = 0``) is linear: equal market
  slices at every step, the crossing counterpart of TWAP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hyperdapo.execution.sequential import Act, Actions, StepState


def _at_touch(s: StepState, kind: np.ndarray, qty=np.nan) -> Actions:
    """``kind`` at the touch; KEEP where the parent's side of the book is empty (no touch to join)."""
    touch = np.isfinite(s.touch_offset_bps)
    return Actions.of(np.where(touch, kind, Act.KEEP), np.where(touch, s.touch_offset_bps, np.nan), qty)


@dataclass(frozen=True)
class HeldOffset:
    """REPLACE at ``offset_bps`` at step 0 and KEEP after: the one-shot order held to the horizon."""

    offset_bps: float

    def __call__(self, s: StepState) -> Actions:
        return Actions.of(np.full(len(s.side), Act.REPLACE if s.step == 0 else Act.KEEP), self.offset_bps)


@dataclass(frozen=True)
class TouchThenCross:
    """Rest all at the touch (placed once, kept: its queue position stands); CROSS what is left once no more than
    ``cross_before_end_s`` seconds remain."""

    cross_before_end_s: float = 30.0

    def __call__(self, s: StepState) -> Actions:
        if s.time_left_s <= self.cross_before_end_s:
            return Actions.of(np.full(len(s.side), Act.CROSS))
        return _at_touch(s, np.where(s.working_qty > 0, Act.KEEP, Act.REPLACE))


@dataclass(frozen=True)
class PegToBest:
    """All at the touch, re-priced (cancel and replace) at every step where the order is not at the touch."""

    def __call__(self, s: StepState) -> Actions:
        return _at_touch(s, np.where(s.working_px == s.touch_px, Act.KEEP, Act.REPLACE))


def _behind(s: StepState, remaining_share_after_step: float) -> np.ndarray:
    """Coins executed too few by the end of this step for a schedule that then holds ``remaining_share_after_step``
    of the parent."""
    return s.remaining_qty - remaining_share_after_step * s.parent_qty


@dataclass(frozen=True)
class TWAP:
    """Every step, a limit at the touch of the quantity behind the linear schedule ``Q (k + 1) / N`` by the step's
    end (REPLACE: the unfilled child is cancelled, its quantity rolls in); ahead of schedule, KEEP. The last child is
    all that remains, cleaned up at T if unfilled."""

    def __call__(self, s: StepState) -> Actions:
        if s.step == s.n_steps - 1:
            return _at_touch(s, np.full(len(s.side), Act.REPLACE))
        child = _behind(s, 1.0 - (s.step + 1) / s.n_steps)
        return _at_touch(s, np.where(child > 0, Act.REPLACE, Act.KEEP), np.where(child > 0, child, np.nan))


@dataclass(frozen=True)
class AlmgrenChriss:
    """Market orders that keep the remaining quantity on ``x(t) = Q sinh(kappa (T - t)) / sinh(kappa T)`` at the
    steps' ends; ``kappa_per_s`` (1/s, >= 0) the urgency (risk aversion), 0 = linear (risk-neutral)."""

    kappa_per_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kappa_per_s) and self.kappa_per_s >= 0):
            raise ValueError(f"kappa_per_s={self.kappa_per_s}: must be finite and >= 0 (0 = linear)")

    def remaining_share(self, t_s: float, horizon_s: float) -> float:
        """x(t) / Q at ``t_s`` seconds into a horizon of ``horizon_s``."""
        kappa = self.kappa_per_s
        return 1.0 - t_s / horizon_s if kappa == 0 else math.sinh(kappa * (horizon_s - t_s)) / math.sinh(
            kappa * horizon_s)

    def __call__(self, s: StepState) -> Actions:
        if s.step == s.n_steps - 1:
            return Actions.of(np.full(len(s.side), Act.CROSS))
        child = _behind(s, self.remaining_share((s.step + 1) * s.dt_s, s.horizon_s))
        return Actions.of(np.where(child > 0, Act.CROSS, Act.KEEP), qty=np.where(child > 0, child, np.nan))
