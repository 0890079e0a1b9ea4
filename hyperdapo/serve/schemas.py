"""The request and response bodies of ``POST /v1/decide`` (pydantic: a bad field is a 422 naming it).

Prices in USD, sizes and quantities in coins, times in ms since the epoch (UTC, as Hyperliquid sends them),
offsets in side-relative bps of the arrival mid (negative = passive). A level may be Hyperliquid's own
``{"px": "42727.0", "sz": "0.02265", "n": 1}`` (strings are read as numbers). Every number must be finite: a
``NaN`` or ``Infinity`` (or ``1e999``, which JSON parsers read as infinity) is a 422 naming its field; an
unavailable feature is left out of ``features``, not sent as NaN.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hyperdapo.features.config import Objective
from hyperdapo.pipeline.trained import missing_features

FINITE = ConfigDict(allow_inf_nan=False)  # JSON has no NaN or infinity: reject them wherever a number is read


class Level(BaseModel):
    model_config = FINITE

    px: float = Field(gt=0, description="price, USD")
    sz: float = Field(ge=0, description="size, coins")
    n: int | None = Field(None, description="order count (Hyperliquid's levels carry it; unused)")


class Book(BaseModel):
    """One L2 snapshot: bids best first (descending), asks best first (ascending)."""

    model_config = FINITE
    ts_ms: int = Field(gt=0, description="exchange time, ms since the epoch (UTC)")
    bids: list[Level] = Field(min_length=1)
    asks: list[Level] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Book:
        bids, asks = [lv.px for lv in self.bids], [lv.px for lv in self.asks]
        if any(nxt >= prev for prev, nxt in zip(bids, bids[1:], strict=False)):
            raise ValueError("book.bids: prices must be strictly descending (best first)")
        if any(nxt <= prev for prev, nxt in zip(asks, asks[1:], strict=False)):
            raise ValueError("book.asks: prices must be strictly ascending (best first)")
        if bids[0] >= asks[0]:
            raise ValueError(f"book: crossed (best bid {bids[0]} >= best ask {asks[0]})")
        return self


class Trade(BaseModel):
    model_config = FINITE

    ts_ms: int = Field(gt=0, description="exchange time, ms since the epoch (UTC)")
    px: float = Field(gt=0, description="price, USD")
    sz: float = Field(gt=0, description="size, coins")
    side: Literal["buy", "sell"] = Field(description="taker (aggressor) side")


class DecideRequest(BaseModel):
    """One decision: either ``book`` (+ ``trades``, omitted for book-only data) or a ready ``features`` row."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    asset: str = Field(description="e.g. BTC; a policy for it must be loaded")
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0, description="coins")
    objective: Objective
    horizon_s: float | None = Field(None, gt=0, description="fill horizon, s (default: the policy's training one)")
    book: Book | None = None
    trades: list[Trade] | None = Field(None, description="recent trades up to the book's time (with book only)")
    features: dict[str, float] | None = Field(
        None, description="one feature-table row (hyperdapo.features.compute): raw values and <name>_z; "
        "mid_usd, best_bid_usd and best_ask_usd are required (best bid < best ask, mid between them), any other "
        "missing one reads as unavailable")
    return_answer: bool = Field(False, description="include the policy's answer text")

    @field_validator("features")
    @classmethod
    def _required_features(cls, features: dict[str, float] | None) -> dict[str, float] | None:
        if features is None:
            return None
        if missing := missing_features(features):
            raise ValueError(f"features: {', '.join(missing)} required (finite, > 0)")
        bid, ask, mid = features["best_bid_usd"], features["best_ask_usd"], features["mid_usd"]
        if bid >= ask:
            raise ValueError(f"features: crossed book (best_bid_usd {bid} >= best_ask_usd {ask})")
        if not bid <= mid <= ask:
            raise ValueError(f"features: mid_usd {mid} is outside the touch [{bid}, {ask}]: send the mid of this "
                             "book")
        return features

    @model_validator(mode="after")
    def _one_market_state(self) -> DecideRequest:
        if (self.book is None) == (self.features is None):
            raise ValueError("give exactly one of book (with trades) or features")
        if self.trades is not None and self.book is None:
            raise ValueError("trades: only with book (a features row already holds the trade features)")
        return self


class DecideResponse(BaseModel):
    asset: str
    side: Literal["buy", "sell"]
    quantity: float = Field(description="coins")
    objective: Objective
    valid: bool = Field(description="the answer parsed into an order on the right side within the band")
    reason: str | None = Field(description="why the answer is invalid (RejectReason); None when valid")
    limit_px: float | None = Field(description="limit price on the tick grid, USD; None when invalid")
    offset_bps: float | None = Field(description="side-relative offset from mid, bps (negative = passive)")
    mid_usd: float = Field(description="arrival mid the offset is measured from, USD")
    answer: str | None = Field(None, description="the policy's answer text (with return_answer)")
    policy: str = Field(description="the policy directory")
