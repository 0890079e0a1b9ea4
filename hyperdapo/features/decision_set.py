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

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from hyperdapo.data.schema import Side
from hyperdapo.features.config import DecisionConfig, Objective

US_PER_S = 1_000_000


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class DecisionSet:
    """D decisions of one asset, sorted by time."""

    asset: str
    ts_us: np.ndarray  # (D,) int64 decision times
    side: np.ndarray  # (D,) int8, Side values
    qty: np.ndarray  # (D,) float64 coins, on the asset's size grid
    objective: np.ndarray  # (D,) str, Objective values
    split: np.ndarray  # (D,) str, Split values
    horizon_s: float  # the reward window of every decision (s): fill horizon (unfilled -> cleaned up by a market order)
    adverse_horizon_s: float  # and the adverse-selection look after a fill; the simulator reads both from here

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, index: np.ndarray) -> DecisionSet:
        return DecisionSet(
            self.asset, self.ts_us[index], self.side[index], self.qty[index], self.objective[index],
            self.split[index], self.horizon_s, self.adverse_horizon_s,
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
    asset: str, book_ts_us: np.ndarray, mid_usd: np.ndarray, round_lot: Callable[[np.ndarray], np.ndarray],
    cfg: DecisionConfig
) -> DecisionSet:
    """Decisions over the span of a book (its snapshot times and mids), deterministic by ``cfg.seed``.

    Quantity is drawn as a USD notional in [notional_min_usd, notional_max_usd] and converted at the mid of
    the last snapshot at or before t (no look-ahead), rounded by ``round_lot`` to whole lots of the venue, at
    least one (:meth:`hyperdapo.data.venues.Instrument.round_to_lot`).
    """
    decisions, notional_usd = draw_decisions(asset, int(book_ts_us[0]), int(book_ts_us[-1]), cfg)
    return outside_gaps(with_quantity(decisions, notional_usd, book_ts_us, mid_usd, round_lot), book_ts_us,
                        cfg.max_gap_s)


def draw_decisions(asset: str, start_us: int, end_us: int, cfg: DecisionConfig) -> tuple[DecisionSet, np.ndarray]:
    """The seeded draws of :func:`build_decisions` over the book span ``[start_us, end_us]``: the decisions with
    ``qty`` still NaN, and their USD notionals. One row per decision, small even over months, so a day-by-day
    build draws them all at once and takes each day's slice."""
    rng = np.random.default_rng(cfg.seed)
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
    keep = np.ones(n, dtype=bool)  # decisions.train_every thins the training split after the draws
    train = np.flatnonzero(split == Split.TRAIN.value)
    keep[train[np.arange(len(train)) % cfg.train_every != 0]] = False
    decisions = DecisionSet(asset, ts_us, side, np.full(n, np.nan), objective, split, cfg.horizon_s,
                            cfg.adverse_horizon_s)
    return decisions.take(keep), notional_usd[keep]


def with_quantity(decisions: DecisionSet, notional_usd: np.ndarray, book_ts_us: np.ndarray, mid_usd: np.ndarray,
                  round_lot: Callable[[np.ndarray], np.ndarray]) -> DecisionSet:
    """``decisions`` with ``qty`` (coins): ``notional_usd`` at the mid (USD) of the book's last snapshot at or before
    each decision time, rounded by ``round_lot``."""
    asof = np.searchsorted(book_ts_us, decisions.ts_us, side="right") - 1
    return replace(decisions, qty=round_lot(notional_usd / mid_usd[asof]))


def outside_gaps(decisions: DecisionSet, book_ts_us: np.ndarray, max_gap_s: float) -> DecisionSet:
    """The decisions whose market is there: no two consecutive book snapshots more than ``max_gap_s`` seconds apart
    between the last snapshot at or before t and the first one at or after the end of the reward window
    ``t + horizon_s + adverse_horizon_s``. ``book_ts_us`` must reach that far around each decision (the whole book,
    or a day's window of it)."""
    step = np.diff(book_ts_us)
    gap = np.flatnonzero(step > max_gap_s * US_PER_S)
    if not len(gap):
        return decisions
    gap_start, gap_end = book_ts_us[gap], book_ts_us[gap + 1]  # (n_gaps,) each, sorted, disjoint
    end_us = decisions.ts_us + int((decisions.horizon_s + decisions.adverse_horizon_s) * US_PER_S)
    # gaps that open before the window ends minus those that closed by t: the gaps the span [t, end] touches
    touched = np.searchsorted(gap_start, end_us, side="left") - np.searchsorted(gap_end, decisions.ts_us, side="right")
    return decisions.take(np.flatnonzero(touched == 0))


SPLIT_KEYS = ("warmup_s", "every_s", "horizon_s", "adverse_horizon_s", "embargo_s", "train_frac", "val_frac")
MIN_PER_SPLIT = 30  # decisions a split needs at least for a paired test to say anything
NICE_S = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)  # candidate steps and horizons (s)


def too_few_decisions(split: Split | str, n: int, cfg: DecisionConfig, span_us: tuple[int, int] | None = None) -> str:
    """The error text for a split with too few decisions, naming the keys that decide how many it gets and, when
    the data's span is known, settings that give every split at least :data:`MIN_PER_SPLIT` decisions
    (:func:`suggest_decisions`)."""
    values = ", ".join(decision_overrides(cfg))
    text = (f"the {Split(split).value} split holds {n} decisions. On this data the splits are decided by {values} "
            "(each split's period loses the reward window, horizon_s + adverse_horizon_s, at its end, and an "
            "embargo_s gap separates the periods): use more data or lower these")
    suggestion = suggest_decisions(*span_us, cfg) if span_us is not None else None
    if suggestion is not None:
        span_h = (span_us[1] - span_us[0]) / 3.6e9
        text += (f". For this {span_h:.2f}-h span these give every split >= {MIN_PER_SPLIT} decisions: "
                 + " ".join(decision_overrides(suggestion)))
    return text


def split_counts(start_us: int, end_us: int, cfg: DecisionConfig) -> dict[Split, int]:
    """Decisions per split that :func:`draw_decisions` lays on the book span ``[start_us, end_us]`` (before gaps
    and ``train_every``; jitter ignored)."""
    first_us = start_us + int(cfg.warmup_s * US_PER_S)
    grid_us = np.arange(first_us, end_us, int(cfg.every_s * US_PER_S), dtype=np.int64)
    split = assign_splits(grid_us, first_us, end_us, cfg)
    return {s: int((split == s.value).sum()) for s in Split}


def suggest_decisions(start_us: int, end_us: int, cfg: DecisionConfig,
                      min_per_split: int = MIN_PER_SPLIT) -> DecisionConfig | None:
    """Decision settings for a span too short for ``cfg``, derived from the span ``S`` (s), never longer than
    ``cfg``'s: the fill horizon the largest of :data:`NICE_S` up to ``S / 60`` (at least 10 s), the adverse look half
    of it, the embargo their sum (its minimum), the warm-up at most 10 % of ``S``, and the largest decision step of
    :data:`NICE_S` that gives every split ``min_per_split`` decisions. None when even a 1-s step cannot."""
    span_s = (end_us - start_us) / US_PER_S
    horizon = min(max(h for h in NICE_S if h <= max(span_s / 60, 10.0)), cfg.horizon_s)
    adverse = min(cfg.adverse_horizon_s, horizon / 2)
    short = replace(cfg, horizon_s=horizon, adverse_horizon_s=adverse, embargo_s=horizon + adverse,
                    warmup_s=float(int(min(cfg.warmup_s, 0.1 * span_s))))
    for every in sorted((e for e in NICE_S if e <= cfg.every_s), reverse=True):
        candidate = replace(short, every_s=every)
        if min(split_counts(start_us, end_us, candidate).values()) >= min_per_split:
            return candidate
    return None


def decision_overrides(cfg: DecisionConfig) -> list[str]:
    """``cfg``'s split-deciding values as Hydra overrides (``decisions.every_s=10`` ...)."""
    return [f"decisions.{k}={getattr(cfg, k):g}" for k in SPLIT_KEYS]


def empty_split(decisions: DecisionSet) -> Split | None:
    """The first split that holds no decision, None when each holds some."""
    return next((s for s in Split if not (decisions.split == s.value).any()), None)
