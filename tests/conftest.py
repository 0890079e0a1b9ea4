"""Shared fixtures. Tests never touch the network (loopback servers only) and never fetch models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HL_SAMPLE = SHARED_DATA / "hyperliquid" / "20240101-12-l2Book-BTC.lz4"
STANDX = SHARED_DATA / "standx" / "BTC-USD"


@pytest.fixture
def hl_sample() -> Path:
    """The real hour of Hyperliquid BTC l2Book data in ../shared (skips when a clone lacks it)."""
    if not HL_SAMPLE.exists():
        pytest.skip(f"{HL_SAMPLE} is absent: the shared Hyperliquid sample sits beside the checkout only")
    return HL_SAMPLE


@pytest.fixture
def standx_dir() -> Path:
    """The real StandX BTC-USD recording (hourly parquet) in ../shared (skips when a clone lacks it)."""
    if not (STANDX / "orderbook_BTC-USD_2026-01-06_10.parquet").exists():
        pytest.skip(f"{STANDX} is absent: the shared StandX recording sits beside the checkout only")
    return STANDX
