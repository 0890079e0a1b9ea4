"""Stress scenarios of the synthetic market (:mod:`hyperdapo.data.synthetic`): where a policy breaks.

A scenario is chosen in ``conf/scenario/`` by Hydra ``_target_`` (``scenario=flash_crash``; its parameters as
``data.synthetic.scenario.<key>=...``) and is a callable ``scenario(n_steps, dt_s, signal, rng) -> ScenarioPaths``:
given the number of model steps, the step (s), the latent order-flow signal ``s_t`` (N,) and a random generator of
its own (a stream apart from the market's, so the plain market's draws never change), it returns per-step paths
that the generator applies (:class:`ScenarioPaths`). Times of a one-off event are shares of the simulated span
(``at_frac=0.5``: half-way), durations in seconds, moves in bps of the mid (log-price bps), multipliers
dimensionless (1 = unchanged). Each scenario's parameter set (its values, documented) lives in its
``conf/scenario/<name>.yaml`` only; the classes below type and check them.

- ``none`` (:class:`NoScenario`, the default): every path neutral; the market is bitwise the one without scenarios.
- ``regime_switch`` (:class:`RegimeSwitch`): at ``at_frac`` volatility, book depth and trade intensity shift to new
  levels and stay there (a calm morning, a stressed afternoon).
- ``flash_crash`` (:class:`FlashCrash`): the mid falls ``drop_bps`` over ``fall_s`` on a sell cascade, then
  recovers ``recovery_share`` of the drop linearly over ``recover_s``; volatility, trade intensity and book
  thinning peak during the fall and ease back linearly over the recovery.
- ``liquidity_drought`` (:class:`LiquidityDrought`): between ``start_frac`` and ``end_frac`` of the span the book
  is thin (level sizes times ``depth_mult``), the spread wider and trades fewer.
- ``spoofing`` (:class:`Spoofing`): walls (a level ``wall_size_mult`` times its usual size, ``wall_level`` levels
  behind the best) appear at Poisson times on the side **against** the latent signal (a bid wall while the flow is
  about to sell), stay ``wall_life_s`` and vanish; no trade prints at a wall's price while it is shown (a trade that
  would reach it stops one level short: the spoofer pulls it as the flow arrives, within the snapshot second), so the
  book imbalance points the wrong way while the trade flow does not.
- ``momentum_ignition`` (:class:`MomentumIgnition`): at Poisson times an ignitor fires ``burst_s`` of same-side
  market orders (every taker on one side, intensity times ``burst_rate_mult``) that push the mid ``drift_bps`` its
  way; ``revert_share`` of the push fades over ``revert_s`` afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

from hyperdapo.targets import instantiate_target


@dataclass
class ScenarioPaths:
    """What a scenario changes, per model step (each (N,); neutral values leave the market bitwise unchanged)."""

    vol_mult: np.ndarray  # multiplies the mid's volatility sigma_t (1 = unchanged)
    mid_offset_bps: np.ndarray  # added to the log mid, bps (0 = unchanged): crash and recovery, ignition pushes
    depth_mult: np.ndarray  # multiplies every book level's size (1 = unchanged)
    spread_extra_p: np.ndarray  # probability of each extra spread tick; NaN = the regime's (calm / volatile) value
    rate_mult: np.ndarray  # multiplies the trade intensity's base rate (1 = unchanged)
    buy_prob: np.ndarray  # taker-buy probability; NaN = sigmoid(flow_gain s_t) as without a scenario
    wall_side: np.ndarray  # int8: +1 a spoof wall on the bid, -1 on the ask, 0 none
    wall_level: int = 0  # the wall's level (0 = best), used where wall_side != 0
    wall_size_mult: float = 1.0  # the wall's size / the level's size without it

    @classmethod
    def neutral(cls, n_steps: int) -> ScenarioPaths:
        ones, nan = np.ones(n_steps), np.full(n_steps, np.nan)
        return cls(ones, np.zeros(n_steps), ones.copy(), nan, ones.copy(), nan.copy(), np.zeros(n_steps, np.int8))


class Scenario(Protocol):
    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        """The paths of a market of ``n_steps`` steps of ``dt_s`` seconds with latent signal ``signal`` (N,)."""


def _check(scenario: object, positive: tuple[str, ...] = (), shares: tuple[str, ...] = (),
           nonneg: tuple[str, ...] = ()) -> None:
    """Raise ValueError naming ``data.synthetic.scenario.<key>`` for a value out of its range: ``positive`` finite and
    > 0, ``shares`` in [0, 1], ``nonneg`` finite and >= 0."""
    for keys, ok, rule in ((positive, lambda v: math.isfinite(v) and v > 0, "finite and > 0"),
                           (shares, lambda v: 0 <= v <= 1, "in [0, 1]"),
                           (nonneg, lambda v: math.isfinite(v) and v >= 0, "finite and >= 0")):
        for key in keys:
            if not ok(getattr(scenario, key)):
                raise ValueError(f"data.synthetic.scenario.{key}={getattr(scenario, key)}: must be {rule} "
                                 f"({type(scenario).__name__})")


def _ramp(t_s: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """0 before ``start_s``, 1 after ``end_s``, linear in between (a step when they are equal)."""
    if end_s <= start_s:
        return (t_s >= start_s).astype(np.float64)
    return np.clip((t_s - start_s) / (end_s - start_s), 0.0, 1.0)


def _episodes(rate_per_h: float, n_steps: int, dt_s: float, rng: np.random.Generator) -> np.ndarray:
    """Start times (s, sorted) of a Poisson process of ``rate_per_h`` events per hour over the span."""
    span_s = n_steps * dt_s
    return np.sort(rng.uniform(0, span_s, rng.poisson(rate_per_h * span_s / 3600)))


@dataclass(frozen=True)
class NoScenario:
    """The plain market: neutral paths (the default)."""

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        return ScenarioPaths.neutral(n_steps)


@dataclass(frozen=True)
class RegimeSwitch:
    """From ``at_frac`` of the span on, volatility, book depth and trade intensity are multiplied (then stay)."""

    at_frac: float  # the switch, as a share of the simulated span
    vol_mult: float  # volatility after / before
    depth_mult: float  # book level sizes after / before
    trade_rate_mult: float  # trade intensity after / before

    def __post_init__(self) -> None:
        _check(self, positive=("vol_mult", "depth_mult", "trade_rate_mult"), shares=("at_frac",))

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        paths = ScenarioPaths.neutral(n_steps)
        after = np.arange(n_steps) >= int(self.at_frac * n_steps)
        paths.vol_mult[after] = self.vol_mult
        paths.depth_mult[after] = self.depth_mult
        paths.rate_mult[after] = self.trade_rate_mult
        return paths


@dataclass(frozen=True)
class FlashCrash:
    """A fall of ``drop_bps`` over ``fall_s`` from ``at_frac`` of the span, then a linear recovery of
    ``recovery_share`` of it over ``recover_s``; the stress (volatility, trade intensity, thin book, sellers) is full
    during the fall and eases linearly to none over the recovery."""

    at_frac: float  # the crash starts at this share of the simulated span
    drop_bps: float  # depth of the crash, bps of the mid
    fall_s: float  # the fall lasts this long
    recover_s: float  # the recovery lasts this long
    recovery_share: float  # share of the drop won back (the rest is a lasting move)
    vol_mult: float  # volatility multiplier during the fall
    depth_mult: float  # book size multiplier during the fall
    trade_rate_mult: float  # trade intensity multiplier during the fall
    sell_share: float  # taker-sell probability during the fall (the cascade)

    def __post_init__(self) -> None:
        _check(self, positive=("drop_bps", "fall_s", "recover_s", "vol_mult", "depth_mult", "trade_rate_mult"),
               shares=("at_frac", "recovery_share", "sell_share"))

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        t_s = np.arange(n_steps) * dt_s
        start = self.at_frac * n_steps * dt_s
        bottom, end = start + self.fall_s, start + self.fall_s + self.recover_s
        stress = (t_s >= start) * (1 - _ramp(t_s, bottom, end))  # 1 in the fall, easing to 0 over the recovery
        paths = ScenarioPaths.neutral(n_steps)
        paths.mid_offset_bps = -self.drop_bps * (_ramp(t_s, start, bottom) - self.recovery_share * _ramp(t_s, bottom,
                                                                                                           end))
        paths.vol_mult = 1 + (self.vol_mult - 1) * stress
        paths.depth_mult = 1 + (self.depth_mult - 1) * stress
        paths.rate_mult = 1 + (self.trade_rate_mult - 1) * stress
        paths.buy_prob[(t_s >= start) & (t_s < bottom)] = 1 - self.sell_share
        return paths


@dataclass(frozen=True)
class LiquidityDrought:
    """Between ``start_frac`` and ``end_frac`` of the span: a thin book, a wider spread and fewer trades."""

    start_frac: float  # the drought starts at this share of the simulated span
    end_frac: float  # and ends at this share
    depth_mult: float  # book level sizes during / outside the drought
    spread_extra_p: float  # probability of each extra spread tick during the drought (geometric)
    trade_rate_mult: float  # trade intensity during / outside the drought

    def __post_init__(self) -> None:
        _check(self, positive=("depth_mult", "trade_rate_mult"), shares=("start_frac", "end_frac"))
        if not self.start_frac < self.end_frac:
            raise ValueError(f"data.synthetic.scenario.end_frac={self.end_frac}: must be > start_frac="
                             f"{self.start_frac}")
        if not 0 <= self.spread_extra_p < 1:
            raise ValueError(f"data.synthetic.scenario.spread_extra_p={self.spread_extra_p}: must be in [0, 1)")

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        step = np.arange(n_steps)
        dry = (step >= int(self.start_frac * n_steps)) & (step < int(self.end_frac * n_steps))
        paths = ScenarioPaths.neutral(n_steps)
        paths.depth_mult[dry] = self.depth_mult
        paths.spread_extra_p[dry] = self.spread_extra_p
        paths.rate_mult[dry] = self.trade_rate_mult
        return paths


@dataclass(frozen=True)
class Spoofing:
    """Walls against the latent signal that vanish before any trade reaches them (module docstring). Keep
    ``wall_level`` below ``features.imbalance_levels`` (5) for the imbalance feature to see them."""

    walls_per_hour: float  # Poisson rate of wall episodes
    wall_life_s: float  # a wall is shown this long, then vanishes
    wall_level: int  # levels behind the best (0 = best; >= 1, a wall at the best would trade at once)
    wall_size_mult: float  # the wall's size / the level's usual size

    def __post_init__(self) -> None:
        _check(self, positive=("walls_per_hour", "wall_life_s", "wall_size_mult"))
        if not (isinstance(self.wall_level, int) and self.wall_level >= 1):
            raise ValueError(f"data.synthetic.scenario.wall_level={self.wall_level}: must be an integer >= 1 (a "
                             "wall at the best level would be traded at once)")

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        paths = ScenarioPaths.neutral(n_steps)
        paths.wall_level, paths.wall_size_mult = self.wall_level, self.wall_size_mult
        for start_s in _episodes(self.walls_per_hour, n_steps, dt_s, rng):
            first = int(start_s // dt_s)
            # against the flow: a bid wall (+1) while the latent signal says sell, an ask wall (-1) otherwise
            paths.wall_side[first:first + max(1, int(round(self.wall_life_s / dt_s)))] = 1 if signal[first] < 0 else -1
        return paths


@dataclass(frozen=True)
class MomentumIgnition:
    """Bursts of same-side market orders at Poisson times that push the mid, then partly fade (module docstring)."""

    bursts_per_hour: float  # Poisson rate of ignition bursts
    burst_s: float  # a burst of same-side market orders lasts this long
    burst_rate_mult: float  # trade intensity during a burst
    drift_bps: float  # the mid moves this far the burst's way over the burst, bps
    revert_s: float  # then fades over this long
    revert_share: float  # share of the push that fades

    def __post_init__(self) -> None:
        _check(self, positive=("bursts_per_hour", "burst_s", "burst_rate_mult", "revert_s"), nonneg=("drift_bps",),
               shares=("revert_share",))

    def __call__(self, n_steps: int, dt_s: float, signal: np.ndarray, rng: np.random.Generator) -> ScenarioPaths:
        t_s = np.arange(n_steps) * dt_s
        paths = ScenarioPaths.neutral(n_steps)
        starts = _episodes(self.bursts_per_hour, n_steps, dt_s, rng)
        sides = rng.choice([-1.0, 1.0], len(starts))
        for start, side in zip(starts, sides, strict=True):
            end = start + self.burst_s
            paths.mid_offset_bps += side * self.drift_bps * (_ramp(t_s, start, end)
                                                            - self.revert_share * _ramp(t_s, end, end + self.revert_s))
            burst = (t_s >= start) & (t_s < end)
            paths.rate_mult[burst] = self.burst_rate_mult
            paths.buy_prob[burst] = 1.0 if side > 0 else 0.0
        return paths


def scenario_model(node: dict[str, Any]) -> Scenario:
    """The scenario of a ``data.synthetic.scenario`` node (``{_target_: <class path>, <its parameters>}``)."""
    model = instantiate_target("data.synthetic.scenario", node, "hyperdapo.data.scenarios.FlashCrash")
    if not callable(model):
        raise ValueError(f"data.synthetic.scenario._target_={node['_target_']}: not a callable scenario")
    return model


def scenario_params(model: Scenario) -> dict[str, Any] | None:
    """The scenario's identity for the market directory's hash: its class path and parameters (float fields as
    floats, so ``drop_bps=300`` and ``300.0`` name one market); None for :class:`NoScenario` (the plain market keeps
    the directory it had before scenarios existed)."""
    if isinstance(model, NoScenario):
        return None
    return {"_target_": f"{type(model).__module__}.{type(model).__qualname__}",
            **{f.name: float(getattr(model, f.name)) if f.type == "float" else getattr(model, f.name)
               for f in fields(model)}}
