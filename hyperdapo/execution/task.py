"""The execution task: decisions with their prompts, and the scorer that turns any answer into a reward.

Training (RL rewards, SFT / DPO datasets), validation and the backtest all score orders through
:meth:`ExecutionTask.score_prices`, i.e. the same fill simulator, venue (tick, fees, latency) and reward, so a
reward in training and a number in a table mean the same thing.

Indices are global positions in ``task.decisions`` (sorted by time); :meth:`split_index` gives a split's.
The market is a :class:`~hyperdapo.execution.tape.Tape`: the run's span in memory (:meth:`ExecutionTask.build`) or
day windows read on demand (:func:`hyperdapo.execution.daily.day_task`, for months of data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from hyperdapo.data.config import AssetConfig, VenueConfig
from hyperdapo.data.schema import MarketData, Side
from hyperdapo.data.venues import Instrument
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.fills import Outcomes
from hyperdapo.execution.rewards import compute_reward
from hyperdapo.execution.tape import MemoryTape, Tape
from hyperdapo.features.compute import compute_features
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import DecisionSet, Split, build_decisions
from hyperdapo.prompts.answer import format_answer, offset_to_price, parse_answer
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.prompts.render import build_messages, render_prompt
from hyperdapo.timing import timed

log = logging.getLogger(__name__)
FEW_SHOT_OFFSETS_BPS = (-50.0, -30.0, -15.0, -5.0, 0.0, 5.0)  # the candidate answers of examples and pairs


@dataclass
class Scored:
    """Scores of G answers for each of B decisions."""

    rewards: np.ndarray  # (B, G) bps, higher is better; invalid answers get reward.invalid_penalty
    valid: np.ndarray  # (B, G) bool
    offsets_bps: np.ndarray  # (B, G) side-relative offset from the arrival mid, NaN when invalid
    reasons: np.ndarray  # (B, G) str, RejectReason values ("none" when valid)
    outcomes: Outcomes | None = None  # (B, G) simulator outcomes (invalid answers hold the fallback's)


@dataclass(frozen=True)
class ExecutionTask:
    """One asset's decisions on one venue, their features and chat prompts, and how to score answers: the execution
    environment. Immutable: a variant is a new task (``dataclasses.replace``, :meth:`rendered`)."""

    asset: AssetConfig
    venue: VenueConfig  # tick, lot, fees and latency of the orders
    tape: Tape  # the market the orders are simulated on
    decisions: DecisionSet  # D decisions, all splits, sorted by time
    features: list[dict[str, float]]  # (D,) one feature row per decision (raw + z-scored)
    mid_usd: np.ndarray  # (D,) arrival mid: mid of the last snapshot at or before t
    messages: list[list[dict[str, str]]]  # (D,) chat messages
    fill_cfg: FillConfig
    reward_cfg: RewardConfig
    prompt_cfg: PromptConfig
    prompt_texts: list[str] = field(default_factory=list)  # (D,) by a policy's chat template (:meth:`rendered`)
    day: np.ndarray | None = None  # (D,) the day file of each decision on a day-by-day tape (training batches
    # then draw from one day each, so that a step reads one day window), None in memory
    # a reward (B, G) of the scored answers in place of the configured one, invalid answers included (their
    # ``Scored.valid`` is False), e.g. a toy task that pays for one offset (tests/test_learning.py):
    # ``dataclasses.replace(task, reward_of=fn)``
    reward_of: Callable[[Scored], np.ndarray] | None = None

    @classmethod
    def build(
        cls,
        asset: AssetConfig,
        venue: VenueConfig,
        market: MarketData,
        decision_cfg: DecisionConfig,
        feature_cfg: FeatureConfig,
        fill_cfg: FillConfig,
        reward_cfg: RewardConfig,
        prompt_cfg: PromptConfig,
    ) -> ExecutionTask:
        book = market.book
        with timed(log, "decisions"):
            decisions = build_decisions(asset.name, book.ts_us, book.mid, Instrument(venue, asset).round_to_lot,
                                        decision_cfg)
        with timed(log, f"features ({len(decisions)} decisions)"):
            rows = compute_features(market, decisions.ts_us, feature_cfg).to_dict("records")
        return cls.assemble(asset, venue, MemoryTape(market), decisions, rows, decision_cfg.window_s, fill_cfg,
                            reward_cfg, prompt_cfg)

    @classmethod
    def assemble(cls, asset: AssetConfig, venue: VenueConfig, tape: Tape, decisions: DecisionSet,
                 rows: list[dict[str, float]], window_s: float, fill_cfg: FillConfig, reward_cfg: RewardConfig,
                 prompt_cfg: PromptConfig, day: np.ndarray | None = None) -> ExecutionTask:
        """The task of ``decisions`` with their feature ``rows`` on ``tape``: worked examples (``window_s``: the
        reward window, see :meth:`_few_shot`) and chat prompts."""
        mid_usd = np.array([r["mid_usd"] for r in rows], dtype=np.float64)
        task = cls(asset, venue, tape, decisions, rows, mid_usd, [], fill_cfg, reward_cfg, prompt_cfg, day=day)
        few_shot = []
        if prompt_cfg.n_few_shot:
            few_shot, decisions = task._few_shot(window_s)
            task = replace(task, decisions=decisions)
        with timed(log, "prompts"):
            return replace(task, messages=[task._messages(i, few_shot) for i in range(len(decisions))])

    def _messages(self, i: int, few_shot: list[tuple[str, str]] = ()) -> list[dict[str, str]]:
        d = self.decisions
        return build_messages(self.asset.name, self.features[i], Side(int(d.side[i])), float(d.qty[i]), d.horizon_s,
                              d.objective[i], self.prompt_cfg, few_shot)

    def _few_shot(self, window_s: float) -> tuple[list[tuple[str, str]], DecisionSet]:
        """``prompt.n_few_shot`` worked examples: the first training decisions with their ex-post best offset, and the
        decisions without the ones they spoil. The examples' answers use data up to the end of their reward windows,
        so every training decision before that time leaves the training split (as an embargo would): no prompt
        carries future information."""
        train = self.split_index(Split.TRAIN)[: self.prompt_cfg.n_few_shot]
        grid = np.broadcast_to(np.asarray(FEW_SHOT_OFFSETS_BPS), (len(train), len(FEW_SHOT_OFFSETS_BPS)))
        rewards, _ = self.score_offsets(train, grid)
        best = np.asarray(FEW_SHOT_OFFSETS_BPS)[rewards.argmax(axis=1)]
        examples = [(self._messages(i)[-1]["content"], self.answer_of_offset(i, o)) for i, o in zip(train, best,
                                                                                                 strict=True)]
        known_us = self.decisions.ts_us[train].max() + int(window_s * 1_000_000)
        split = self.decisions.split.copy()
        split[(split == Split.TRAIN.value) & (self.decisions.ts_us < known_us)] = ""
        return examples, replace(self.decisions, split=split)

    @property
    def instrument(self) -> Instrument:
        """The asset on the venue: its tick (USD) and lot (coins)."""
        return Instrument(self.venue, self.asset)

    # ------------------------------------------------------------------------------------------ prompts
    def split_index(self, split: Split | str) -> np.ndarray:
        return np.flatnonzero(self.decisions.split == Split(split).value)

    def rendered(self, tokenizer) -> ExecutionTask:
        """This task with every prompt rendered through ``tokenizer``'s chat template (once per policy), followed by
        the answer prefix when ``prompt.prefill_side`` is set (:meth:`prompts` reads them)."""
        return replace(self, prompt_texts=[render_prompt(tokenizer, m) + self.answer_prefix(i)
                                           for i, m in enumerate(self.messages)])

    def answer_prefix(self, i: int) -> str:
        """The start of the assistant's answer that the prompt already holds ("SELL LIMIT" or "")."""
        return f"{Side(int(self.decisions.side[i])).name} LIMIT" if self.prompt_cfg.prefill_side else ""

    def completion(self, i: int, answer: str) -> str:
        """What the policy itself must generate for the full ``answer`` (the answer minus the prefix)."""
        prefix = self.answer_prefix(i)
        if not answer.startswith(prefix):
            raise ValueError(f"answer {answer!r} does not start with the prompt's prefix {prefix!r}")
        return answer[len(prefix):]

    def prompts(self, idx: np.ndarray) -> list[str]:
        if not self.prompt_texts:
            raise RuntimeError("prompts() reads rendered prompts: use task.rendered(tokenizer)")
        return [self.prompt_texts[i] for i in np.asarray(idx)]

    def book_lean(self, idx: np.ndarray) -> np.ndarray:
        """side x top-5 imbalance per decision (dimensionless, in [-1, 1]): positive = the book leans against
        the order (the pressure pushes the price away from a passive limit), the compact prompt's "against"."""
        return self.decisions.side[np.asarray(idx)] * np.array([self.features[i]["imbalance_top5"] for i in idx])

    def sample_train_prompts(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """``batch_size`` training decisions for rollout batch ``step``: a seeded function of (seed, step),
        so a resumed run draws exactly the batches an uninterrupted one would. On a day-by-day tape all of a
        batch's decisions are of one day (drawn in proportion to the days' training decisions)."""
        train = self.split_index(Split.TRAIN)
        rng = np.random.default_rng([seed, step])
        if self.day is not None:
            train = self.one_day(train, rng)
        return rng.choice(train, size=batch_size, replace=len(train) < batch_size)

    def one_day(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The decisions of ``idx`` on one day of a day-by-day tape, the day drawn with ``rng`` in proportion to
        its share of ``idx`` (a batch drawn from them reads one day window)."""
        days, counts = np.unique(self.day[idx], return_counts=True)
        return idx[self.day[idx] == rng.choice(days, p=counts / counts.sum())]

    # ------------------------------------------------------------------------------------------ scoring
    def price_of_offset(self, idx: np.ndarray, offsets_bps: np.ndarray) -> np.ndarray:
        """Limit prices (USD, on the tick grid) of side-relative offsets; ``offsets_bps`` is (B, K)."""
        idx = np.asarray(idx)
        raw = offset_to_price(self.mid_usd[idx][:, None], self.decisions.side[idx][:, None],
                              np.asarray(offsets_bps, dtype=np.float64))
        return self.instrument.round_to_tick(raw)

    def score_prices(self, idx: np.ndarray, limit_px: np.ndarray) -> tuple[np.ndarray, Outcomes]:
        """Reward (bps) and outcomes of limit orders ``limit_px`` (B, K) for decisions ``idx`` (B,)."""
        idx = np.asarray(idx)
        d = self.decisions
        out = self.tape.simulate(d.ts_us[idx], d.side[idx], limit_px, d.qty[idx], self.fill_cfg, self.venue,
                                 horizon_s=d.horizon_s, adverse_horizon_s=d.adverse_horizon_s)
        return compute_reward(out, self.reward_cfg, d.horizon_s, d.objective[idx]), out

    def score_offsets(self, idx: np.ndarray, offsets_bps: np.ndarray) -> tuple[np.ndarray, Outcomes]:
        return self.score_prices(idx, self.price_of_offset(idx, offsets_bps))

    def score(self, idx: np.ndarray, texts: list[str], group_size: int) -> Scored:
        """Parse and score ``texts`` (B*G generated completions, grouped by decision; the answer prefix of the
        prompt is prepended) for decisions ``idx`` (B,)."""
        idx = np.asarray(idx)
        b, g = len(idx), group_size
        parsed = [
            parse_answer(self.answer_prefix(i) + t, side=Side(int(self.decisions.side[i])),
                         mid_usd=float(self.mid_usd[i]), instrument=self.instrument,
                         band_bps=self.prompt_cfg.band_bps)
            for i, t in zip(np.repeat(idx, g), texts, strict=True)
        ]
        valid = np.array([p.valid for p in parsed]).reshape(b, g)
        offsets = np.array([p.offset_bps for p in parsed]).reshape(b, g)
        reasons = np.array([p.reason.value for p in parsed]).reshape(b, g)
        # invalid answers are simulated at mid (any finite price) and then overwritten with the penalty
        limit_px = np.array([p.limit_px for p in parsed]).reshape(b, g)
        limit_px = np.where(valid, limit_px, self.mid_usd[idx][:, None])
        rewards, outcomes = self.score_prices(idx, limit_px)
        scored = Scored(np.where(valid, rewards, self.reward_cfg.invalid_penalty), valid,
                        np.where(valid, offsets, np.nan), reasons, outcomes)
        if self.reward_of is not None:
            scored.rewards = np.asarray(self.reward_of(scored), dtype=np.float64)
        return scored

    def answer_of_offset(self, i: int, offset_bps: float) -> str:
        return format_answer(Side(int(self.decisions.side[i])), offset_bps)

