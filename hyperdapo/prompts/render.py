"""Render a decision's market state, trading context and objective as chat messages for the policy.

The state is plain language with real prices and units, e.g.::

    BTC mid $117,000.5, spread 0.9 bps, imbalance +0.20 (bid-heavy), 5-min volatility 3.1 bps (calm) ...

Each number that carries short-horizon information also gets a coarse word (bid-heavy / balanced /
ask-heavy, calm / volatile, buyers / sellers) so that a small model can read it. A feature that the data
cannot provide (trade features on book-only data) is written as "n/a", never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hyperdapo.data.schema import Side
from hyperdapo.features.config import Objective
from hyperdapo.prompts.config import PromptConfig

OBJECTIVE_TEXT = {
    Objective.AGGRESSIVE: "aggressive: fill soon; a missed fill that ends in a market order costs more than "
    "paying up now.",
    Objective.PATIENT: "patient: earn the spread; wait for a better price and accept a market-order cleanup "
    "at the horizon if it does not fill.",
    Objective.RISK_AVERSE: "risk_averse: keep the worst case small; avoid prices that fill only when the market "
    "has already moved against you.",
}

SYSTEM_PROMPT = (
    "You place one limit order for a perpetual future on Hyperliquid. Answer with one line in the form "
    "'BUY LIMIT <offset> bps' or 'SELL LIMIT <offset> bps', where the offset is measured from the mid price: "
    "negative is passive (a buy below mid, a sell above mid: a better price, less likely to fill), positive is "
    "aggressive. An absolute price such as 'BUY LIMIT 116883.0' is also accepted. Unfilled orders are completed "
    "by a market order at the horizon. You may add a one-line reason on the next line."
)


def _num(value: float, fmt: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def _lean(value: float, at: float, pos: str, neg: str, mid: str) -> str:
    if value is None or not math.isfinite(value):
        return "unknown"
    return pos if value > at else neg if value < -at else mid


def _price(value: float) -> str:
    return f"${value:,.{max(1, 4 - int(math.floor(math.log10(value))))}f}" if value < 1000 else f"${value:,.1f}"


def describe_state(asset: str, f: Mapping[str, float], cfg: PromptConfig) -> str:
    """The market state at t in one paragraph. ``f`` is one row of the feature table (raw and z-scored)."""
    imb = f["imbalance_top5"]
    flow_z = f.get("trade_flow_5m_z", math.nan)
    vol_z = f.get("volatility_5m_bps_z", math.nan)
    vol_word = "unknown" if not math.isfinite(vol_z) else ("volatile" if vol_z > cfg.volatile_z else "calm")
    return (
        f"{asset} mid {_price(f['mid_usd'])}, bid {_price(f['best_bid_usd'])}, ask {_price(f['best_ask_usd'])}, "
        f"spread {_num(f['spread_bps'], '.1f')} bps. "
        f"Book imbalance (top 5) {_num(imb, '+.2f')} "
        f"({_lean(imb, cfg.imbalance_words_at, 'bid-heavy', 'ask-heavy', 'balanced')}), "
        f"microprice {_num(f['microprice_offset_bps'], '+.2f')} bps from mid, "
        f"book pressure {_num(f['book_pressure_50bps'], '+.2f')}. "
        f"5-min volatility {_num(f['volatility_5m_bps'], '.2f')} bps ({vol_word}); "
        f"momentum 1/5/15 min {_num(f['momentum_1m_bps'], '+.1f')}/{_num(f['momentum_5m_bps'], '+.1f')}/"
        f"{_num(f['momentum_15m_bps'], '+.1f')} bps. "
        f"5-min trade flow {_num(f['trade_flow_5m'], '+.3g')} "
        f"({_lean(flow_z, 0.5, 'buyers', 'sellers', 'mixed')}), "
        f"{_num(f['trade_intensity_per_min'], '.1f')} trades/min, "
        f"mid vs 5-min VWAP {_num(f['mid_vs_vwap_5m_bps'], '+.1f')} bps."
    )


def describe_task(side: Side, qty: float, horizon_s: float, objective: Objective) -> str:
    """The trading context and the user's objective with its trade-off; the side comes last, right before
    the answer, so that even a tiny model finds it."""
    return (
        f"Task: trade {qty:g} within {horizon_s:g} s (position 0, PnL 0). "
        f"Objective {OBJECTIVE_TEXT[Objective(objective)]}\nSide: {side.name}"
    )


def build_messages(
    asset: str,
    features: Mapping[str, float],
    side: Side,
    qty: float,
    horizon_s: float,
    objective: Objective,
    cfg: PromptConfig,
    few_shot: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    """Chat messages (system, few-shot user/assistant pairs, user) for one decision; the compact style has
    no system prompt and a one-line state."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if cfg.style == "full" else []
    for user, assistant in few_shot:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if cfg.style == "full":
        user = describe_state(asset, features, cfg) + "\n" + describe_task(Side(side), qty, horizon_s, objective)
    else:
        user = describe_compact(asset, features, Side(side), objective, cfg)
    messages.append({"role": "user", "content": user})
    return messages


BOOK_DEPTH_Z = {"depth": "depth_ratio_10bps_z", "press": "book_pressure_50bps_z"}  # prompt.book_depth: word -> feature


def describe_compact(asset: str, f: Mapping[str, float], side: Side, objective: Objective, cfg: PromptConfig) -> str:
    """The same state in one short line for a small model, side first and the words relative to the order, e.g.
    ``BTC BUY book against flow with calm | imb +0.3 flow -1.2z vol 0.5bps mom5 -10bps | patient``.

    "against" means the pressure pushes the price away from a passive order of this side (a bid-heavy book or
    net buying for a BUY: side * imbalance > 0), "with" the opposite. A 2-layer model did not learn the XOR of
    the side and a raw bid-/ask-heavy word from clean labels in 400 SFT steps; it learns the side-relative word.
    ``prompt.book_depth`` adds ``depth +0.4z press -1.2z``: the depth-ratio and book-pressure z-scores times the side
    (positive = against, as the words).
    """
    imb, flow_z, vol_z = f["imbalance_top5"], f.get("trade_flow_5m_z", math.nan), f.get("volatility_5m_bps_z", math.nan)
    sign = float(side)
    words = " ".join([
        "book " + _lean(sign * imb, cfg.imbalance_words_at, "against", "with", "neutral"),
        "flow " + _lean(sign * flow_z, 0.5, "against", "with", "mixed"),
        "unknown" if not math.isfinite(vol_z) else ("volatile" if vol_z > cfg.volatile_z else "calm"),
    ])
    flow = f"{flow_z:+.1f}z" if math.isfinite(flow_z) else "n/a"
    depth = "".join(f" {word} {_num(sign * f[name], '+.1f')}z" for word, name in BOOK_DEPTH_Z.items()
                    if cfg.book_depth)
    return (f"{asset} {side.name} {words} | imb {_num(imb, '+.1f')} flow {flow} "
            f"vol {_num(f['volatility_5m_bps'], '.1f')}bps mom5 {_num(f['momentum_5m_bps'], '+.0f')}bps{depth} "
            f"| {Objective(objective).value}")


def compact_z_features(cfg: PromptConfig) -> dict[str, bool]:
    """The causal z-scored features (:mod:`hyperdapo.features.compute`) behind the numbers of the compact line, each
    with whether it is shown side-relative (multiplied by the side, +1 buy / -1 sell, so positive = against a passive
    order): the inputs of a teacher whose rule the model can see in its prompt (``algo.label_teacher=ridge``)."""
    shown = {"imbalance_top5_z": True, "trade_flow_5m_z": True, "volatility_5m_bps_z": False, "momentum_5m_bps_z": True}
    return shown | ({name: True for name in BOOK_DEPTH_Z.values()} if cfg.book_depth else {})


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt string through the tokenizer's own chat template, ready for generation."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
