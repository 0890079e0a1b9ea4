"""The typed configuration of the evaluation stage (``evaluate.baselines:``): light, no numerical imports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BaselineConfig:
    """Offsets in side-relative bps (negative = passive)."""

    fixed_offsets_bps: dict[str, float] = field(default_factory=lambda: {
        "aggressive": 0.0, "moderate": -5.0, "conservative": -15.0, "passive": -30.0})
    n_slices: int = 5
    child_offset_bps: float = 0.0
    analytic_grid_bps: list[float] = field(default_factory=lambda: [float(x) for x in range(-60, 6)])
    oracle_grid_bps: list[float] = field(default_factory=lambda: [-50.0, -30.0, -15.0, -10.0, -5.0, -2.0, 0.0, 5.0])

    def __post_init__(self) -> None:
        if self.n_slices < 1:
            raise ValueError(f"evaluate.baselines.n_slices={self.n_slices}: must be >= 1")


@dataclass
class RegimeConfig:
    """How test decisions are cut into market regimes (:mod:`hyperdapo.evaluation.regimes`): the cut points of each
    regime feature are these quantiles of its values over the training split's decisions (terciles by default)."""

    quantiles: list[float] = field(default_factory=lambda: [1 / 3, 2 / 3])

    def __post_init__(self) -> None:
        q = list(self.quantiles)
        if not q or any(not 0 < x < 1 for x in q) or any(b <= a for a, b in zip(q, q[1:], strict=False)):
            raise ValueError(f"evaluate.regimes.quantiles={q}: need one or more increasing values strictly between 0 "
                             "and 1 (e.g. [0.5] for a median split, [0.333, 0.667] for terciles)")
