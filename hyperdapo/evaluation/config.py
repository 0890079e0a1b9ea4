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
