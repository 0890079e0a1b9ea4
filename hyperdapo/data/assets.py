"""Asset specifications and Hyperliquid's price and size rules.

Hyperliquid perps (docs, "Tick and lot size"): a price has at most 5 significant figures and at most
``6 - szDecimals`` decimals; an integer price is always allowed. A size has at most ``szDecimals``
decimals. So BTC near 117,000 USD trades on a 1 USD grid, ETH near 3,700 on 0.1, SOL near 200 on 0.01,
HYPE near 25 on 0.001.

The values of each asset live in ``conf/asset/<name>.yaml`` only; :class:`AssetConfig` is their typed
schema and checks them (:mod:`hyperdapo.data.config`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from hyperdapo.data.config import MAX_PERP_DECIMALS, AssetConfig

MAX_SIG_FIGS = 5
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def load_asset(name: str) -> AssetConfig:
    """The asset config from ``conf/asset/<name>.yaml`` (case-insensitive), typed and validated."""
    path = CONF_DIR / "asset" / f"{name.upper()}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (CONF_DIR / "asset").glob("*.yaml"))
        raise ValueError(f"asset={name!r}: unknown asset; choose one of {known} (files in {path.parent})")
    merged = OmegaConf.merge(OmegaConf.structured(AssetConfig), OmegaConf.load(path))
    return AssetConfig(**OmegaConf.to_container(merged))


def tick_size(price: float | np.ndarray, sz_decimals: int) -> float | np.ndarray:
    """Price tick in USD at ``price``: 5 significant figures, at most 6 - szDecimals decimals,
    integers always allowed (so the tick never exceeds 1 USD)."""
    price = np.asarray(price, dtype=np.float64)
    sig_tick = 10.0 ** (np.floor(np.log10(np.maximum(price, 1e-12))) - (MAX_SIG_FIGS - 1))
    tick = np.minimum(1.0, np.maximum(sig_tick, 10.0 ** -(MAX_PERP_DECIMALS - sz_decimals)))
    return float(tick) if tick.ndim == 0 else tick


def round_to_tick(price: float | np.ndarray, sz_decimals: int) -> float | np.ndarray:
    """``price`` rounded to the nearest point of its tick grid (USD)."""
    tick = tick_size(price, sz_decimals)
    rounded = np.round(np.asarray(price, dtype=np.float64) / tick) * tick
    decimals = MAX_PERP_DECIMALS - sz_decimals
    rounded = np.round(rounded, decimals)  # strip binary noise so 117000.1 prints as such
    return float(rounded) if np.ndim(rounded) == 0 else rounded
