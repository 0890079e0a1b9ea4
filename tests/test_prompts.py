"""Prompt text: the compact line states the book and the flow relative to the order's side."""

from __future__ import annotations

import math

import pytest

from hyperdapo.data.schema import Side
from hyperdapo.features.config import Objective
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.prompts.render import compact_z_features, describe_compact

ROW = {"imbalance_top5": 0.3, "trade_flow_5m_z": -1.2, "volatility_5m_bps_z": 0.0, "volatility_5m_bps": 0.5,
       "momentum_5m_bps": -10.0}


@pytest.mark.parametrize(("side", "words"), [
    (Side.BUY, "BTC BUY book against flow with calm"),  # bid-heavy book pushes the price up, away from a buy limit
    (Side.SELL, "BTC SELL book with flow against calm"),
])
def test_compact_words_are_relative_to_the_side(side, words):
    line = describe_compact("BTC", ROW, side, Objective.PATIENT, PromptConfig(style="compact"))
    assert line == f"{words} | imb +0.3 flow -1.2z vol 0.5bps mom5 -10bps | patient"


def test_compact_line_says_unknown_for_missing_trade_features():
    row = {**ROW, "imbalance_top5": 0.05, "trade_flow_5m_z": math.nan}
    line = describe_compact("ETH", row, Side.BUY, Objective.AGGRESSIVE, PromptConfig(style="compact"))
    assert line.startswith("ETH BUY book neutral flow unknown calm | imb +0.1 flow n/a vol 0.5bps")


@pytest.mark.parametrize(("side", "depth"), [(Side.BUY, "depth +0.4z press -1.2z"),
                                             (Side.SELL, "depth -0.4z press +1.2z")])
def test_book_depth_shows_the_depth_z_scores_side_relative(side, depth):
    row = {**ROW, "depth_ratio_10bps_z": 0.4, "book_pressure_50bps_z": -1.2}
    line = describe_compact("BTC", row, side, Objective.PATIENT, PromptConfig(style="compact", book_depth=True))
    assert line.endswith(f"mom5 -10bps {depth} | patient")
    assert "depth" not in describe_compact("BTC", row, side, Objective.PATIENT, PromptConfig(style="compact"))
    assert set(compact_z_features(PromptConfig(book_depth=True))) - set(compact_z_features(PromptConfig())) == {
        "depth_ratio_10bps_z", "book_pressure_50bps_z"}
