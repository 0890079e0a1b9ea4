"""Sequential execution (issue 22): a parent order worked every ``dt`` seconds until its horizon.

An episode is one decision of an :class:`~hyperdapo.execution.task.ExecutionTask`, the parent order: time t0 (us),
side s (+1 buy, -1 sell), quantity Q (coins), objective, horizon T (``decisions.horizon_s``). The agent decides at the
N = T / dt steps t_k = t0 + k dt (``SequentialConfig.dt_s``), one :class:`Act` per step:

- ``KEEP``: leave the working order (if any) as it is, its placement and queue position included;
- ``REPLACE`` at x bps: cancel the working order and place a limit of ``qty`` coins (default: all that remains) at
  the side-relative offset x from the mid at t_k (negative = passive), on the tick grid: the one-shot offset rule;
- ``CROSS``: cancel the working order and send a market order for ``qty`` coins (default: all that remains).
A quantity is rounded to whole lots (at least one) and cut to what remains.

One simulator. Every order is simulated once, when it is placed at t_k, by the one-shot task's simulator
(:meth:`Tape.simulate`: the same fill rule, queue model, latency, fees and impact model) over the parent's remaining
horizon T - t_k: it fills whole (fills.py, rule 4) at its first fill event, or is cleaned up at T by a market order
against the snapshot at T (rule 5) if it still works then. KEEP changes nothing, so an order never cancelled has the
one-shot outcome: REPLACE at x at step 0 and KEEP after it (any dt; dt = T is the one-shot task itself) equals
``ExecutionTask.score_offsets`` at x bitwise (tests/test_sequential.py).

Cancels (REPLACE, CROSS) reach the venue after the latency (the task's latency model at t_k), pessimistically: a
fill of the old order before then stands, and the new order is cut to what is left (none if nothing is). A limit
through the book beyond the visible depth within it (fills.py, rule 3: a taker part, then a resting remainder) works
as one order to its end: the simulator reports its parts together, so the agent's REPLACE / CROSS are taken as KEEP
meanwhile (and ``remaining_qty`` counts its taker part until it ends). Quantity left unworked after the last step (a
REPLACE or CROSS of less than what remains) is cleaned up at T as a working order would be (rule 5): the simulator
gets it as a limit that cannot fill, placed at the last step.

What the agent sees (:class:`StepState`) at step k: the book as of t_k and the fills at or before t_k; the simulated
future of a working order stays hidden until it happens (a test perturbs the market after t_k).

The parent's outcome (:class:`~hyperdapo.execution.fills.Outcomes`, (B, 1), in the one-shot's words; children
weighted by their share of Q): ``exec_price`` and ``fee_bps`` over every child, cleanups included, so
``is_bps = s (exec_price - mid0) / mid0 * 1e4 + fee_bps`` is the IS in bps of the parent's arrival mid (cost
positive); ``filled``: the whole parent executed without a cleanup (``fill_price`` = ``exec_price``, else NaN);
``fill_ts_us``: its last execution (T with a cleanup); ``adverse_selection_bps``: over the children, each in bps of
its own arrival mid (NaN unless filled); ``marketable``, ``cleanup``, ``depth_short``: of any child. The reward is
the task's (``reward=``, :func:`~hyperdapo.execution.rewards.compute_reward`; ``-IS`` by default) of that outcome, so
it means what a one-shot reward means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from hyperdapo.data.venues import round_to_step, step_decimals
from hyperdapo.execution.config import SequentialConfig
from hyperdapo.execution.fills import Outcomes, price_improvement_bps, shortfall_bps
from hyperdapo.execution.rewards import compute_reward
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.prompts.answer import offset_to_price

US_PER_S = 1_000_000
# a limit that cannot fill (no price prints below the smallest positive float or above the largest): quantity left
# unworked after the last step is handed to the simulator as one, so that its cleanup at T is rule 5's
NO_FILL_BUY_USD, NO_FILL_SELL_USD = np.finfo(np.float64).tiny, np.finfo(np.float64).max
WORK_FIELDS = {"filled": bool, "fill_ts_us": np.int64, "exec_price": np.float64, "fee_bps": np.float64,
               "adverse_selection_bps": np.float64, "marketable": bool, "cleanup": bool,
               "depth_short": bool}  # what an episode keeps of its working order's simulated outcome


class Act(IntEnum):
    KEEP = 0
    REPLACE = 1
    CROSS = 2


@dataclass(frozen=True)
class Actions:
    """One action per episode, (B,) arrays."""

    kind: np.ndarray  # int, Act values
    offset_bps: np.ndarray  # REPLACE: side-relative offset of the limit from the mid at t_k (negative = passive)
    qty: np.ndarray  # REPLACE, CROSS: coins of the new order; NaN = all that remains

    @classmethod
    def of(cls, kind, offset_bps=np.nan, qty=np.nan) -> Actions:
        """Actions from scalars or arrays, broadcast to one shape (B,)."""
        kind, offset_bps, qty = np.broadcast_arrays(np.atleast_1d(kind), np.asarray(offset_bps, np.float64),
                                                    np.asarray(qty, np.float64))
        return cls(kind.astype(np.int64), offset_bps.copy(), qty.copy())

    def check(self, b: int) -> None:
        if not (self.kind.shape == self.offset_bps.shape == self.qty.shape == (b,)):
            raise ValueError(f"actions must be (B,) = ({b},) arrays, got {self.kind.shape}, {self.offset_bps.shape}, "
                             f"{self.qty.shape}")
        if not np.isin(self.kind, [a.value for a in Act]).all():
            raise ValueError(f"action kinds must be Act values {[f'{a.name}={a.value}' for a in Act]}: {self.kind}")
        if not np.isfinite(self.offset_bps[self.kind == Act.REPLACE]).all():
            raise ValueError("a REPLACE needs a finite offset_bps (side-relative bps from the mid)")
        if not (np.isnan(self.qty) | (np.isfinite(self.qty) & (self.qty > 0))).all():
            raise ValueError("an action's qty must be > 0 coins, or NaN for all that remains")


@dataclass(frozen=True)
class StepState:
    """What the agent knows at step k of B episodes ((B,) arrays): the book as of t_k, fills at or before t_k."""

    step: int  # k, 0 .. n_steps - 1 (n_steps once the episodes are over)
    n_steps: int
    dt_s: float
    horizon_s: float  # T
    side: np.ndarray  # +1 buy, -1 sell
    parent_qty: np.ndarray  # Q, coins
    remaining_qty: np.ndarray  # coins not executed yet, the working order's included
    working_qty: np.ndarray  # coins of the working order, 0 if none
    working_px: np.ndarray  # its limit (USD), NaN if none
    working_offset_bps: np.ndarray  # its side-relative offset from the mid at t_k (negative = passive), NaN if none
    # coins estimated ahead of it: the visible size at its price on its side of the book at t_k (0 inside the spread
    # or in a gap between levels, NaN beyond the deepest visible level or without an order): everyone there may be
    # ahead (the capped queue model's view, fills.py rule 4)
    queue_ahead_qty: np.ndarray
    is_bps: np.ndarray  # IS of what is executed so far, in bps of the parent (cost positive, fees included)
    mid_usd: np.ndarray  # mid at t_k
    mid_move_bps: np.ndarray  # s (mid_k - mid0) / mid0 * 1e4: positive = the market moved against the parent
    spread_bps: np.ndarray
    touch_px: np.ndarray  # the parent's own best at t_k (best bid of a buy, best ask of a sell), USD
    touch_offset_bps: np.ndarray  # its side-relative offset from the mid (-spread / 2 on a tick-wide book)
    done: np.ndarray  # bool: the parent is executed; its actions are ignored

    @property
    def time_left_s(self) -> float:
        return self.horizon_s - self.step * self.dt_s

    @property
    def executed_qty(self) -> np.ndarray:
        """(B,) coins executed so far (fills known at t_k)."""
        return self.parent_qty - self.remaining_qty


SequentialPolicy = Callable[[StepState], Actions]  # a rule or a trained policy (sequential_baselines.py)


def _seconds(us: int) -> float:
    """``us`` in seconds such that the simulator's ``int(s * 1e6)`` gives ``us`` back."""
    s = us / US_PER_S
    return s if int(s * US_PER_S) == us else float(np.nextafter(s, np.inf))


class SequentialEpisodes:
    """B episodes of ``task``'s decisions ``idx`` stepped together, one simulator call per step for the orders placed
    at it: :meth:`state` and :meth:`step` until :attr:`finished`, then :meth:`outcomes` and :meth:`rewards`."""

    def __init__(self, task: ExecutionTask, idx: np.ndarray, cfg: SequentialConfig):
        d = task.decisions
        self.task, self.idx, self.cfg = task, np.asarray(idx, dtype=np.int64), cfg
        self.n_steps = cfg.n_steps(d.horizon_s)
        self.horizon_us = int(d.horizon_s * US_PER_S)
        self.k, self.finished = 0, False
        self.t0_us = d.ts_us[self.idx]
        self.side = d.side[self.idx].astype(np.float64)
        self.parent_qty = d.qty[self.idx].astype(np.float64)
        self.mid0 = task.tape.mid_at(self.t0_us)  # the arrival mid
        b = len(self.idx)
        self.remaining = self.parent_qty.copy()
        self.work_qty, self.work_px = np.zeros(b), np.full(b, np.nan)  # the working order (qty 0: none)
        self.work = {f: np.zeros(b, dtype) for f, dtype in WORK_FIELDS.items()}  # its simulated outcome: a fill
        # (time, price) or the cleanup at T
        # executed children, weighted by their share of the parent
        self.share, self.exec_sum, self.fee_sum, self.adverse_sum = (np.zeros(b) for _ in range(4))
        self.last_ts_us = self.t0_us.copy()
        self.marketable, self.cleanup, self.depth_short = (np.zeros(b, bool) for _ in range(3))
        self.n_orders = np.zeros(b, np.int64)  # orders the agent placed (REPLACE, CROSS)
        # cancels the agent sent: a REPLACE or CROSS over a working order (one that lost to a fill within the latency
        # included)
        self.n_cancels = np.zeros(b, np.int64)

    # ------------------------------------------------------------------------------------------ stepping
    def t_us(self) -> np.ndarray:
        """(B,) the current step's time t_k (us)."""
        return self.t0_us + self.k * self.cfg.dt_us

    def state(self) -> StepState:
        t = self.t_us()
        book = self.task.tape.book_at(t)
        mid, s = book.mid, self.side
        buy = (s > 0)[:, None]
        own_px, own_sz = np.where(buy, book.bid_px, book.ask_px), np.where(buy, book.bid_sz, book.ask_sz)  # (B, L)
        working = self.work_qty > 0
        px = np.where(working, self.work_px, np.nan)
        deepest = np.where(np.isnan(own_px), np.inf, s[:, None] * own_px).min(axis=1)  # s * price of the last level
        at_px = np.where(own_px == px[:, None], own_sz, 0.0).sum(axis=1)
        queue = np.where(working & (s * px >= deepest), at_px, np.nan)
        return StepState(
            step=self.k, n_steps=self.n_steps, dt_s=self.cfg.dt_s, horizon_s=self.task.decisions.horizon_s, side=s,
            parent_qty=self.parent_qty, remaining_qty=self.remaining.copy(), working_qty=self.work_qty.copy(),
            working_px=px, working_offset_bps=-price_improvement_bps(s, px, mid), queue_ahead_qty=queue,
            is_bps=self._is_so_far_bps(), mid_usd=mid, mid_move_bps=-price_improvement_bps(s, mid, self.mid0),
            spread_bps=(book.ask_px[:, 0] - book.bid_px[:, 0]) / mid * 1e4, touch_px=own_px[:, 0],
            touch_offset_bps=-price_improvement_bps(s, own_px[:, 0], mid), done=self.remaining <= 0,
        )

    def step(self, actions: Actions) -> None:
        """Apply one action per episode at t_k and move to t_{k+1} (the end, T, after the last step)."""
        if self.finished:
            raise RuntimeError("the episodes are over: read outcomes() / rewards(), or start new ones")
        actions.check(len(self.idx))
        task, t = self.task, self.t_us()
        # a working split order (a marketable limit beyond the visible depth, fills.py rule 3) is not cancelled: its
        # taker part is done and the simulator reports both parts as one order
        split = (self.work_qty > 0) & self.work["marketable"]
        kind = np.where((self.remaining > 0) & ~split, actions.kind, Act.KEEP)
        new = kind != Act.KEEP
        cancel = new & (self.work_qty > 0)
        if cancel.any():  # the cancel reaches the venue after the latency: a fill before then stands
            latency_us = task.fill_cfg.latency_model(t, task.venue)
            if (latency_us >= self.cfg.dt_us).any():
                raise ValueError(f"a latency of {latency_us.max() / 1e3:g} ms is not below sequential.dt_s="
                                 f"{self.cfg.dt_s}: a step must outlast its orders' latency")
            stands = cancel & self.work["filled"] & (self.work["fill_ts_us"] <= t + latency_us)
            self.n_cancels[cancel] += 1
            self._book(stands)
            self.work_qty[cancel & ~stands], self.work_px[cancel & ~stands] = 0.0, np.nan
        place = new & (self.remaining > 0)
        if place.any():
            qty = np.where(np.isnan(actions.qty), self.remaining,
                           np.minimum(task.instrument.round_to_lot(np.nan_to_num(actions.qty, nan=1.0)),
                                      self.remaining))
            cross = kind == Act.CROSS
            limit = task.instrument.round_to_tick(
                offset_to_price(task.tape.mid_at(t), self.side, np.where(cross, 0.0, actions.offset_bps)))
            self._place(place, t, np.where(cross, self.side * np.inf, limit), qty, self.k)
            self.n_orders[place] += 1
        self.k += 1
        if self.k < self.n_steps:  # fills up to t_{k+1} become known
            self._book((self.work_qty > 0) & self.work["filled"] & (self.work["fill_ts_us"] <= self.t_us()))
        if self.k == self.n_steps or not (self.remaining > 0).any():
            self._finish()

    def _place(self, mask: np.ndarray, t_us: np.ndarray, px: np.ndarray, qty: np.ndarray, k: int) -> None:
        """Simulate the orders of episodes ``mask`` placed at ``t_us`` (limits ``px`` USD, ``qty`` coins) over the
        horizon left from step k: they become the working orders."""
        d, e = self.task.decisions, np.flatnonzero(mask)
        horizon_s = d.horizon_s if k == 0 else _seconds(self.horizon_us - k * self.cfg.dt_us)  # step 0: as one-shot
        out = self.task.tape.simulate(t_us[e], d.side[self.idx[e]], px[e], qty[e], self.task.fill_cfg, self.task.venue,
                                      horizon_s=horizon_s, adverse_horizon_s=d.adverse_horizon_s)
        for f in WORK_FIELDS:
            self.work[f][e] = getattr(out, f)[:, 0]
        self.work_qty[e], self.work_px[e] = qty[e], px[e]

    def _book(self, mask: np.ndarray) -> None:
        """The working orders of episodes ``mask`` executed (filled, or cleaned up at T): into the parent's sums."""
        e = np.flatnonzero(mask)
        w = self.work_qty[e] / self.parent_qty[e]
        self.share[e] += w
        self.exec_sum[e] += w * self.work["exec_price"][e]
        self.fee_sum[e] += w * self.work["fee_bps"][e]
        self.adverse_sum[e] += w * self.work["adverse_selection_bps"][e]
        self.last_ts_us[e] = np.maximum(self.last_ts_us[e], self.work["fill_ts_us"][e])
        for f in ("marketable", "cleanup", "depth_short"):
            getattr(self, f)[e] |= self.work[f][e]
        lot = self.task.instrument.lot_size
        self.remaining[e] = round_to_step(self.remaining[e] - self.work_qty[e], lot, step_decimals(lot))
        self.work_qty[e], self.work_px[e] = 0.0, np.nan

    def _finish(self) -> None:
        """At T: the working orders as simulated (filled, or cleaned up at T), then what is left unworked, cleaned
        up at T by the simulator (a limit that cannot fill, placed at the last step)."""
        self._book(self.work_qty > 0)
        unworked = self.remaining > 0
        if unworked.any():
            last = self.n_steps - 1
            px = np.where(self.side > 0, NO_FILL_BUY_USD, NO_FILL_SELL_USD)
            self._place(unworked, self.t0_us + last * self.cfg.dt_us, px, self.remaining.copy(), last)
            self._book(unworked)
        self.finished = True

    # ------------------------------------------------------------------------------------------ results
    def _is_so_far_bps(self) -> np.ndarray:
        share = self.share
        safe = np.where(share > 0, share, 1.0)
        return np.where(share > 0, share * shortfall_bps(self.side, self.exec_sum / safe, self.mid0,
                                                         self.fee_sum / safe), 0.0)

    def outcomes(self) -> Outcomes:
        """The parents' outcomes (B, 1), in the one-shot's fields (module docstring)."""
        if not self.finished:
            raise RuntimeError(f"the episodes are at step {self.k} of {self.n_steps}: step them to the end first")
        s, share = self.side, self.share  # share: 1 up to the float sum of the children's shares
        exec_price, fee = self.exec_sum / share, self.fee_sum / share
        filled = ~self.cleanup
        fill_price = np.where(filled, exec_price, np.nan)
        col = lambda a: a.reshape(-1, 1)  # noqa: E731
        return Outcomes(
            arrival_mid=self.mid0, filled=col(filled), marketable=col(self.marketable), cleanup=col(self.cleanup),
            fill_ts_us=col(self.last_ts_us),
            time_to_fill_s=col(np.where(filled, (self.last_ts_us - self.t0_us) / 1e6, np.nan)),
            fill_price=col(fill_price), exec_price=col(exec_price), fee_bps=col(fee),
            is_bps=col(shortfall_bps(s, exec_price, self.mid0, fee)),
            price_improvement_bps=col(price_improvement_bps(s, fill_price, self.mid0)),
            adverse_selection_bps=col(np.where(filled, self.adverse_sum / share, np.nan)),
            depth_short=col(self.depth_short), book_only=self.task.tape.book_only,
        )

    def rewards(self) -> np.ndarray:
        """(B,) the task's reward (bps of the parent, higher is better; ``-IS`` by default) of each episode."""
        d = self.task.decisions
        return compute_reward(self.outcomes(), self.task.reward_cfg, d.horizon_s, d.objective[self.idx])[:, 0]


def run_episodes(task: ExecutionTask, idx: np.ndarray, policy: SequentialPolicy, cfg: SequentialConfig
                 ) -> tuple[SequentialEpisodes, list[tuple[StepState, Actions]]]:
    """Episodes of decisions ``idx`` run to the end under ``policy`` (e.g. :mod:`.sequential_baselines`); returns
    them (:meth:`~SequentialEpisodes.outcomes`, :meth:`~SequentialEpisodes.rewards`) and each step's state and
    actions."""
    episodes, trajectory = SequentialEpisodes(task, idx, cfg), []
    while not episodes.finished:
        state = episodes.state()
        actions = policy(state)
        trajectory.append((state, actions))
        episodes.step(actions)
    return episodes, trajectory
