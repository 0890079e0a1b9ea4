"""Paired significance tests of strategies against a reference strategy (by decision), with scipy.stats.

For each strategy s and reference r on the same decisions: the per-decision difference ``d = IS_s - IS_r``
(bps; negative = s is cheaper), the paired t-test (``ttest_rel``), the Wilcoxon signed-rank test
(all-zero differences: the tests are undefined, p = 1 and ``identical`` is set, which the tables print as
"identical"), Bonferroni correction over the m comparisons (``min(1, m p)``; m = the number of strategies tested
unless the caller counts more comparisons), and a percentile bootstrap 95% CI of the mean difference
(``scipy.stats.bootstrap``, 1,000 resamples of decision indices, seeded). :func:`mean_ci` bootstraps one
strategy's mean the same way. :func:`significant_win` says whether a test shows the strategy significantly cheaper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

N_RESAMPLES = 1000
ALPHA = 0.05  # significance level of a win, after Bonferroni


@dataclass(frozen=True)
class Comparison:
    """One paired test made: ``policy`` against ``versus`` in a ``role`` (e.g. "best baseline (val)"), the
    :func:`paired_tests` result with the policy first, and the policy's win rate (%) against ``versus``."""

    policy: str
    versus: str
    role: str
    test: dict
    win_rate_pct: float


def mean_ci(x: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]):
        return float(np.mean(x)), float(np.mean(x))
    res = stats.bootstrap((x,), np.mean, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_tests(strategies: dict[str, np.ndarray], reference: np.ndarray, seed: int = 0,
                 n_comparisons: int | None = None) -> dict[str, dict]:
    """Per strategy: mean difference (strategy - reference, bps), its bootstrap CI, t and Wilcoxon p-values, and
    both Bonferroni-corrected over ``n_comparisons`` (default: the number of strategies here)."""
    m = len(strategies) if n_comparisons is None else n_comparisons
    if m < len(strategies):
        raise ValueError(f"n_comparisons={m}: fewer than the {len(strategies)} comparisons made here")
    out = {}
    for name, base in strategies.items():
        d = np.asarray(base, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
        if np.all(d == 0):
            t_p = w_p = 1.0
        else:
            t_p = float(stats.ttest_rel(base, reference).pvalue)
            w_p = float(stats.wilcoxon(d).pvalue)
        lo, hi = mean_ci(d, seed)
        out[name] = {
            "mean_diff_bps": float(d.mean()), "ci_low": lo, "ci_high": hi, "n": len(d),
            "t_p": t_p, "wilcoxon_p": w_p, "t_p_bonf": min(1.0, t_p * m), "wilcoxon_p_bonf": min(1.0, w_p * m),
            "identical": bool(np.all(d == 0)),
        }
    return out


def significant_win(test: dict, alpha: float = ALPHA) -> bool:
    """Whether a :func:`paired_tests` result shows the strategy cheaper than its reference (mean difference < 0 bps)
    with both Bonferroni-corrected p-values (t and Wilcoxon) below ``alpha``."""
    return test["mean_diff_bps"] < 0 and test["t_p_bonf"] < alpha and test["wilcoxon_p_bonf"] < alpha


def identical_to(series: dict[str, np.ndarray], name: str) -> list[str]:
    """The other names whose per-decision series equals ``name``'s exactly on every decision, in their order."""
    return [other for other, values in series.items()
            if other != name and np.array_equal(np.asarray(values), np.asarray(series[name]))]
