"""The multi-turn LLM policy of sequential execution (issue 22): an answer per step, a trajectory per parent order.

An episode (:mod:`hyperdapo.execution.sequential`) asks the policy at each step t_k; the turn's prompt is the decision's
prompt plus the step's state and the policy's own earlier answers (:mod:`hyperdapo.prompts.turns`), the answer one of
``KEEP`` / ``REPLACE x bps`` / ``CROSS``. A trajectory is the turns of one episode; its reward is the episode's (the
task's reward of the parent's outcome, bps, ``-IS`` by default), or ``reward.invalid_penalty`` if any of its answers
is invalid (an invalid answer is played as KEEP). For DAPO / GRPO, G trajectories of one parent order form a group:
the trajectory's advantage goes to every token of every turn (:meth:`Rollout.rows_of`), and the loss is the token-level
mean over all turns' tokens (``tests/test_multiturn.py``).

SFT target: the sequential baseline of lowest mean IS on the training split among those that work the whole remainder
(every REPLACE / CROSS for all that remains: what the grammar says), its answers on the training episodes as labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hyperdapo.execution.config import SequentialConfig
from hyperdapo.execution.sequential import Act, Actions, SequentialEpisodes, SequentialPolicy, StepState, run_episodes
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.prompts.render import render_prompt
from hyperdapo.prompts.turns import TurnKind, describe_turn, format_turn, parse_turn, turn_messages
from hyperdapo.rl.rollout import Rollout, sample

ACT_OF = {TurnKind.KEEP: Act.KEEP, TurnKind.REPLACE: Act.REPLACE, TurnKind.CROSS: Act.CROSS}
STATE_KEYS = ("working_offset_bps", "queue_ahead_qty", "is_bps", "mid_move_bps", "spread_bps", "touch_offset_bps",
              "parent_qty", "remaining_qty")


def turn_text(task: ExecutionTask, s: StepState, j: int, history: list[str]) -> str:
    """The turn line of episode ``j`` of state ``s`` (data up to t_k only: ``s`` is the episode's state at t_k)."""
    row = {k: float(getattr(s, k)[j]) for k in STATE_KEYS}
    row |= {"step": s.step, "n_steps": s.n_steps, "time_left_s": s.time_left_s,
            "executed_qty": row["parent_qty"] - row["remaining_qty"]}
    return describe_turn(row, history, task.prompt_cfg)


def turn_prompt(task: ExecutionTask, tokenizer, i: int, s: StepState, j: int, history: list[str]) -> str:
    """The rendered prompt of decision ``i``'s episode ``j`` at the step of ``s``."""
    return render_prompt(tokenizer, turn_messages(task.messages[i], turn_text(task, s, j, history), task.prompt_cfg))


def answer_of_action(kind: int, offset_bps: float) -> str:
    """A sequential action as a turn answer (the SFT label of a baseline's action)."""
    kind = Act(int(kind))
    return format_turn(TurnKind.REPLACE, offset_bps) if kind is Act.REPLACE else format_turn(TurnKind[kind.name])


def actions_of_answers(texts: list[str], band_bps: float) -> tuple[Actions, np.ndarray]:
    """Turn answers -> (Actions (B,), valid (B,) bool); an invalid answer is played as KEEP."""
    parsed = [parse_turn(t, band_bps=band_bps) for t in texts]
    kind = [ACT_OF[p.kind] if p.valid else Act.KEEP for p in parsed]
    return Actions.of(np.array(kind), np.array([p.offset_bps for p in parsed])), np.array([p.valid for p in parsed])


class LLMTurnPolicy:
    """A :data:`SequentialPolicy` that asks ``model`` at every step, for episodes of decisions ``idx`` (the rows of
    :class:`SequentialEpisodes`; G consecutive rows per decision when ``group_size`` = G > 1, which share their step-0
    prompt and sample their first answers together). It records every turn (:attr:`rolls`, :attr:`valid`)."""

    def __init__(self, model, tokenizer, task: ExecutionTask, idx: np.ndarray, *, max_new_tokens: int,
                 temperature: float = 1.0, top_p: float = 1.0, greedy: bool = False, group_size: int = 1):
        self.model, self.tokenizer, self.task, self.idx = model, tokenizer, task, np.asarray(idx)
        self.sampling = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, greedy=greedy)
        self.group_size = group_size
        self.history: list[list[str]] = [[] for _ in self.idx]
        self.valid = np.ones(len(self.idx), dtype=bool)
        self.first_offset_bps = np.full(len(self.idx), np.nan)  # of each episode's first valid REPLACE
        self.rolls: list[Rollout] = []

    def __call__(self, s: StepState) -> Actions:
        live = np.flatnonzero(~s.done)
        g = self.group_size if s.step == 0 and not self.sampling["greedy"] else 1
        asked = live[::g]  # at step 0 a group's G rows share one prompt
        prompts = [turn_prompt(self.task, self.tokenizer, int(self.idx[j]), s, int(j), self.history[j]) for j in asked]
        roll = sample(self.model, self.tokenizer, prompts, group_size=g, **self.sampling)
        roll.traj = torch.as_tensor(live)
        self.rolls.append(roll)
        acts, valid = actions_of_answers(roll.texts, self.task.prompt_cfg.band_bps)
        for j, text in zip(live, roll.texts, strict=True):
            self.history[j].append(text.strip().splitlines()[0] if text.strip() else text)
        self.valid[live] &= valid
        first = np.isnan(self.first_offset_bps[live]) & (acts.kind == Act.REPLACE)
        self.first_offset_bps[live[first]] = acts.offset_bps[first]
        kind, offset = np.full(len(self.idx), Act.KEEP), np.full(len(self.idx), np.nan)
        kind[live], offset[live] = acts.kind, acts.offset_bps
        return Actions.of(kind, offset)


@dataclass
class Trajectories:
    """G trajectories for each of B parent orders: the turns (``roll``, ``roll.traj`` = b * G + g) and per trajectory
    (B, G): the reward (bps), whether every answer was valid, the number of turns, the offset of the first REPLACE
    (bps, NaN if none)."""

    roll: Rollout
    rewards: np.ndarray
    valid: np.ndarray
    turns: np.ndarray
    first_offset_bps: np.ndarray
    episodes: SequentialEpisodes


def run_trajectories(model, tokenizer, task: ExecutionTask, idx: np.ndarray, cfg: SequentialConfig, *,
                     group_size: int, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                     greedy: bool = False) -> Trajectories:
    """Sample ``group_size`` trajectories (one greedy one if ``greedy``) of each decision of ``idx`` (B,) to the end."""
    g = 1 if greedy else group_size
    policy = LLMTurnPolicy(model, tokenizer, task, np.repeat(idx, g), max_new_tokens=max_new_tokens,
                           temperature=temperature, top_p=top_p, greedy=greedy, group_size=g)
    episodes, _ = run_episodes(task, np.repeat(idx, g), policy, cfg)
    rewards = np.where(policy.valid, episodes.rewards(), task.reward_cfg.invalid_penalty)
    roll = Rollout.cat(policy.rolls)
    roll.traj = torch.cat([r.traj for r in policy.rolls])  # the episodes' own rows, not renumbered per turn
    turns = np.bincount(roll.traj.numpy(), minlength=len(idx) * g)
    shape = (len(idx), g)
    return Trajectories(roll, rewards.reshape(shape), policy.valid.reshape(shape), turns.reshape(shape),
                        policy.first_offset_bps.reshape(shape), episodes)


def turn_dataset(task: ExecutionTask, idx: np.ndarray, teacher: SequentialPolicy, cfg: SequentialConfig
                 ) -> list[tuple[int, list[dict[str, str]], str]]:
    """SFT examples from ``teacher``'s episodes of decisions ``idx``: (decision, turn messages, answer) per step of
    each episode not yet done. The teacher must work all that remains (NaN quantities): the grammar has no size."""
    examples, history = [], [[] for _ in idx]

    def record(s: StepState) -> Actions:
        acts = teacher(s)
        if np.isfinite(acts.qty[~s.done]).any():
            raise ValueError("the SFT teacher sends orders for part of the remainder; the turn grammar has no size")
        for j in np.flatnonzero(~s.done):
            answer = answer_of_action(acts.kind[j], acts.offset_bps[j])
            text = turn_text(task, s, int(j), history[j])
            examples.append((int(idx[j]), turn_messages(task.messages[idx[j]], text, task.prompt_cfg), answer))
            history[j].append(answer)
        return acts

    run_episodes(task, idx, record, cfg)
    return examples


class TurnBatches:
    """Seeded SFT batches (``prompt``, ``answer``) of turn examples (:func:`turn_dataset`), rendered through
    ``tokenizer``; the same interface as :class:`hyperdapo.rl.data.OfflineBatches` (SFT only)."""

    def __init__(self, examples: list[tuple[int, list[dict[str, str]], str]], tokenizer, batch_size: int, seed: int):
        if not examples:
            raise ValueError("the training split produced no sequential SFT examples")
        self.prompts = [render_prompt(tokenizer, m) for _, m, _ in examples]
        self.answers = [a for _, _, a in examples]
        self.batch_size, self.seed = batch_size, seed

    def __call__(self, step: int) -> dict[str, list[str]]:
        rng = np.random.default_rng([self.seed, 7, step])
        rows = rng.choice(len(self.prompts), self.batch_size, replace=len(self.prompts) < self.batch_size)
        return {"prompt": [self.prompts[r] for r in rows], "answer": [self.answers[r] for r in rows]}


def grammar_corpus() -> list[str]:
    """Every turn answer form, for the tiny tokenizer's corpus."""
    return ["KEEP", "CROSS", *(format_turn(TurnKind.REPLACE, o / 100) for o in range(-2000, 2001))]
