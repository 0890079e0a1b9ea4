"""Live paper trading: a trained policy trades Hyperliquid's public market stream as it arrives (read only: no order
is ever sent), beside the baselines.

The websocket (``url``) is subscribed to the asset's ``l2Book`` and ``trades``. Every book updates the causal
features of the service (:class:`~hyperdapo.serve.market_state.MarketState`) and the recording; when a book's
time reaches the next decision time (every ``decisions.every_s`` s of market time, from the first book) the policy
is asked for one order (side, quantity and objective drawn by the seeded rule of the decisions). Once the recording
covers a decision's reward window (``horizon_s + adverse_horizon_s``) the order is simulated on it by the backtest's
fill simulator (:class:`~hyperdapo.execution.task.ExecutionTask`: latency, horizon, cleanup, fees), beside the
baselines that need no training period (market, fixed offsets, twap, oracle; vwap and analytic are fit on one),
and its line is written to ``paper_log.jsonl``. The run stops after ``max_decisions`` scored decisions, after
``duration_s`` wall seconds or when the server closes the stream; decisions whose window is not yet covered are
dropped. Times in microseconds (``_us``), prices USD, sizes coins.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import websockets

from hyperdapo.data.schema import MarketData, Side
from hyperdapo.data.venues import Instrument
from hyperdapo.evaluation.baselines import baseline_outcomes, llm_outcomes
from hyperdapo.execution.tape import MemoryTape
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import Objective
from hyperdapo.features.decision_set import DecisionSet, Split
from hyperdapo.paper.replay import check_asset, order_row, summarize, utc_text
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.evaluate_run import CANDIDATE
from hyperdapo.pipeline.trained import DecisionInput, Order, TrainedPolicy, answer_prefix
from hyperdapo.serve.market_state import MarketState, book_snapshots, trade_tape

log = logging.getLogger(__name__)
US_PER_S = 1_000_000
US_PER_MS = 1_000
HYPERLIQUID_WS = "wss://api.hyperliquid.xyz/ws"


@dataclass(frozen=True)
class LiveDecision:
    """One decision of the live run and the policy's order."""

    ts_us: int
    side: Side
    qty: float  # coins
    objective: Objective
    features: dict[str, float]
    order: Order
    offset_bps: float  # the order's offset, or the fallback's when the answer is invalid


def subscriptions(coin: str) -> list[dict]:
    """The subscribe messages of ``coin``'s book and trades."""
    return [{"method": "subscribe", "subscription": {"type": kind, "coin": coin}} for kind in ("l2Book", "trades")]


async def hyperliquid_messages(url: str, coin: str) -> AsyncIterator[dict]:
    """The decoded messages of the websocket at ``url`` subscribed to ``coin``; ends when the server closes."""
    async with websockets.connect(url) as ws:
        for sub in subscriptions(coin):
            await ws.send(json.dumps(sub))
        try:
            async for raw in ws:
                yield json.loads(raw)
        except websockets.ConnectionClosed:
            log.info("the server closed the stream")


def parse_book(data: dict) -> tuple[int, list[tuple[float, float]], list[tuple[float, float]]]:
    """(ts_us, bids, asks) of an ``l2Book`` message's data; levels (price USD, size coins), best first."""
    bids, asks = ([(float(lv["px"]), float(lv["sz"])) for lv in side] for side in data["levels"])
    return int(data["time"]) * US_PER_MS, bids, asks


def parse_trades(data: list[dict]) -> list[tuple[int, float, float, int]]:
    """(ts_us, price USD, size coins, taker side: +1 buy ("B"), -1 sell ("A")) of a ``trades`` message's data."""
    return [(int(t["time"]) * US_PER_MS, float(t["px"]), float(t["sz"]), 1 if t["side"] == "B" else -1) for t in data]


def draw_decision(k: int, mid_usd: float, cfg: RunConfig) -> tuple[Side, float, Objective]:
    """Side, quantity (coins, on the lot grid) and objective of the ``k``-th live decision: the seeded rule of
    :func:`hyperdapo.features.decision_set.draw_decisions` (buy share, objective weights, USD notional range)."""
    dc = cfg.decisions
    rng = np.random.default_rng([dc.seed, k])
    side = Side.BUY if rng.random() < dc.buy_share else Side.SELL
    names = list(dc.objective_weights)
    probs = np.array([dc.objective_weights[n] for n in names], dtype=np.float64)
    objective = Objective(names[rng.choice(len(names), p=probs / probs.sum())])
    notional = rng.uniform(dc.notional_min_usd, dc.notional_max_usd)
    qty = float(Instrument(cfg.venue, cfg.asset).round_to_lot(np.array([notional / mid_usd]))[0])
    return side, qty, objective


class LiveSession:
    """The recorded stream, the features, the pending and scored decisions of one live run."""

    def __init__(self, policy: TrainedPolicy, cfg: RunConfig, logf, max_decisions: int):
        self.policy, self.cfg, self.logf, self.max_decisions = policy, cfg, logf, max_decisions
        self.state = MarketState(cfg.asset.name, cfg.features)
        self.books: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.trades: list[tuple[int, float, float, int]] = []
        self.unbooked: list[tuple[int, float, float, int]] = []  # trades newer than the newest book
        self.pending: list[LiveDecision] = []
        self.scored: list[LiveDecision] = []
        self.next_us: int | None = None
        self.fallback_bps = cfg.evaluate.baselines.fixed_offsets_bps[cfg.evaluate.fallback]

    @property
    def done(self) -> bool:
        return len(self.scored) >= self.max_decisions

    def on_trades(self, trades: list[tuple[int, float, float, int]]) -> None:
        self.trades.extend(trades)
        self.unbooked.extend(trades)

    async def on_book(self, ts_us: int, bids: list, asks: list) -> None:
        """Record a book; decide when its time reaches the next decision time; score the covered decisions."""
        if self.books and ts_us < self.books[-1][0]:
            return  # out of order: the recording and the features only move forward
        now = [t for t in self.unbooked if t[0] <= ts_us]
        self.unbooked = [t for t in self.unbooked if t[0] > ts_us]
        self.state.record(ts_us, bids, asks, now)
        (bid_px, bid_sz), (ask_px, ask_sz) = (np.asarray(lv, dtype=np.float64).reshape(-1, 2).T for lv in (bids, asks))
        self.books.append((ts_us, bid_px, bid_sz, ask_px, ask_sz))
        if self.next_us is None:
            self.next_us = ts_us
        if ts_us >= self.next_us and len(self.scored) + len(self.pending) < self.max_decisions:
            self.next_us = ts_us + int(self.cfg.decisions.every_s * US_PER_S)
            self.pending.append(await asyncio.to_thread(self.decide, ts_us))
        window_us = int(self.cfg.decisions.window_s * US_PER_S)
        while self.pending and self.pending[0].ts_us + window_us <= ts_us:
            self.score(self.pending.pop(0))

    def decide(self, ts_us: int) -> LiveDecision:
        """The policy's order at ``ts_us`` from the features there."""
        features = self.state.features_at(ts_us)
        side, qty, objective = draw_decision(len(self.scored) + len(self.pending), features["mid_usd"], self.cfg)
        order = self.policy.decide([DecisionInput(features, side, qty, objective, self.cfg.decisions.horizon_s)])[0]
        offset = order.offset_bps if order.valid else self.fallback_bps
        return LiveDecision(ts_us, side, qty, objective, features, order, offset)

    def task(self, decisions: list[LiveDecision]) -> ExecutionTask:
        """The recording so far with ``decisions``, scored as the backtest scores (fill model, venue, reward)."""
        c = self.cfg
        market = MarketData(c.asset.name, book_snapshots(self.books), trade_tape(sorted(self.trades)) if self.trades
                            else None)
        ds = DecisionSet(c.asset.name, np.array([d.ts_us for d in decisions], dtype=np.int64),
                         np.array([int(d.side) for d in decisions], dtype=np.int8),
                         np.array([d.qty for d in decisions]),
                         np.array([d.objective.value for d in decisions]), np.full(len(decisions), Split.TEST.value),
                         c.decisions.horizon_s, c.decisions.adverse_horizon_s)
        mids = np.array([d.features["mid_usd"] for d in decisions])
        return ExecutionTask(c.asset, c.venue, MemoryTape(market), ds, [d.features for d in decisions], mids, [],
                             c.execution, c.reward, c.prompt)

    def score(self, d: LiveDecision) -> None:
        """Simulate ``d`` and the baselines on the recording and write its log line."""
        task = self.task([d])
        baselines = baseline_outcomes(task, np.array([0]), self.cfg.evaluate.baselines, fitted=False)
        row = order_row(task, 0, d.order, d.offset_bps, {n: o.is_bps[0] for n, o in baselines.items()})
        self.logf.write(json.dumps(row) + "\n")
        self.logf.flush()
        self.scored.append(d)
        log.info("decision %d/%d: %s -> %s (IS %.2f bps)", len(self.scored), self.max_decisions, d.order.answer,
                 "filled" if row["filled"] else "cleanup", row["is_bps"])


async def run_live(session: LiveSession, url: str, duration_s: float) -> None:
    """Feed ``url``'s stream of the session's coin to ``session`` until it is done, ``duration_s`` wall seconds
    have passed (0 = no limit) or the stream ends."""
    async def feed() -> None:
        async with aclosing(hyperliquid_messages(url, session.cfg.asset.hyperliquid_coin)) as messages:
            async for msg in messages:
                if msg.get("channel") == "trades":
                    session.on_trades(parse_trades(msg["data"]))
                elif msg.get("channel") == "l2Book":
                    await session.on_book(*parse_book(msg["data"]))
                if session.done:
                    return

    try:
        await asyncio.wait_for(feed(), timeout=duration_s or None)
    except TimeoutError:
        log.info("duration_s=%g reached", duration_s)


def paper_trade_live(policy: TrainedPolicy, market_cfg: RunConfig, out_dir: Path | str, url: str = HYPERLIQUID_WS,
                     max_decisions: int = 0, duration_s: float = 0.0) -> dict:
    """Trade ``url``'s live stream of ``market_cfg``'s asset with ``policy`` until ``max_decisions`` decisions are
    scored or ``duration_s`` wall seconds pass (at least one bound must be set); returns the summary (also
    ``summary.json``)."""
    if max_decisions <= 0 and duration_s <= 0:
        raise ValueError("mode=live needs max_decisions=<n> and/or duration_s=<s> so that the run stops by itself")
    check_asset(policy, market_cfg, live=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(market_cfg, prompt=policy.cfg.prompt)  # score answers with the policy's own prefill and band
    t_wall = time.perf_counter()
    with (out / "paper_log.jsonl").open("w") as logf:
        session = LiveSession(policy, cfg, logf, max_decisions or 2**62)
        asyncio.run(run_live(session, url, duration_s))
    if len(session.pending):
        log.info("%d decisions dropped: the stream ended before their reward window", len(session.pending))
    if len(session.scored) < 2:
        raise ValueError(f"{len(session.scored)} decisions scored in the live run: run longer (duration_s) or decide "
                         "more often (every_s)")
    return summarize_live(session, url, time.perf_counter() - t_wall, out)


def summarize_live(session: LiveSession, url: str, wall_s: float, out: Path) -> dict:
    """The summary of the scored decisions: every strategy on the whole recording."""
    cfg, decided = session.cfg, session.scored
    task = session.task(decided)
    idx = np.arange(len(decided))
    completions = [d.order.answer[len(answer_prefix(cfg, d.side)):] for d in decided]
    strategies = {**baseline_outcomes(task, idx, cfg.evaluate.baselines, fitted=False),
                  CANDIDATE: llm_outcomes(task, idx, completions, session.fallback_bps)}
    span = f"{utc_text(decided[0].ts_us)} to {utc_text(decided[-1].ts_us)} UTC"
    head = (f"Paper trading (live, {url}) of {session.policy.path.name} on {cfg.asset.name}, {span}: {len(decided)} "
            f"decisions every {cfg.decisions.every_s:g} s; vwap and analytic (fit on a training period) not run")
    return summarize(out, cfg, session.policy, strategies, head, not task.tape.book_only, wall_s, live=True)

