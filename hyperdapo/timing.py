"""Stage timing for the console log (any stage may use it): ``with timed(log, "features"): ...`` logs
``features: 3.2 s`` at INFO when the block ends (not when it raises)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(log: logging.Logger, stage: str) -> Iterator[None]:
    """Log the wall time of the block as ``<stage>: <seconds> s``."""
    t0 = time.perf_counter()
    yield
    log.info("%s: %.1f s", stage, time.perf_counter() - t0)
