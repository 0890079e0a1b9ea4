"""Latency models: the delay (microseconds) from a decision to its order at the venue (fills.py, rule 2).

A model is chosen in ``conf/execution/latency/`` by Hydra ``_target_`` (``execution/latency=venue|uniform``) and is any
callable ``model(decision_ts_us, venue) -> (D,) int64 delays in us``; :func:`latency_model` builds it.

The delay is a function of the decision, not of the order: every candidate price, baseline and policy of one decision
sees the same delay (common random numbers, so paired comparisons stay paired), and a resumed or day-by-day run draws
the same delays as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hyperdapo.data.config import VenueConfig
from hyperdapo.targets import instantiate_target

US_PER_MS = 1_000


class LatencyModel(Protocol):
    def __call__(self, decision_ts_us: np.ndarray, venue: VenueConfig) -> np.ndarray:
        """(D,) int64 delay in us of each decision's order."""


@dataclass(frozen=True)
class VenueLatency:
    """The venue's constant ``venue.latency_ms`` (the default)."""

    def __call__(self, decision_ts_us: np.ndarray, venue: VenueConfig) -> np.ndarray:
        return np.full(len(decision_ts_us), int(venue.latency_ms * US_PER_MS), dtype=np.int64)


@dataclass(frozen=True)
class UniformLatency:
    """A delay drawn uniformly from ``[low_ms, high_ms]`` (ms) per decision (the seeds' 5-50 ms), a seeded hash of the
    decision time: the same decision always gets the same delay."""

    low_ms: float = 5.0
    high_ms: float = 50.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low_ms) and np.isfinite(self.high_ms) and 0 <= self.low_ms <= self.high_ms):
            raise ValueError(f"execution.latency: low_ms={self.low_ms}, high_ms={self.high_ms}: need "
                             "0 <= low_ms <= high_ms, finite")

    def __call__(self, decision_ts_us: np.ndarray, venue: VenueConfig) -> np.ndarray:
        u = _uniform_hash(np.asarray(decision_ts_us, dtype=np.int64), self.seed)
        return ((self.low_ms + u * (self.high_ms - self.low_ms)) * US_PER_MS).astype(np.int64)


def _uniform_hash(ts_us: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per time: splitmix64 of (time, seed), in uint64 arithmetic (wraps by design)."""
    z = ts_us.astype(np.uint64) + np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def latency_model(node: dict[str, Any]) -> LatencyModel:
    """The model of an ``execution.latency`` node (``{_target_: <class path>, <its arguments>}``); errors name it."""
    model = instantiate_target("execution.latency", node, "hyperdapo.execution.latency.UniformLatency; see "
                               "conf/execution/latency/")
    if not callable(model):
        raise ValueError(f"execution.latency._target_={node['_target_']}: not a callable latency model")
    return model
