"""The answer decoder: grammar, leniency, validation reasons, tick rounding, and a fuzz test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperdapo.data.assets import load_asset
from hyperdapo.data.schema import Side
from hyperdapo.data.venues import Instrument, load_venue
from hyperdapo.prompts.answer import RejectReason, format_answer, parse_answer

MID = 117_000.5  # BTC arrival mid, USD
BTC_HL = Instrument(load_venue("hyperliquid"), load_asset("BTC"))  # 5 significant figures: 1 USD tick near 117k
BTC_BINANCE = Instrument(load_venue("binance_futures"), load_asset("BTC"))  # BTCUSDT: 0.1 USD tick


def parse(text, side=Side.BUY, mid=MID, band_bps=200.0, instrument=BTC_HL):
    return parse_answer(text, side=side, mid_usd=mid, instrument=instrument, band_bps=band_bps)


def test_absolute_price_on_tick():
    a = parse("BUY LIMIT 116883.0")
    assert a.valid and a.reason is RejectReason.NONE and not a.off_tick
    assert a.limit_px == 116_883.0
    # side-relative offset: (116883 / 117000.5 - 1) * 1e4 = -1.00427... bps (passive buy)
    assert a.offset_bps == pytest.approx((116_883.0 / MID - 1) * 1e4)


def test_offset_answer_buy_and_sell_mirror():
    buy = parse("BUY LIMIT -11.0 bps")
    sell = parse("SELL LIMIT -11.0 bps", side=Side.SELL)
    # buy: 117000.5 * (1 - 11e-4) = 116871.79945 -> 116872 on the 1 USD grid
    assert buy.limit_px == 116_872.0
    # sell: 117000.5 * (1 + 11e-4) = 117129.20055 -> 117129
    assert sell.limit_px == 117_129.0
    assert not buy.off_tick and not sell.off_tick


@pytest.mark.parametrize(
    "text",
    ["buy limit $116,883", "  Buy LIMIT 116,883.0 because the book is bid-heavy", "BUY 116883", "BUY @ $116883.00"],
)
def test_lenient_forms(text):
    a = parse(text)
    assert a.valid and a.limit_px == 116_883.0


def test_reason_on_second_line_is_ignored():
    a = parse(format_answer(Side.BUY, -5.0, reason="imbalance is +0.3, wait for a dip"))
    assert a.valid and a.offset_bps == pytest.approx(-5.0, abs=0.1)


def test_off_tick_price_is_rounded_and_flagged():
    a = parse("BUY LIMIT 116883.4")
    assert a.valid and a.off_tick and a.limit_px == 116_883.0


def test_prices_round_to_the_venues_tick():
    # Binance BTCUSDT ticks by 0.1 USD: 116883.4 is on its grid, 116883.44 is not (-> 116883.4)
    assert parse("BUY LIMIT 116883.4", instrument=BTC_BINANCE).limit_px == 116_883.4
    a = parse("BUY LIMIT 116883.44", instrument=BTC_BINANCE)
    assert a.valid and a.off_tick and a.limit_px == 116_883.4
    # -11 bps from 117000.5: 116871.79945 -> 116871.8 on Binance's 0.1 grid (116872 on Hyperliquid's 1 USD grid)
    assert parse("BUY LIMIT -11.0 bps", instrument=BTC_BINANCE).limit_px == 116_871.8
    assert BTC_BINANCE.lot_size == 0.001 and BTC_HL.lot_size == 1e-5
    assert BTC_BINANCE.round_to_lot(0.01234) == 0.012 and BTC_HL.round_to_lot(0.000001) == 1e-5  # at least one lot


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hold", RejectReason.UNPARSABLE),
        ("", RejectReason.UNPARSABLE),
        ("SELL LIMIT 117100", RejectReason.WRONG_SIDE),
        ("BUY LIMIT 0", RejectReason.NON_POSITIVE_PRICE),
        ("BUY LIMIT -20000 bps", RejectReason.NON_POSITIVE_PRICE),
        ("BUY LIMIT 100000", RejectReason.OUTSIDE_BAND),  # -1453 bps
        ("BUY LIMIT 250 bps", RejectReason.OUTSIDE_BAND),
    ],
)
def test_invalid_answers_name_the_reason(text, reason):
    a = parse(text)
    assert not a.valid and a.reason is reason and math.isnan(a.limit_px)


@pytest.mark.parametrize("mid", [math.inf, -math.inf, math.nan, 0.0, -117_000.5])
@pytest.mark.parametrize("text", ["BUY LIMIT -5.0 bps", "BUY LIMIT 116883.0"])
def test_bad_mid_rejects_every_answer(mid, text):
    # issue 10: mid=inf used to give valid=True with limit_px=inf
    a = parse(text, mid=mid)
    assert not a.valid and a.reason is RejectReason.BAD_MID and math.isnan(a.limit_px)


@pytest.mark.parametrize(
    ("text", "mid"),
    [
        ("BUY LIMIT " + "9" * 308 + " bps", MID),  # a finite 1e308 bps: mid * (1 + 1e304) = inf USD
        ("SELL LIMIT 117000", 5e-324),  # a subnormal mid: offset 117000 / 5e-324 = inf bps
    ],
)
def test_overflowing_price_or_offset_is_invalid(text, mid):
    side = Side.BUY if text.startswith("BUY") else Side.SELL
    a = parse(text, side=side, mid=mid)
    assert not a.valid and a.reason is RejectReason.NON_FINITE_PRICE
    assert math.isnan(a.limit_px)


def test_band_is_configurable():
    assert parse("BUY LIMIT -150 bps").valid
    assert parse("BUY LIMIT -150 bps", band_bps=100).reason is RejectReason.OUTSIDE_BAND


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(), st.from_regex(r"(?i)(buy|sell) (limit )?[-+$,.0-9e ]{0,30}( bps)?", fullmatch=True)))
def test_fuzz_never_raises(text):
    a = parse(text)
    assert isinstance(a.reason, RejectReason)
    assert a.valid == (a.reason is RejectReason.NONE)
    if a.valid:
        assert a.limit_px > 0 and abs(a.offset_bps) <= 200.0
        assert math.isfinite(a.limit_px) and math.isfinite(a.offset_bps)


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"(?i)buy (limit )?[-+]?[0-9]{1,12}(\.[0-9]{0,4})?( bps)?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_fuzz_any_mid_gives_a_finite_order_or_a_reason(text, mid):
    a = parse(text, mid=mid)
    assert a.valid == (a.reason is RejectReason.NONE)
    if a.valid:
        assert math.isfinite(mid) and mid > 0
        assert 0 < a.limit_px < math.inf and abs(a.offset_bps) <= 200.0
