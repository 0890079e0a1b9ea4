"""Strategies of the backtest, each turned into per-decision outcomes by the same fill simulator.

- ``market``: a market order at arrival (no limit: it walks the visible book; a rest beyond it is priced by the
  square-root impact model of :mod:`hyperdapo.execution.fills`).
- fixed offsets (``aggressive``, ``moderate``, ``conservative``, ``passive`` by default; side-relative bps,
  negative = passive), each a single limit order with cleanup at the horizon.
- ``twap`` / ``vwap``: the parent quantity cut into ``n_slices`` children over the horizon; child i is a limit
  order at ``child_offset_bps`` from the mid at its own start, cleaned up at the end of its slice. TWAP uses
  equal slices; VWAP weights slices by the minute-of-hour volume profile of the training split only.
- ``analytic``: fits a fill intensity ``lambda(delta) = A exp(-k delta)`` (delta = passive distance in bps) to
  the training split's fill probabilities within the horizon, ``P(delta) = 1 - exp(-lambda T)``, and places
  every order at the offset maximising ``P (delta - maker fee) + (1 - P) (-mean cleanup cost)`` (an
  Avellaneda-Stoikov-style, state-independent baseline).
- ``oracle``: the ex-post best offset of a grid per decision: an upper bound, never a strategy.

The classic baselines (:func:`classic_baselines`: market, the fixed offsets, TWAP, VWAP) make the seeds'
"traditional average"; the best baseline a policy is tested against is chosen on the validation split
(:func:`best_on_validation`), among every baseline but the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperdapo.evaluation.config import BaselineConfig
from hyperdapo.evaluation.metrics import StrategyOutcomes
from hyperdapo.execution.fills import Outcomes, price_improvement_bps, shortfall_bps
from hyperdapo.execution.preferences import offset_rewards
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split
from hyperdapo.prompts.answer import offset_to_price

US_PER_S = 1_000_000
ORACLE = "oracle"


def classic_baselines(cfg: BaselineConfig) -> list[str]:
    """The traditional execution rules: a market order, the fixed offsets, TWAP and VWAP (not the fitted analytic
    rule, not the oracle)."""
    return ["market", *cfg.fixed_offsets_bps, "twap", "vwap"]


def baseline_names(cfg: BaselineConfig) -> list[str]:
    """Every row :func:`baseline_outcomes` produces on a task with a training split."""
    return [*classic_baselines(cfg), "analytic", ORACLE]


def outcomes_of(name: str, task: ExecutionTask, idx: np.ndarray, out: Outcomes, target: np.ndarray,
                column: np.ndarray | None = None, invalid: np.ndarray | None = None,
                offset_bps: np.ndarray | None = None) -> StrategyOutcomes:
    """Per-decision outcomes from (D, K) simulator outcomes, taking column ``column[d]`` (default 0)."""
    rows = np.arange(len(idx))
    col = np.zeros(len(idx), dtype=int) if column is None else column
    pick = lambda a: a[rows, col]  # noqa: E731
    return StrategyOutcomes(
        name=name, side=task.decisions.side[idx].astype(float), arrival_mid=out.arrival_mid,
        qty=task.decisions.qty[idx], fill_share=pick(out.filled).astype(float),
        time_to_fill_s=pick(out.time_to_fill_s), exec_price=pick(out.exec_price), target_price=target,
        is_bps=pick(out.is_bps), price_improvement_bps=pick(out.price_improvement_bps),
        adverse_selection_bps=pick(out.adverse_selection_bps), depth_short=pick(out.depth_short), invalid=invalid,
        offset_bps=offset_bps,
    )


def single_offset(name: str, task: ExecutionTask, idx: np.ndarray, offsets_bps: np.ndarray) -> StrategyOutcomes:
    offsets = np.broadcast_to(np.asarray(offsets_bps, dtype=float), (len(idx),))
    px = task.price_of_offset(idx, offsets.reshape(len(idx), 1))
    _, out = task.score_prices(idx, px)
    return outcomes_of(name, task, idx, out, px[:, 0], offset_bps=offsets)


def market_order(task: ExecutionTask, idx: np.ndarray) -> StrategyOutcomes:
    """A market order at arrival: the simulator's limit ``side_sign * inf``; its target is the arrival mid."""
    _, out = task.score_prices(idx, task.decisions.side[idx].astype(np.float64)[:, None] * np.inf)
    return outcomes_of("market", task, idx, out, task.mid_usd[idx])


def volume_profile(task: ExecutionTask) -> np.ndarray:
    """Share of traded volume per minute of the hour (60,), from the training split's period only."""
    if task.tape.book_only:
        return np.full(60, 1 / 60)
    train = task.split_index(Split.TRAIN)
    vol = task.tape.minute_volume(int(task.decisions.ts_us[train].max() + int(task.decisions.horizon_s * US_PER_S)))
    return vol / vol.sum() if vol.sum() > 0 else np.full(60, 1 / 60)


def sliced(name: str, task: ExecutionTask, idx: np.ndarray, cfg: BaselineConfig,
           profile: np.ndarray | None) -> StrategyOutcomes:
    """TWAP (``profile`` None) or VWAP: children over the horizon, each limit-then-cleanup within its slice."""
    d = task.decisions
    n = cfg.n_slices
    slice_us = int(d.horizon_s * US_PER_S / n)
    t_child = d.ts_us[idx][:, None] + np.arange(n)[None, :] * slice_us  # (D, n)
    if profile is None:
        w = np.full((len(idx), n), 1 / n)
    else:
        minute = (t_child // (60 * US_PER_S)) % 60
        w = profile[minute] + 1e-12
        w = w / w.sum(axis=1, keepdims=True)
    qty = task.instrument.round_to_lot(d.qty[idx][:, None] * w)
    mid_child = task.tape.mid_at(t_child.ravel())
    side = np.repeat(d.side[idx], n).astype(float)
    px = task.instrument.round_to_tick(offset_to_price(mid_child, side, cfg.child_offset_bps))
    out = task.tape.simulate(t_child.ravel(), side, px, qty.ravel(), task.fill_cfg, task.venue,
                             horizon_s=d.horizon_s / n, adverse_horizon_s=d.adverse_horizon_s)
    shape = (len(idx), n)
    filled = out.filled.reshape(shape)
    q = qty
    exec_px = (out.exec_price.reshape(shape) * q).sum(1) / q.sum(1)
    fee = (out.fee_bps.reshape(shape) * q).sum(1) / q.sum(1)
    mid0 = task.mid_usd[idx]
    s = d.side[idx].astype(float)
    fill_px = np.where(filled, out.fill_price.reshape(shape), 0.0)  # a split child's average fill, not its limit
    fill_qty = (q * filled).sum(1)
    avg_fill = np.where(fill_qty > 0, (fill_px * q).sum(1) / np.where(fill_qty > 0, fill_qty, 1), np.nan)
    last_fill_s = np.where(filled.all(1), (out.fill_ts_us.reshape(shape).max(1) - d.ts_us[idx]) / US_PER_S, np.nan)
    children = np.where(filled, out.adverse_selection_bps.reshape(shape), np.nan)  # of the filled children
    known = np.isfinite(children).sum(axis=1)
    adverse = np.where(known > 0, np.nansum(children, axis=1) / np.maximum(known, 1), np.nan)  # NaN: none known
    return StrategyOutcomes(
        name=name, side=s, arrival_mid=mid0, qty=q.sum(1), fill_share=fill_qty / q.sum(1),
        time_to_fill_s=last_fill_s, exec_price=exec_px, target_price=(px.reshape(shape) * q).sum(1) / q.sum(1),
        is_bps=shortfall_bps(s, exec_px, mid0, fee), price_improvement_bps=price_improvement_bps(s, avg_fill, mid0),
        adverse_selection_bps=adverse, depth_short=out.depth_short.reshape(shape).any(axis=1),
    )


@dataclass
class AnalyticFit:
    A: float  # fills per horizon at delta = 0  # noqa: N815
    k: float  # decay per bps of passive distance
    cleanup_cost_bps: float  # mean IS of cleaned-up orders on the training split
    best_offset_bps: float  # the chosen (state-independent) offset


def fit_analytic(task: ExecutionTask, cfg: BaselineConfig) -> AnalyticFit:
    """Fit lambda(delta) = A exp(-k delta) on the training split and pick the expected-reward-best offset."""
    idx = task.split_index(Split.TRAIN)
    grid = np.array([g for g in cfg.analytic_grid_bps if g <= 0], dtype=float)  # resting offsets only
    px = task.price_of_offset(idx, np.broadcast_to(grid, (len(idx), len(grid))))
    _, out = task.score_prices(idx, px)
    p_fill = np.clip(out.filled.mean(axis=0), 1e-4, 1 - 1e-4)
    lam = -np.log(1 - p_fill)  # intensity x horizon
    delta = -grid
    k, log_a = np.polyfit(delta, np.log(lam), 1)
    cleanup = float(np.mean(out.is_bps[out.cleanup])) if out.cleanup.any() else 0.0
    p_model = 1 - np.exp(-np.exp(log_a) * np.exp(k * delta))
    expected = p_model * (delta - task.venue.maker_fee_bps) + (1 - p_model) * (-cleanup)
    return AnalyticFit(float(np.exp(log_a)), float(-k), cleanup, float(grid[int(np.argmax(expected))]))


def oracle(task: ExecutionTask, idx: np.ndarray, cfg: BaselineConfig) -> StrategyOutcomes:
    grid = np.asarray(cfg.oracle_grid_bps, dtype=float)
    rewards = offset_rewards(task, idx, grid)
    best = np.argmax(rewards, axis=1)
    px = task.price_of_offset(idx, np.broadcast_to(grid, (len(idx), len(grid))))
    _, out = task.score_prices(idx, px)
    return outcomes_of(ORACLE, task, idx, out, px[np.arange(len(idx)), best], column=best)


def baseline_outcomes(task: ExecutionTask, idx: np.ndarray, cfg: BaselineConfig,
                      fitted: bool = True) -> dict[str, StrategyOutcomes]:
    """Every baseline (and the oracle) on decisions ``idx``; ``fitted=False`` leaves out the two fit on the
    training split (vwap, analytic), for a task without one (live paper trading)."""
    res = {"market": market_order(task, idx)}
    for name, off in cfg.fixed_offsets_bps.items():
        res[name] = single_offset(name, task, idx, np.full(len(idx), off))
    res["twap"] = sliced("twap", task, idx, cfg, None)
    if fitted:
        res["vwap"] = sliced("vwap", task, idx, cfg, volume_profile(task))
        fit = fit_analytic(task, cfg)
        res["analytic"] = single_offset("analytic", task, idx, np.full(len(idx), fit.best_offset_bps))
    res[ORACLE] = oracle(task, idx, cfg)
    return res


def best_on_validation(task: ExecutionTask, cfg: BaselineConfig) -> tuple[str, dict[str, float]]:
    """The baseline with the lowest mean IS (bps) on the validation split, the oracle excluded (not a strategy),
    and every baseline's mean IS there. Only the validation decisions are simulated: the choice never sees the
    test split."""
    val = baseline_outcomes(task, task.split_index(Split.VAL), cfg)
    means = {name: float(np.mean(o.is_bps)) for name, o in val.items() if name != ORACLE}
    return min(means, key=means.__getitem__), means


def llm_outcomes(task: ExecutionTask, idx: np.ndarray, texts: list[str], fallback_offset_bps: float,
                 name: str = "llm") -> StrategyOutcomes:
    """The policy's greedy answers; invalid ones are counted and replaced by the fallback offset (bps)."""
    scored = task.score(idx, texts, 1)
    valid = scored.valid[:, 0]
    offsets = np.where(valid, scored.offsets_bps[:, 0], fallback_offset_bps)
    px = task.price_of_offset(idx, offsets.reshape(-1, 1))
    _, out = task.score_prices(idx, px)
    return outcomes_of(name, task, idx, out, px[:, 0], invalid=~valid, offset_bps=offsets)
