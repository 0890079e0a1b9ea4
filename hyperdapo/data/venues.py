"""Venues and their price and size rules: one asset on one venue is an :class:`Instrument`.

Rules (values in ``conf/venue/<name>.yaml``, typed by :class:`~hyperdapo.data.config.VenueConfig`):

- tick ``significant`` (Hyperliquid perps): a price has at most ``tick_sig_figs`` (5) significant figures and at
  most ``tick_max_decimals - szDecimals`` (6 - szDecimals) decimals; an integer price is always allowed. So BTC
  near 117,000 USD trades on a 1 USD grid, ETH near 3,700 on 0.1, SOL near 200 on 0.01, HYPE near 25 on 0.001.
- tick ``fixed`` (Binance futures): one tick per asset, ``tick_usd[<asset>]`` (BTCUSDT 0.1 USD).
- lot ``sz_decimals``: ``10 ** -szDecimals`` coins; lot ``fixed``: ``lot_size[<asset>]`` coins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from hyperdapo.data.assets import CONF_DIR
from hyperdapo.data.config import AssetConfig, LotRule, TickRule, VenueConfig

MAX_STEP_DECIMALS = 12  # a tick or lot is written with at most this many decimals


def load_venue(name: str) -> VenueConfig:
    """The venue config from ``conf/venue/<name>.yaml``, typed and validated."""
    path = CONF_DIR / "venue" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"venue={name!r}: unknown venue; choose one of {known} (files in {path.parent})")
    merged = OmegaConf.merge(OmegaConf.structured(VenueConfig), OmegaConf.load(path))
    return VenueConfig(**OmegaConf.to_container(merged))


def step_decimals(step: float) -> int:
    """The decimals needed to write ``step`` exactly (0.1 -> 1, 0.0025 -> 4, 5 -> 0)."""
    return next(d for d in range(MAX_STEP_DECIMALS + 1) if d == MAX_STEP_DECIMALS or round(step, d) == step)


def round_to_step(value: float | np.ndarray, step: float | np.ndarray, decimals: int) -> float | np.ndarray:
    """``value`` rounded to the nearest multiple of ``step``, binary noise stripped at ``decimals`` decimals
    (so 117000.1 prints as such)."""
    rounded = np.round(np.round(np.asarray(value, dtype=np.float64) / step) * step, decimals)
    return float(rounded) if np.ndim(rounded) == 0 else rounded


@dataclass(frozen=True)
class Instrument:
    """``asset`` traded on ``venue``: its price tick (USD) and lot (coins) by the venue's rules."""

    venue: VenueConfig
    asset: AssetConfig

    def __post_init__(self) -> None:
        self.venue.check_asset(self.asset.name)

    def tick_size(self, price_usd: float | np.ndarray) -> float | np.ndarray:
        """Price tick in USD at ``price_usd``."""
        if self.venue.tick_rule is TickRule.FIXED:
            tick = np.full(np.shape(price_usd), self.venue.tick_usd[self.asset.name])
        else:
            price = np.asarray(price_usd, dtype=np.float64)
            sig_tick = 10.0 ** (np.floor(np.log10(np.maximum(price, 1e-12))) - (self.venue.tick_sig_figs - 1))
            tick = np.minimum(1.0, np.maximum(sig_tick, 10.0 ** -self._max_price_decimals))
        return float(tick) if np.ndim(tick) == 0 else tick

    @property
    def _max_price_decimals(self) -> int:
        if self.venue.tick_rule is TickRule.FIXED:
            return step_decimals(self.venue.tick_usd[self.asset.name])
        return self.venue.tick_max_decimals - self.asset.sz_decimals

    def round_to_tick(self, price_usd: float | np.ndarray) -> float | np.ndarray:
        """``price_usd`` rounded to the nearest point of its tick grid (USD)."""
        return round_to_step(price_usd, self.tick_size(price_usd), self._max_price_decimals)

    @property
    def lot_size(self) -> float:
        """The smallest size step, coins."""
        if self.venue.lot_rule is LotRule.FIXED:
            return self.venue.lot_size[self.asset.name]
        return 10.0 ** -self.asset.sz_decimals

    def round_to_lot(self, qty: float | np.ndarray) -> float | np.ndarray:
        """``qty`` (coins) rounded to whole lots, at least one lot."""
        lot = self.lot_size
        return np.maximum(round_to_step(qty, lot, step_decimals(lot)), lot)
