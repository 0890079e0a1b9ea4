"""The answer grammar the policy must follow, and the lenient decoder + validator of its answers.

Grammar (one line, optionally followed by a one-line reason on the next line)::

    BUY LIMIT 116883.0          # an absolute limit price in USD
    BUY LIMIT -11.0 bps         # an offset from the arrival mid, in bps, side-relative (below)

Offset sign convention (side-relative, so the same number means the same thing for buys and sells):
``limit_px = mid * (1 + side_sign * offset_bps / 1e4)``. Negative = passive (a buy below mid, a sell above
mid: a better price if filled, less likely to fill); positive = aggressive (towards or through the far side).

The decoder is lenient about case, ``$``, thousands separators, ``+`` signs, and text around the order, and
strict about meaning: a wrong side, a non-positive price, or a price outside the band around mid (default
+-200 bps) is invalid with a named :class:`RejectReason`; so is every answer when the arrival mid is not a
finite positive price, and an answer whose price or offset overflows to inf / nan. An off-tick price is
rounded to the venue's tick grid for the asset and flagged (``off_tick``), not rejected. It never raises on any string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from hyperdapo.data.schema import Side
from hyperdapo.data.venues import Instrument


class RejectReason(StrEnum):
    """Why an answer was not turned into an order. ``NONE`` for a valid answer."""

    NONE = "none"
    UNPARSABLE = "unparsable"
    WRONG_SIDE = "wrong_side"
    NON_POSITIVE_PRICE = "non_positive_price"
    OUTSIDE_BAND = "outside_band"
    BAD_MID = "bad_mid"  # the arrival mid is not a finite positive price: no answer can be priced against it
    NON_FINITE_PRICE = "non_finite_price"  # the limit price or its offset from mid overflowed (inf / nan)


_NUMBER = r"[-+]?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[-+]?\$?\s*\.\d+"
_ORDER_RE = re.compile(
    rf"\b(?P<side>buy|sell)\b\s+(?:limit\s*)?(?:order\s*)?(?:at\s*|@\s*|price\s*|:\s*)?"
    rf"(?P<number>{_NUMBER})\s*(?P<bps>bps|bp|basis\s+points)?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAction:
    """A decoded answer. Prices in USD, offsets in side-relative bps (negative = passive)."""

    valid: bool
    reason: RejectReason
    side: Side | None = None
    limit_px: float = math.nan  # on the tick grid when valid
    offset_bps: float = math.nan  # side-relative offset of limit_px from the arrival mid
    off_tick: bool = False  # an absolute price answer was not on the tick grid and was rounded


def format_answer(side: Side, offset_bps: float, reason: str | None = None) -> str:
    """The canonical answer text, e.g. ``BUY LIMIT -11.0 bps`` (+ a reason line)."""
    text = f"{side.name} LIMIT {offset_bps:.1f} bps"
    return text if reason is None else f"{text}\n{reason}"


def offset_to_price(mid_usd, side, offset_bps):
    """Limit price in USD for a side-relative offset (bps) from mid, not yet on the tick grid: the project's one
    offset -> price rule (answers, the task's candidate orders, baselines). Scalars or broadcastable arrays."""
    return mid_usd * (1.0 + np.asarray(side, dtype=np.float64) * offset_bps / 1e4)


def price_to_offset(mid_usd: float, side: Side, price_usd: float) -> float:
    """Side-relative offset in bps of ``price_usd`` from ``mid_usd`` (negative = passive)."""
    return int(side) * (price_usd / mid_usd - 1.0) * 1e4


def parse_answer(
    text: str, *, side: Side, mid_usd: float, instrument: Instrument, band_bps: float = 200.0
) -> ParsedAction:
    """Decode ``text`` into an order for a decision on ``side`` at arrival mid ``mid_usd``, its price on the tick
    grid of ``instrument`` (the asset on its venue).

    The first ``BUY|SELL [LIMIT] <number> [bps]`` in the text is the order; anything else is ignored.
    Never raises: anything it cannot read is ``RejectReason.UNPARSABLE``; a non-finite or non-positive
    ``mid_usd`` rejects every answer with ``RejectReason.BAD_MID``.
    """
    if not (math.isfinite(mid_usd) and mid_usd > 0):
        return ParsedAction(False, RejectReason.BAD_MID)
    if not isinstance(text, str):
        return ParsedAction(False, RejectReason.UNPARSABLE)
    match = _ORDER_RE.search(text)
    if match is None:
        return ParsedAction(False, RejectReason.UNPARSABLE)
    answer_side = Side.BUY if match["side"].lower() == "buy" else Side.SELL
    try:
        value = float(re.sub(r"[\s$,]", "", match["number"]))
    except ValueError:
        return ParsedAction(False, RejectReason.UNPARSABLE)
    if not math.isfinite(value):
        return ParsedAction(False, RejectReason.UNPARSABLE)
    if answer_side != side:
        return ParsedAction(False, RejectReason.WRONG_SIDE, side=answer_side)
    raw_px = offset_to_price(mid_usd, side, value) if match["bps"] else value
    if not raw_px > 0:
        return ParsedAction(False, RejectReason.NON_POSITIVE_PRICE, side=side)
    limit_px = instrument.round_to_tick(raw_px)
    offset_bps = price_to_offset(mid_usd, side, limit_px)
    if not (math.isfinite(limit_px) and math.isfinite(offset_bps)):
        return ParsedAction(False, RejectReason.NON_FINITE_PRICE, side=side)
    if abs(offset_bps) > band_bps or not limit_px > 0:
        return ParsedAction(False, RejectReason.OUTSIDE_BAND, side=side, offset_bps=offset_bps)
    # An offset answer lands between ticks by construction; only an absolute price can be "off tick".
    off_tick = not match["bps"] and not math.isclose(limit_px, raw_px, rel_tol=0.0, abs_tol=1e-9 * raw_px)
    return ParsedAction(True, RejectReason.NONE, side, limit_px, offset_bps, off_tick)
