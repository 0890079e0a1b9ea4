"""Market regimes of the evaluated decisions: where a policy wins and where it breaks.

Each decision is labelled, per regime dimension, by one causal feature at its decision time (from data <= t only,
:mod:`hyperdapo.features.compute`):

- ``volatility``: ``volatility_5m_bps``, std of 1-s log mid returns over the last 5 min (bps);
- ``spread``: the quoted spread in ticks of the venue, ``(best_ask_usd - best_bid_usd) / tick`` (ticks, not
  ``spread_bps``: a one-tick spread in bps moves with the price level, and cutting it into terciles would sort
  decisions by price, not by liquidity);
- ``trend``: ``|momentum_15m_bps|``, the size of the last 15 min's log move (bps), either direction;
- ``trade intensity``: ``trade_intensity_per_min``, trades per minute over the last 5 min (left out when the data
  has no trades: every training value is NaN).

Buckets: the cut points of a dimension are the ``quantiles`` (terciles by default, ``evaluate.regimes.quantiles``)
of its values over the **training split's decisions only** (:func:`fit_regimes`), so no validation or test value
moves a threshold; tied cut points merge (a spread of one tick on most decisions gives two buckets, "<= 1" and
"> 1", not three). A value ``x`` falls in bucket ``k`` = the number of cut points strictly below it (``x <= c_0`` is
bucket 0); a NaN value has no bucket (-1) and is counted in no row.

:func:`regime_table` gives, per bucket, the mean implementation shortfall (bps, cost positive, fees and cleanup
included) of every strategy and, for each compared policy, the paired difference to the validation-chosen best
baseline (``IS(policy) - IS(best)``, bps, negative = the policy is cheaper) with paired t and Wilcoxon p-values
(:func:`hyperdapo.evaluation.stats.paired_tests`), Bonferroni over every test of the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperdapo.data.venues import Instrument
from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import IDENTICAL
from hyperdapo.features.decision_set import Split

MIN_TEST_DECISIONS = 2  # a bucket with fewer decisions gets no paired test (a t-test needs two differences)


@dataclass(frozen=True)
class Regime:
    """One regime dimension: its name, the unit of its values and the cut points fitted on the training split."""

    name: str  # "volatility"
    unit: str  # "bps", "ticks", "/min"
    edges: tuple[float, ...]  # ascending, distinct cut points in ``unit``

    @property
    def buckets(self) -> tuple[str, ...]:
        """Bucket names, low to high: ``low``/``high`` for one cut point, ``low``/``mid``/``high`` for two,
        ``q1``..``qK`` otherwise."""
        k = len(self.edges) + 1
        return {2: ("low", "high"), 3: ("low", "mid", "high")}.get(k, tuple(f"q{j + 1}" for j in range(k)))

    def ranges(self) -> tuple[str, ...]:
        """Each bucket's values in words: ``<= 0.52``, ``(0.52, 0.81]``, ``> 0.81``."""
        e = [f"{x:.3g}" for x in self.edges]
        return (f"<= {e[0]}", *(f"({a}, {b}]" for a, b in zip(e[:-1], e[1:], strict=True)), f"> {e[-1]}")

    def label(self, values: np.ndarray) -> np.ndarray:
        """(D,) bucket index of each value, -1 where it is NaN."""
        values = np.asarray(values, dtype=np.float64)
        return np.where(np.isnan(values), -1, np.searchsorted(np.asarray(self.edges), values, side="left"))


REGIME_UNITS = {"volatility": "bps", "spread": "ticks", "trend": "bps", "trade intensity": "/min"}


def regime_values(features: Sequence[dict[str, float]], instrument: Instrument) -> dict[str, np.ndarray]:
    """The (D,) value of each regime dimension (module docstring) from decision feature rows (``task.features``)."""
    col = lambda key: np.array([row[key] for row in features], dtype=np.float64)  # noqa: E731
    mid = col("mid_usd")
    return {
        "volatility": col("volatility_5m_bps"),
        "spread": np.round((col("best_ask_usd") - col("best_bid_usd")) / instrument.tick_size(mid), 6),
        "trend": np.abs(col("momentum_15m_bps")),
        "trade intensity": col("trade_intensity_per_min"),
    }


def fit_regimes(values: dict[str, np.ndarray], split: np.ndarray, quantiles: Sequence[float]) -> list[Regime]:
    """Cut points of each dimension: the ``quantiles`` of its values over the decisions whose ``split`` is the
    training split (every other decision is ignored), tied cut points merged; a dimension without a finite
    training value is left out."""
    train = np.asarray(split) == Split.TRAIN.value
    regimes = []
    for name, v in values.items():
        fit = v[train & np.isfinite(v)]
        if len(fit):
            regimes.append(Regime(name, REGIME_UNITS[name], tuple(np.unique(np.quantile(fit, quantiles)).tolist())))
    return regimes


def buckets_with_tests(regimes: Sequence[Regime], labels: dict[str, np.ndarray]) -> list[tuple[Regime, int]]:
    """The ``(regime, bucket)`` cells with at least ``MIN_TEST_DECISIONS`` decisions: each gets one paired test per
    compared policy."""
    return [(r, k) for r in regimes for k in range(len(r.buckets)) if (labels[r.name] == k).sum() >= MIN_TEST_DECISIONS]


def regime_table(regimes: Sequence[Regime], labels: dict[str, np.ndarray], is_bps: dict[str, np.ndarray],
                 best: str | None, policies: Sequence[str], seed: int = 0) -> pd.DataFrame:
    """One row per regime bucket: its range, decision count, the mean IS (bps) of each strategy of ``is_bps``
    (each (D,), the decisions ``labels`` label) and, when ``best`` is given, each of ``policies`` against it:
    ``<policy> - <best> [bps]`` and the Bonferroni-corrected p-values (over every test of the table; buckets with
    fewer than ``MIN_TEST_DECISIONS`` decisions are not tested). A tested bucket where every compared policy equals
    ``best`` on every decision has ``IDENTICAL`` set (its p-values are shown as "identical", not 1)."""
    compared = list(policies) if best is not None else []
    cells = [(r, k) for r in regimes for k in range(len(r.buckets))]
    tested = buckets_with_tests(regimes, labels)
    m = max(1, len(tested) * len(compared))
    rows = []
    for r, k in cells:
        mask = labels[r.name] == k
        row = {"Regime": f"{r.name} [{r.unit}]", "Bucket": r.buckets[k], "Range": r.ranges()[k],
               "n decisions": int(mask.sum())}
        row |= {f"IS {s} [bps]": float(np.mean(v[mask])) if mask.any() else math.nan for s, v in is_bps.items()}
        tests = (paired_tests({p: is_bps[p][mask] for p in compared}, is_bps[best][mask], seed, m)
                 if compared and (r, k) in tested else {})
        for p in compared:
            t = tests.get(p, {})
            row |= {f"{p} - {best} [bps]": t.get("mean_diff_bps", math.nan),
                    f"p (t, Bonf.) {p}": t.get("t_p_bonf", math.nan),
                    f"p (W, Bonf.) {p}": t.get("wilcoxon_p_bonf", math.nan)}
        if tests:  # every compared policy equal to the best baseline on every decision: its p-values read "identical"
            row[IDENTICAL] = all(np.array_equal(is_bps[p][mask], is_bps[best][mask]) for p in compared)
        rows.append(row)
    return pd.DataFrame(rows)


def regime_caption(regimes: Sequence[Regime], quantiles: Sequence[float], best: str | None, n_tests: int,
                   setting: str) -> str:
    """What :func:`regime_table` shows, with the quantiles and the cut points fitted on the training split."""
    cuts = "; ".join(f"{r.name} [{r.unit}] at {', '.join(f'{e:.3g}' for e in r.edges)}" for r in regimes)
    versus = (f" Diff = IS(policy) - IS({best}), the best baseline chosen on the validation split, bps, negative = "
              f"the policy is cheaper in that bucket; p-values of paired t and Wilcoxon tests over the bucket's "
              f"decisions, Bonferroni over the {n_tests} tests of this table (buckets of fewer than "
              f"{MIN_TEST_DECISIONS} decisions untested)." if best is not None else "")
    return ("Implementation shortfall [bps] by market regime: each decision labelled by causal features at its "
            "decision time (volatility = std of 1-s mid returns over 5 min; spread in ticks; trend = |15-min "
            "momentum|; trade intensity = trades per minute over 5 min), cut at the quantiles "
            f"{', '.join(f'{q:.3g}' for q in quantiles)} of the training split's decisions only ({cuts}); n = "
            "decisions of the bucket." + versus + " " + setting)


def bucket_means(table: pd.DataFrame, regimes: Sequence[Regime],
                 strategies: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{"<regime> [<unit>]": {strategy: (K,) mean IS [bps] per bucket}}`` read back from a :func:`regime_table`
    (the figure's numbers are the table's)."""
    rows = {key: table[table["Regime"] == key] for key in (f"{r.name} [{r.unit}]" for r in regimes)}
    return {key: {s: part[f"IS {s} [bps]"].to_numpy() for s in strategies} for key, part in rows.items()}


def bucket_ticks(table: pd.DataFrame) -> dict[str, list[str]]:
    """``{"<regime> [<unit>]": ["<bucket>\\nn=<decisions>", ...]}``: the figure's axis labels, from the table."""
    return {key: [f"{b}\nn={n}" for b, n in zip(part["Bucket"], part["n decisions"], strict=True)]
            for key, part in table.groupby("Regime", sort=False)}


def bucket_names(regime: Regime, labels: np.ndarray) -> np.ndarray:
    """(D,) the bucket name of each label, ``""`` for -1 (no value)."""
    return np.array(("", *regime.buckets), dtype=object)[np.asarray(labels) + 1]
