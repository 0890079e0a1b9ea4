"""Evaluation of sequential execution with the episode, one parent order, as the unit (issue 22, item 5).

Per episode (:class:`EpisodeMetrics`, (B,) arrays, from :class:`~hyperdapo.execution.sequential.SequentialEpisodes`
run to the end):

- ``is_bps``: the parent's implementation shortfall in bps of its arrival mid, ``s (exec - mid0) / mid0 * 1e4 +
  fee_bps`` (s = +1 buy, -1 sell; cost positive; fees and the cleanup at T included: DESIGN.md);
- ``completed``: the whole parent executed before T without a cleanup (crossing before T counts as completed);
- ``orders``: orders placed (REPLACE, CROSS); ``replacements``: cancels sent, i.e. a REPLACE or CROSS over a working
  order (one whose cancel lost to a fill within the latency included);
- ``time_to_complete_s``: seconds from the decision time to the parent's last execution, NaN unless completed;
- ``adverse_selection_bps``: over the children, weighted by their share of the parent, each ``s (fill - mid_A) /
  mid0_child * 1e4`` with mid_A the mid ``decisions.adverse_horizon_s`` after its fill (positive = the market moved
  against the filled parent), NaN unless completed.

Strategies: the sequential baselines (:func:`sequential_baselines`) and trained policies, each a
:data:`~hyperdapo.execution.sequential.SequentialPolicy`. Choices are made on the validation split alone
(:func:`choose_on_validation`): the best baseline (lowest mean IS over the validation episodes) and the one-shot
policy held to T (the held fixed offset of lowest validation IS: the one-shot evaluation's choice among the fixed
offsets, held from step 0, which is that offset's one-shot order bitwise). :func:`episode_table` tests rows against
both with :func:`~hyperdapo.evaluation.stats.paired_tests` over episodes, Bonferroni over every test in the table;
:func:`example_table` lists state, action and outcome per step of a few episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperdapo.evaluation.config import BaselineConfig
from hyperdapo.evaluation.stats import mean_ci, paired_tests
from hyperdapo.evaluation.tables import IDENTICAL
from hyperdapo.execution.config import SequentialConfig
from hyperdapo.execution.sequential import Act, Actions, SequentialEpisodes, SequentialPolicy, StepState, run_episodes
from hyperdapo.execution.sequential_baselines import TWAP, AlmgrenChriss, HeldOffset, PegToBest, TouchThenCross
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split

US_PER_S = 1_000_000
HELD_PREFIX = "held "  # the one-shot fixed offsets held to T: "held <name>"
CROSS_BEFORE_END_S = 30.0  # touch_then_cross crosses what is left once no more than this remains (s)
URGENT_KAPPA_PER_S = 0.02  # the front-loaded Almgren-Chriss schedule's urgency (1/s): kappa T = 2.4 at T = 120 s
BEST, ONE_SHOT = "best baseline", "one-shot held"  # the roles of the table's two references, both chosen on val


@dataclass(frozen=True)
class EpisodeMetrics:
    """Per-episode metrics of B episodes, (B,) arrays (units and signs in the module docstring)."""

    is_bps: np.ndarray
    completed: np.ndarray  # bool
    orders: np.ndarray  # int
    replacements: np.ndarray  # int
    time_to_complete_s: np.ndarray
    adverse_selection_bps: np.ndarray

    @classmethod
    def of(cls, episodes: SequentialEpisodes) -> EpisodeMetrics:
        out = episodes.outcomes()
        return cls(is_bps=out.is_bps[:, 0], completed=out.filled[:, 0], orders=episodes.n_orders.copy(),
                   replacements=episodes.n_cancels.copy(), time_to_complete_s=out.time_to_fill_s[:, 0],
                   adverse_selection_bps=out.adverse_selection_bps[:, 0])


def sequential_baselines(cfg: BaselineConfig) -> dict[str, SequentialPolicy]:
    """The sequential baselines by row name: every fixed offset of ``evaluate.baselines`` held to T (``held <name>``),
    rest at the touch then cross ``CROSS_BEFORE_END_S`` before T, peg to the best, TWAP at the touch, and
    Almgren-Chriss market slices, linear and front-loaded (``URGENT_KAPPA_PER_S``)."""
    return {**{f"{HELD_PREFIX}{name}": HeldOffset(x) for name, x in cfg.fixed_offsets_bps.items()},
            "touch_then_cross": TouchThenCross(CROSS_BEFORE_END_S), "peg_to_best": PegToBest(), "twap": TWAP(),
            "almgren_chriss": AlmgrenChriss(), "almgren_chriss_urgent": AlmgrenChriss(URGENT_KAPPA_PER_S)}


def run_metrics(task: ExecutionTask, idx: np.ndarray, policy: SequentialPolicy, cfg: SequentialConfig
                ) -> tuple[EpisodeMetrics, SequentialEpisodes, list[tuple[StepState, Actions]]]:
    """Episodes of decisions ``idx`` under ``policy`` run to the end: their metrics, the episodes and the trajectory."""
    episodes, trajectory = run_episodes(task, idx, policy, cfg)
    return EpisodeMetrics.of(episodes), episodes, trajectory


@dataclass(frozen=True)
class ValidationChoice:
    """What the validation split chose: the best baseline, the one-shot policy held to T, every baseline's mean IS
    (bps) over the validation episodes."""

    best: str
    one_shot: str
    val_is_bps: dict[str, float]


def mean_is_bps(task: ExecutionTask, idx: np.ndarray, policies: dict[str, SequentialPolicy], cfg: SequentialConfig
                ) -> dict[str, float]:
    """Each policy's mean IS (bps, cost positive) over the episodes of decisions ``idx``."""
    return {name: float(run_metrics(task, idx, policy, cfg)[0].is_bps.mean()) for name, policy in policies.items()}


def sft_teacher(task: ExecutionTask, baselines: dict[str, SequentialPolicy], cfg: SequentialConfig
                ) -> tuple[str, SequentialPolicy, dict[str, float]]:
    """The multi-turn policy's SFT target (:func:`hyperdapo.rl.multiturn.turn_dataset`): the baseline of lowest mean
    IS over the training episodes among those that always work all that remains (the turn grammar has no size; TWAP
    and Almgren-Chriss slice the parent), with every candidate's training mean IS (bps)."""
    train = task.split_index(Split.TRAIN)
    whole = {name: p for name, p in baselines.items()
             if all(np.isnan(a.qty).all() for _, a in run_metrics(task, train[:256], p, cfg)[2])}
    means = mean_is_bps(task, train, whole, cfg)
    best = min(means, key=means.__getitem__)
    return best, whole[best], means


def choose_on_validation(task: ExecutionTask, baselines: dict[str, SequentialPolicy], cfg: SequentialConfig
                         ) -> ValidationChoice:
    """The baseline of lowest mean IS over the validation episodes, and the held fixed offset (``held <name>``) of
    lowest mean IS there. Only the validation decisions are run: the choice never sees the test split."""
    means = mean_is_bps(task, task.split_index(Split.VAL), baselines, cfg)
    held = {name: m for name, m in means.items() if name.startswith(HELD_PREFIX)}
    if not held:
        raise ValueError(f"no held fixed offset among the baselines {list(baselines)}: the one-shot reference is one")
    return ValidationChoice(min(means, key=means.__getitem__), min(held, key=held.__getitem__), means)


def episode_table(metrics: dict[str, EpisodeMetrics], references: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """One row per strategy: episodes, mean IS (bps) with its bootstrap 95% CI, completion before T (%), orders and
    replacements per episode, mean time to complete (s, completed episodes), mean adverse selection (bps); and per
    reference role (e.g. ``{BEST: "twap", ONE_SHOT: "held moderate"}``) ``Diff vs <role> [bps]`` = mean over
    episodes of IS(row) - IS(reference) (negative = the row is cheaper) with its paired t and Wilcoxon p-values,
    Bonferroni over every test in the table (each row against each reference but itself)."""
    tested = {role: [n for n in metrics if n != ref] for role, ref in references.items()}
    m = sum(map(len, tested.values()))
    tests = {role: paired_tests({n: metrics[n].is_bps for n in names}, metrics[references[role]].is_bps, seed, m)
             for role, names in tested.items()}
    rows = []
    for name, e in metrics.items():
        lo, hi = mean_ci(e.is_bps, seed)
        row = {"Strategy": name, "n episodes": len(e.is_bps), "IS [bps]": float(e.is_bps.mean()),
               "IS CI low [bps]": lo, "IS CI high [bps]": hi, "Completed before T [%]": 100 * float(e.completed.mean()),
               "Orders per episode": float(e.orders.mean()), "Replacements per episode": float(e.replacements.mean()),
               "Time to complete [s]": _nanmean(e.time_to_complete_s),
               "Adverse selection [bps]": _nanmean(e.adverse_selection_bps)}
        for role in references:
            t = tests[role].get(name, {})
            row |= {f"Diff vs {role} [bps]": t.get("mean_diff_bps", math.nan),
                    f"p (t, Bonf.) vs {role}": t.get("t_p_bonf", math.nan),
                    f"p (W, Bonf.) vs {role}": t.get("wilcoxon_p_bonf", math.nan)}
        rows.append(row)
    return pd.DataFrame(rows)


def versus_start(is_bps: dict[str, np.ndarray], start_of: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Each policy row against the row of the policy it started from (``start_of``: row -> its start's row; e.g.
    DAPO -> its SFT start) over the same episodes, and pooled over all pairs (episodes stacked) when there are
    several: mean IS(policy) - IS(start) (bps, negative = cheaper) with its bootstrap CI and the paired t and Wilcoxon
    p-values, Bonferroni over the table's rows; a policy equal to its start on every episode reads "identical"."""
    pairs = {row: (is_bps[row], is_bps[start]) for row, start in start_of.items()}
    if len(pairs) > 1:
        pairs["pooled"] = tuple(np.concatenate(x) for x in zip(*pairs.values(), strict=True))
    rows = []
    for name, (policy, start) in pairs.items():
        t = paired_tests({name: policy}, start, seed, len(pairs))[name]
        rows.append({"Policy": name, "Start": start_of.get(name, "their starts"), "n episodes": t["n"],
                     "Diff vs start [bps]": t["mean_diff_bps"], "CI low": t["ci_low"], "CI high": t["ci_high"],
                     "p (t, Bonf.)": t["t_p_bonf"], "p (W, Bonf.)": t["wilcoxon_p_bonf"], IDENTICAL: t["identical"]})
    return pd.DataFrame(rows)


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def endings(m: EpisodeMetrics, dt_s: float) -> dict[str, np.ndarray]:
    """(B,) masks of the ways an episode ends: completed within its first step (``dt_s`` seconds), completed later,
    cleaned up at T."""
    return {"completed within the first step": m.completed & (m.time_to_complete_s <= dt_s),
            "completed later": m.completed & (m.time_to_complete_s > dt_s), "cleaned up at T": ~m.completed}


def example_positions(m: EpisodeMetrics, dt_s: float) -> dict[str, int]:
    """Positions of example episodes: the first episode of each of the :func:`endings` (one no episode has is left
    out), so that the examples show every way an episode ends rather than the commonest one only."""
    return {way: int(np.flatnonzero(mask)[0]) for way, mask in endings(m, dt_s).items() if mask.any()}


def action_words(kind: int, offset_bps: float, qty: float) -> str:
    """An action as text: ``KEEP``, ``REPLACE -5.0 bps`` (all that remains) or ``... 0.01 coins``, ``CROSS``."""
    words = {Act.KEEP: "KEEP", Act.REPLACE: f"REPLACE {offset_bps:+.1f} bps", Act.CROSS: "CROSS"}[Act(kind)]
    return words if kind == Act.KEEP or math.isnan(qty) else f"{words} {qty:g} coins"


def example_table(episodes: SequentialEpisodes, trajectory: list[tuple[StepState, Actions]], positions: list[int]
                  ) -> pd.DataFrame:
    """State, action and outcome per step of the episodes at ``positions`` of a run (:func:`run_metrics`): one row
    per step where the parent is not yet executed (seconds since the decision, the mid's move since arrival
    (side-relative bps, positive = against), spread (bps), remaining share of the parent (%), the working order's
    offset from the mid (bps, negative = passive) and queue ahead (coins), IS so far (bps of the parent), the action
    and the share of the parent executed by the next step (%, fills known then; the last step's includes the
    cleanup at T), then an end row with the episode's IS, its end time and how it ended."""
    out = episodes.outcomes()
    rows = []
    for p in positions:
        decision = int(episodes.idx[p])
        for k, (s, a) in enumerate(trajectory):
            if s.done[p]:
                break
            executed_next = trajectory[k + 1][0].executed_qty[p] if k + 1 < len(trajectory) else s.parent_qty[p]
            rows.append({"Decision": str(decision), "Step": str(s.step), "Time [s]": s.step * s.dt_s,
                         "Mid move [bps]": s.mid_move_bps[p], "Spread [bps]": s.spread_bps[p],
                         "Remaining [%]": 100 * s.remaining_qty[p] / s.parent_qty[p],
                         "Working offset [bps]": s.working_offset_bps[p], "Queue ahead [coins]": s.queue_ahead_qty[p],
                         "IS so far [bps]": s.is_bps[p],
                         "Action": action_words(int(a.kind[p]), float(a.offset_bps[p]), float(a.qty[p])),
                         "Executed by next step [%]": 100 * (executed_next - s.executed_qty[p]) / s.parent_qty[p]})
        end_s = (int(out.fill_ts_us[p, 0]) - int(episodes.t0_us[p])) / US_PER_S
        rows.append({"Decision": str(decision), "Step": "T", "Time [s]": end_s,
                     "IS so far [bps]": float(out.is_bps[p, 0]),
                     "Action": "end: completed" if out.filled[p, 0] else "end: cleanup at T"})
    return pd.DataFrame(rows)
