"""Multi-turn prompts and answers (issue 22): a parent order worked every dt seconds, one turn per step.

A turn's user message is the decision's own prompt (market state and task at the decision time, :mod:`.render`)
followed by one line of what has happened since (:func:`describe_turn`): the step, the time left, how much is
executed (the position), the IS so far (the PnL, bps of the parent, cost positive), the working order and the queue
estimated ahead of it, the move of the mid since the decision and the spread now, and a compact history of the
agent's own answers. Every number is known at the step (the caller builds it from the episode's state at t_k).

Grammar of a turn's answer (one line; an optional reason on the next)::

    KEEP                  # leave the working order (or no order) as it is
    REPLACE -2.00 bps     # cancel it and place a limit of all that remains at -2.0 bps from the mid now
    CROSS                 # cancel it and send a market order for all that remains

Offsets are side-relative bps from the mid at the step, negative = passive, as the one-shot answer's
(:mod:`.answer`). The decoder is lenient about case and text around the action and strict about meaning; it never
raises: an answer it cannot read is ``unparsable``, an offset beyond the band ``outside_band``, a non-finite one
``non_finite_price``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hyperdapo.prompts.answer import _NUMBER, RejectReason
from hyperdapo.prompts.config import PromptConfig


class TurnKind(StrEnum):
    KEEP = "KEEP"
    REPLACE = "REPLACE"
    CROSS = "CROSS"


SEQUENTIAL_SYSTEM_PROMPT = (
    "You work one order for a perpetual future on Hyperliquid until its horizon. Every few seconds you see the market "
    "and your order, and answer with one line: 'KEEP' (leave your order as it is), 'REPLACE <offset> bps' (cancel it "
    "and place a limit for all that remains, the offset measured from the mid price now: negative is passive, "
    "positive aggressive) or 'CROSS' (cancel it and buy or sell all that remains at market). What is left at the "
    "horizon is completed by a market order."
)

_TURN_RE = re.compile(rf"\b(?P<kind>keep|replace|cross)\b(?:\s*(?:at|@|:)?\s*(?P<number>{_NUMBER})\s*(?:bps|bp)?)?",
                      re.IGNORECASE)


@dataclass(frozen=True)
class TurnAction:
    """A decoded turn answer: the action and, for REPLACE, its side-relative offset in bps (negative = passive)."""

    valid: bool
    reason: RejectReason
    kind: TurnKind | None = None
    offset_bps: float = math.nan


def format_turn(kind: TurnKind, offset_bps: float = math.nan) -> str:
    """The canonical answer text: ``KEEP``, ``REPLACE -2.00 bps``, ``CROSS``. Two decimals: a tick is ~0.1 bps of a
    BTC price (1 USD at 116k), and a peg to the touch sits half a spread, ~0.04 bps, from the mid."""
    return f"REPLACE {offset_bps:.2f} bps" if kind is TurnKind.REPLACE else kind.value


def parse_turn(text: str, *, band_bps: float = 200.0) -> TurnAction:
    """Decode a turn answer: the first ``KEEP``, ``CROSS`` or ``REPLACE <number> [bps]`` in ``text``. A REPLACE
    without a number is unparsable; an offset beyond ``band_bps`` is ``outside_band``. Never raises."""
    if not isinstance(text, str):
        return TurnAction(False, RejectReason.UNPARSABLE)
    match = _TURN_RE.search(text)
    if match is None:
        return TurnAction(False, RejectReason.UNPARSABLE)
    kind = TurnKind(match["kind"].upper())
    if kind is not TurnKind.REPLACE:
        return TurnAction(True, RejectReason.NONE, kind)
    if match["number"] is None:
        return TurnAction(False, RejectReason.UNPARSABLE, kind)
    try:
        value = float(re.sub(r"[\s$,]", "", match["number"]))
    except ValueError:
        return TurnAction(False, RejectReason.UNPARSABLE, kind)
    if not math.isfinite(value):
        return TurnAction(False, RejectReason.NON_FINITE_PRICE, kind)
    if abs(value) > band_bps:
        return TurnAction(False, RejectReason.OUTSIDE_BAND, kind, value)
    return TurnAction(True, RejectReason.NONE, kind, value)


def describe_turn(s: Mapping[str, float], history: Sequence[str], cfg: PromptConfig) -> str:
    """What happened since the decision, at step ``s["step"]`` (0-based) of ``s["n_steps"]``: ``s`` holds the
    episode's state at the step (keys of :class:`~hyperdapo.execution.sequential.StepState`: time_left_s,
    executed_qty, parent_qty, working_offset_bps (NaN: no order), queue_ahead_qty, touch_offset_bps, mid_move_bps
    (positive = against the order), spread_bps, is_bps); ``history`` the agent's earlier answers, oldest first.
    ``full``: a sentence; ``compact``: one short line for a tiny model."""
    step, n = int(s["step"]), int(s["n_steps"])
    working = math.isfinite(s["working_offset_bps"])
    queue = s["queue_ahead_qty"]
    if cfg.style == "compact":
        order = f"work {s['working_offset_bps']:+.2f}bps q{queue:.3g}" if working else "no order"
        hist = " ".join(_short(h) for h in history) or "-"
        return (f"k{step + 1}/{n} {s['time_left_s']:g}s | fill {s['executed_qty']:g}/{s['parent_qty']:g} | {order} "
                f"| touch {s['touch_offset_bps']:+.2f}bps mid {s['mid_move_bps']:+.1f}bps | IS {s['is_bps']:+.2f}bps "
                f"| hist {hist}")
    order = (f"your limit rests at {s['working_offset_bps']:+.2f} bps from mid with about "
             f"{'n/a' if not math.isfinite(queue) else format(queue, 'g')} ahead of it" if working else
             "you have no order working")
    return (f"Step {step + 1} of {n}, {s['time_left_s']:g} s left: executed {s['executed_qty']:g} of "
            f"{s['parent_qty']:g} (IS so far {s['is_bps']:+.2f} bps); {order}; the mid has moved "
            f"{s['mid_move_bps']:+.2f} bps against you since the decision, your side's best price is at "
            f"{s['touch_offset_bps']:+.2f} bps from mid, spread {s['spread_bps']:.2f} bps. "
            f"Your answers so far: {', '.join(history) or 'none'}.")


def _short(answer: str) -> str:
    """An earlier answer in the compact history: K, C, R-2.00 (or ? if it did not parse)."""
    a = parse_turn(answer)
    if not a.valid:
        return "?"
    return f"R{a.offset_bps:.2f}" if a.kind is TurnKind.REPLACE else a.kind.value[0]


def turn_messages(messages: Sequence[Mapping[str, str]], turn_text: str, cfg: PromptConfig) -> list[dict[str, str]]:
    """A turn's chat: the decision's one-shot messages (:func:`~hyperdapo.prompts.render.build_messages`) with the
    sequential system prompt (full style) and the turn line appended to the last user message."""
    body = [dict(m) for m in messages if m["role"] != "system"]
    body[-1]["content"] = f"{body[-1]['content']}\n{turn_text}"
    return ([{"role": "system", "content": SEQUENTIAL_SYSTEM_PROMPT}] if cfg.style == "full" else []) + body
