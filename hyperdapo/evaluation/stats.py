"""Paired significance tests of each baseline against a candidate strategy (by decision), with scipy.stats.

For each baseline b and candidate c on the same decisions: the per-decision difference ``d = IS_b - IS_c``
(positive = the candidate is cheaper), the paired t-test (``ttest_rel``), the Wilcoxon signed-rank test
(all-zero differences: p = 1, the test is undefined), Bonferroni correction over the m comparisons
(``min(1, m p)``), and a percentile bootstrap 95% CI of the mean difference (``scipy.stats.bootstrap``,
1,000 resamples of decision indices, seeded). :func:`mean_ci` bootstraps one strategy's mean the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

N_RESAMPLES = 1000


def mean_ci(x: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2 or np.all(x == x[0]):
        return float(np.mean(x)), float(np.mean(x))
    res = stats.bootstrap((x,), np.mean, n_resamples=N_RESAMPLES, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_tests(baselines: dict[str, np.ndarray], candidate: np.ndarray, seed: int = 0) -> dict[str, dict]:
    """Per baseline: mean difference (baseline - candidate), its bootstrap CI, t and Wilcoxon p-values, and
    both Bonferroni-corrected over the number of baselines."""
    m = len(baselines)
    out = {}
    for name, base in baselines.items():
        d = np.asarray(base, dtype=np.float64) - np.asarray(candidate, dtype=np.float64)
        if np.all(d == 0):
            t_p = w_p = 1.0
        else:
            t_p = float(stats.ttest_rel(base, candidate).pvalue)
            w_p = float(stats.wilcoxon(d).pvalue)
        lo, hi = mean_ci(d, seed)
        out[name] = {
            "mean_diff_bps": float(d.mean()), "ci_low": lo, "ci_high": hi, "n": len(d),
            "t_p": t_p, "wilcoxon_p": w_p, "t_p_bonf": min(1.0, t_p * m), "wilcoxon_p_bonf": min(1.0, w_p * m),
        }
    return out
