"""One backtest: an asset's evaluation split, every baseline, the evaluated policies, statistics, tables, figures
and (``logger=wandb``) a W&B evaluation run.

Policies, one row each: ``evaluate.policies=[...]`` (run names or patterns in ``<registry_dir>/<ASSET>/``,
directories, or globs of directories: e.g. every policy of a sweep) names each row after its run;
``evaluate.policy=<dir>|latest|ensemble`` gives the one row ``llm`` (the name the demo's tables and the paper-trading
summary keep). A policy whose training started from another registered policy (its lineage) is compared with it;
that policy is scored as a row of its own when it is not among those evaluated.

Transfer: a policy trained on another market (venue, price tick, lot, data source or fill rule: book-only when its
data had no trades, read from its registry entry's ``config.yaml``) is an error naming the fields, unless
``evaluate.allow_transfer=true``; then its row is named ``<row> (trained on <source> <venue>)`` and every caption
states which rows are transfers, from which market to this one (as ``evaluate.allow_other_asset=true`` admits a
policy of another asset). Paper trading and the decision service run the same check (:func:`transfer_from`).

Comparisons: each evaluated policy against the best baseline, chosen on the validation split (lowest mean IS
there, oracle excluded) by simulating the validation decisions only, and against the policy it started from;
paired t and Wilcoxon tests over decisions, Bonferroni over every comparison made (``tables/comparisons``).

Outputs (``<out>/``): ``results.json`` (metrics, CIs, the best baseline and its validation IS, comparisons,
caption, the regime thresholds), ``decisions.parquet`` (per-decision IS of every strategy, regime buckets),
``tables/`` (execution_quality, execution_detail, headline, comparisons, fill_rate, training_performance,
execution_by_objective, execution_by_regime as md, tex, csv), ``figures/`` (learning_curves, strategy_is,
cumulative_pnl, execution_by_regime) and, with ``logger=wandb``, ``wandb/`` (the same tables, figures and summary
numbers in a ``job_type=eval`` run).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from hyperdapo.atomic import atomic_path, write_text_atomic
from hyperdapo.data.config import DataConfig, DataSource, TickRule
from hyperdapo.data.venues import Instrument, step_decimals
from hyperdapo.evaluation.baselines import (
    ORACLE,
    baseline_names,
    baseline_outcomes,
    best_on_validation,
    classic_baselines,
    llm_outcomes,
    single_offset,
)
from hyperdapo.evaluation.figures import cumulative_pnl, learning_curves, regime_lines, save_figure, strategy_bars
from hyperdapo.evaluation.metrics import MIN_SHARPE_DECISIONS, StrategyOutcomes, strategy_metrics, win_rate
from hyperdapo.evaluation.regimes import (
    Regime,
    bucket_means,
    bucket_names,
    bucket_ticks,
    buckets_with_tests,
    fit_regimes,
    regime_caption,
    regime_table,
    regime_values,
)
from hyperdapo.evaluation.stats import Comparison, identical_to, mean_ci, paired_tests, significant_win
from hyperdapo.evaluation.tables import (
    by_objective,
    comparisons,
    execution_detail,
    execution_quality,
    fill_rate_comparison,
    headline,
    run_label,
    training_lineage,
    training_performance,
    write_table,
)
from hyperdapo.execution.config import FillRule, QueueModel
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import too_few_decisions
from hyperdapo.models.policy import ModelConfig, load_policy, policy_device
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.train_run import build_task, wandb_names
from hyperdapo.rl.rollout import sample
from hyperdapo.timing import timed

log = logging.getLogger(__name__)
CANDIDATE = "llm"  # the row of evaluate.policy's one policy (or ensemble)
ENSEMBLE = "ensemble"  # evaluate.policy=ensemble: the median offset of evaluate.members' answers
NOT_STRATEGIES = (ORACLE,)  # reported as an upper bound, never compared as a strategy
BEST = "best baseline (val)"  # the role of a comparison with the validation-chosen best baseline
STARTED_FROM = "started from"  # the role of a comparison with the policy a policy's training started from


@dataclass(frozen=True)
class PolicyKind:
    """A kind of registered policy: ``accepts(policy_dir)`` recognises its registry directory;
    ``outcomes(cfg, task, idx, policy_dir, row)`` scores its orders on decisions ``idx`` with the backtest's
    simulator (offsets in side-relative bps, invalid answers replaced by ``evaluate.fallback``'s offset)."""

    name: str
    accepts: Callable[[Path], bool]
    outcomes: Callable[[RunConfig, ExecutionTask, np.ndarray, Path, str], StrategyOutcomes]


def is_language_model(policy_dir: Path) -> bool:
    return any((policy_dir / f).exists() for f in ("config.json", "adapter_config.json"))


def fallback_offset_bps(cfg: RunConfig) -> float:
    return cfg.evaluate.baselines.fixed_offsets_bps[cfg.evaluate.fallback]


def language_model_outcomes(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, policy_dir: Path,
                            row: str) -> StrategyOutcomes:
    return llm_outcomes(task, idx, policy_answers(cfg, task, idx, policy_dir), fallback_offset_bps(cfg), row)


def is_ppo(policy_dir: Path) -> bool:
    from hyperdapo.rl.ppo import is_ppo_policy  # stable-baselines3 is imported only when a registry entry is read

    return is_ppo_policy(policy_dir)


def ppo_outcomes(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, policy_dir: Path, row: str) -> StrategyOutcomes:
    """The PPO baseline's deterministic offsets (always valid orders), scored as a fixed-offset order is."""
    from hyperdapo.rl.ppo import ppo_offsets

    return single_offset(row, task, idx, ppo_offsets(policy_dir, task, idx))


LANGUAGE_MODEL = PolicyKind("language model", is_language_model, language_model_outcomes)
PPO = PolicyKind("ppo", is_ppo, ppo_outcomes)  # the classic-RL baseline (hyperdapo/rl/ppo.py)
POLICY_KINDS: tuple[PolicyKind, ...] = (LANGUAGE_MODEL, PPO)  # the kinds a registry entry may be, tried in order


def kind_of(policy_dir: Path, kinds: Sequence[PolicyKind] = POLICY_KINDS) -> PolicyKind | None:
    return next((k for k in kinds if k.accepts(policy_dir)), None)


@dataclass(frozen=True)
class EvaluatedPolicy:
    """One policy row of the tables."""

    row: str  # its name in the tables (the run name; ``llm`` for evaluate.policy)
    dirs: tuple[Path, ...]  # its registry directory (the members' for an ensemble)
    summary: dict | None  # the registry's summary.json (None for an ensemble or a policy without one)
    compared: bool = True  # tested against the best baseline (False: only the start of a compared policy)
    parent: str | None = None  # the row of the policy its training started from, compared with it
    trained_on: tuple[Market, ...] = ()  # the markets its policies were trained on, when not this one (a transfer)


BOOK_ONLY, TRADE_FILLS = "book-only", "trades"  # Market.fills: how resting orders fill on the market's data
BOOK_ONLY_WORDS = ("book-only fills: a resting order fills when the opposite best reaches its price, no trades in "
                   "that data")


@dataclass(frozen=True)
class Market:
    """What a transfer compares between the market a policy was trained on and the one it is scored on: the venue,
    the data source, the venue's price tick (USD) and lot (coins) for the asset, in words with their units, and the
    fill rule its data allows (:data:`BOOK_ONLY` without trades, else :data:`TRADE_FILLS`)."""

    venue: str  # "hyperliquid"
    source: str  # "synthetic" | "tardis" | "hyperliquid_archive" | "files"
    tick: str  # "0.1 USD" (a fixed tick) | "5 significant figures, decimals <= 1, USD" (Hyperliquid's rule)
    lot: str  # "0.00001 BTC"
    fills: str = TRADE_FILLS  # "book-only" (no trades in the data) | "trades"

    @property
    def label(self) -> str:
        return f"{self.source} {self.venue}"  # "synthetic hyperliquid"

    def differences(self, other: Market) -> list[tuple[str, str, str]]:
        """``(field, this market's, the other's)`` for each field that differs."""
        fields = (("venue", self.venue, other.venue), ("tick", self.tick, other.tick), ("lot", self.lot, other.lot),
                  ("data source", self.source, other.source), ("fills", self.fills, other.fills))
        return [f for f in fields if f[1] != f[2]]


def _decimal(step: float) -> str:
    return f"{step:.{step_decimals(step)}f}"  # 1e-05 -> "0.00001"


def market_of(cfg: RunConfig) -> Market:
    """The :class:`Market` of a run config (an evaluation's, or the one a registered policy was trained with)."""
    venue, asset = cfg.venue, cfg.asset
    decimals = None if venue.tick_rule is TickRule.FIXED else venue.tick_max_decimals - asset.sz_decimals
    tick = (f"{_decimal(venue.tick_usd[asset.name])} USD" if decimals is None else
            f"{venue.tick_sig_figs} significant figures, decimals <= {decimals}, USD")
    lot = f"{_decimal(Instrument(venue, asset).lot_size)} {asset.name}"
    return Market(venue.name, cfg.data.source.value, tick, lot, BOOK_ONLY if book_only_data(cfg.data) else TRADE_FILLS)


def book_only_data(data: DataConfig) -> bool:
    """Whether the configured data source gives no trades (fills then use the book-only rule), from the config alone:
    Hyperliquid's l2Book archive, ``data=files`` without ``data.files.trades``, Tardis without ``trades``."""
    if data.source is DataSource.HYPERLIQUID_ARCHIVE:
        return True
    if data.source is DataSource.FILES:
        return not data.files.trades
    if data.source is DataSource.TARDIS:
        return "trades" not in data.tardis.data_types
    return False  # synthetic: the simulated market always writes its trades


TRANSFER_FLAG = "evaluate.allow_transfer=true"


def transfer_from(policy_dir: Path, cfg: RunConfig, key: str, flag: str = TRANSFER_FLAG,
                  action: str = "score it here as a transfer row (named 'trained on {label}')",
                  here_words: str = "this evaluation's") -> Market | None:
    """The market the policy of ``policy_dir`` was trained on (its registry ``config.yaml``) when it is not ``cfg``'s,
    the evaluation's: an error naming the policy, both markets and every differing field unless
    ``cfg.evaluate.allow_transfer``. None when they are the same or the entry has no ``config.yaml``. Paper trading
    and the decision service call it too: ``flag`` is how their user sets ``allow_transfer``, ``action`` what it then
    does (``{label}``: the training market's label), ``here_words`` whose market ``cfg`` is."""
    if not (policy_dir / "config.yaml").exists():
        return None
    from hyperdapo.pipeline.trained import run_config_of  # imported here: that module imports this one

    trained, here = market_of(run_config_of(policy_dir)), market_of(cfg)
    diff = trained.differences(here)
    if diff and not cfg.evaluate.allow_transfer:
        fields = "; ".join(f"{name} {a} vs {b}" for name, a, b in diff)
        raise ValueError(f"{key}={policy_dir} was trained on {trained.label}, not on {here_words} {here.label} "
                         f"({fields}); pass {flag} to {action.format(label=trained.label)}")
    return trained if diff else None


def as_transfers(policies: Sequence[EvaluatedPolicy], cfg: RunConfig, key: str) -> list[EvaluatedPolicy]:
    """``policies`` with each transfer row (:func:`transfer_from`, ``key`` naming where the chosen ones come from, a
    policy's start named by its ``model.init_from``) renamed ``<row> (trained on <source> <venue>)``, the references
    to it following."""
    keys = {p.parent: f"{p.row}'s model.init_from" for p in policies if p.parent} | {p.row: key for p in policies
                                                                                     if p.compared}
    trained = {p.row: tuple(dict.fromkeys(m for d in p.dirs if (m := transfer_from(d, cfg, keys[p.row])) is not None))
               for p in policies}
    rows = {row: f"{row} (trained on {', '.join(m.label for m in markets)})" if markets else row
            for row, markets in trained.items()}
    return [replace(p, row=rows[p.row], parent=rows[p.parent] if p.parent else None, trained_on=trained[p.row])
            for p in policies]


def transfer_note(cfg: RunConfig, policies: Sequence[EvaluatedPolicy]) -> str:
    """The captions' sentence on the transfer rows: from which market to this one, and what differs ("" if none)."""
    here = market_of(cfg)
    moves = [f"{p.row}: {m.label} -> {here.label} ("
             + "; ".join(f"{name} {a} -> {b}" for name, a, b in m.differences(here)) + ")"
             for p in policies for m in p.trained_on]
    book_only = any(BOOK_ONLY in (m.fills, here.fills) for p in policies for m in p.trained_on)
    return (f" Transfer rows (trained on another market, scored on this one): {'; '.join(moves)}"
            + (f" ({BOOK_ONLY_WORDS})" if book_only else "") + "." if moves else "")


def find_policy(cfg: RunConfig) -> Path | None:
    """The policy directory: explicit, or the newest one-shot run of the asset in the registry (optionally filtered;
    multi-turn policies are evaluated by experiments/sequential_eval.py). Checked before anything is computed: a run
    directory, a policy of another asset (unless ``evaluate.allow_other_asset=true``), a multi-turn policy or an empty
    registry is an error naming ``evaluate.policy``."""
    choice = cfg.evaluate.policy
    if choice == "none":
        return None
    if choice == "latest":
        root = Path(cfg.registry_dir) / cfg.asset.name
        runs = sorted((p for p in root.glob(f"{cfg.evaluate.algo_filter}*")
                       if (p / "summary.json").exists() and not multi_turn(p)), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise FileNotFoundError(f"evaluate.policy=latest: no trained policy under {root} (run train.py first, or "
                                    "pass evaluate.policy=none for the baselines only)")
        path = runs[-1]
    else:
        path = Path(choice)
    _check_policy_dir(path, cfg)
    return path


def _read_summary(path: Path) -> dict:
    return json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}


def _check_policy_dir(path: Path, cfg: RunConfig, key: str = "evaluate.policy",
                      kinds: Sequence[PolicyKind] = POLICY_KINDS) -> None:
    summary = _read_summary(path)
    if kind_of(path, kinds) is None:
        hint = (f"it is a training run's directory; its policy is {summary['policy_dir']}" if "policy_dir" in summary
                else "expected a policy directory written by train.py (outputs/models/<ASSET>/<run_name>), with "
                "config.json or adapter_config.json and the tokenizer")
        raise FileNotFoundError(f"{key}={path}: {hint}")
    if multi_turn(path):
        raise ValueError(f"{key}={path} is a multi-turn policy (trained with sequential.multi_turn=true): it answers "
                         "KEEP / REPLACE / CROSS at every step of a parent order, not one order; evaluate it with "
                         f"experiments/sequential_eval.py --preset <preset> --policies {path}")
    trained_on = summary.get("asset")
    if trained_on and trained_on != cfg.asset.name and not cfg.evaluate.allow_other_asset:
        raise ValueError(f"{key}={path} was trained on {trained_on}, not asset={cfg.asset.name}; pass "
                         "evaluate.allow_other_asset=true to evaluate it there anyway")


def multi_turn(policy_dir: Path) -> bool:
    """Whether the registered policy was trained on the sequential task (``sequential.multi_turn``)."""
    config = policy_dir / "config.yaml"
    return config.exists() and bool(OmegaConf.select(OmegaConf.load(config), "sequential.multi_turn", default=False))


def registry_policies(cfg: RunConfig) -> list[Path]:
    """The directories ``evaluate.policies`` names, in its order, each once: an entry without ``/`` is a run name
    (or a glob pattern, e.g. ``dapo-seed*``) in ``<registry_dir>/<ASSET>/``, one with ``/`` a directory or a glob of
    directories; a pattern keeps the registry entries it matches and must match one."""
    root = Path(cfg.registry_dir) / cfg.asset.name
    found: dict[Path, Path] = {}
    for entry in cfg.evaluate.policies:
        pattern = entry if "/" in entry else str(root / entry)
        matches = [Path(pattern)]
        if glob.has_magic(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern)) if kind_of(Path(m)) is not None]
            if not matches:
                raise FileNotFoundError(f"evaluate.policies: {entry!r} matches no policy ({pattern})")
        for m in matches:
            _check_policy_dir(m, cfg, "evaluate.policies")
            found.setdefault(m.resolve(), m)
    return list(found.values())


def started_from(summary: dict | None) -> Path | None:
    """The registry directory of the policy whose weights a policy's training started from (``model.init_from``,
    the previous run of its :func:`~hyperdapo.evaluation.tables.training_lineage`); None when it started from
    scratch or that policy is no longer in the registry."""
    if not summary or "run_dir" not in summary:
        return None
    lineage = training_lineage(summary)
    parent = Path(lineage[-2]["policy_dir"]) if len(lineage) > 1 and "policy_dir" in lineage[-2] else None
    return parent if parent is not None and kind_of(parent) is not None else None


def with_parents(chosen: Sequence[tuple[str, Path]]) -> list[EvaluatedPolicy]:
    """The chosen ``(row, directory)`` policies, each with the row of the policy it started from; such a policy
    that was not chosen is added (after them, named after its run, not compared with the best baseline)."""
    rows = {path.resolve(): row for row, path in chosen}
    policies, added = [], []
    for row, path in chosen:
        summary = _read_summary(path) or None
        parent = started_from(summary)
        if parent is not None and parent.resolve() not in rows:
            rows[parent.resolve()] = parent.name
            added.append(EvaluatedPolicy(parent.name, (parent,), _read_summary(parent) or None, compared=False))
        policies.append(EvaluatedPolicy(row, (path,), summary, parent=rows[parent.resolve()] if parent else None))
    return policies + added


def evaluated_policies(cfg: RunConfig) -> list[EvaluatedPolicy]:
    """The policy rows of the evaluation (``evaluate.policies``, or ``evaluate.policy``'s one policy or ensemble,
    with the policies they started from), checked before any work (a transfer only with
    ``evaluate.allow_transfer=true``: :func:`as_transfers`); a row name may appear once, and not as a baseline's."""
    key = "evaluate.policies" if cfg.evaluate.policies else "evaluate.policy"
    if cfg.evaluate.policies:
        policies = with_parents([(p.name, p) for p in registry_policies(cfg)])
    elif cfg.evaluate.policy == ENSEMBLE:
        key = "evaluate.members"
        members = tuple(Path(m) for m in cfg.evaluate.members)
        for m in members:
            _check_policy_dir(m, cfg, "evaluate.members", kinds=(LANGUAGE_MODEL,))
        policies = [EvaluatedPolicy(CANDIDATE, members, None)]
    else:
        policy_dir = find_policy(cfg)  # its row is `llm`, or `ppo` for the PPO baseline
        row = PPO.name if policy_dir is not None and kind_of(policy_dir) is PPO else CANDIDATE
        policies = with_parents([(row, policy_dir)]) if policy_dir is not None else []
    policies = as_transfers(policies, cfg, key)
    taken = set(baseline_names(cfg.evaluate.baselines))
    for p in policies:
        if p.row in taken:
            raise ValueError(f"evaluate.policies: the row name {p.row!r} ({p.dirs[0]}) is taken by another policy or a "
                             "baseline; rename one of the runs")
        taken.add(p.row)
    return policies


@torch.no_grad()
def greedy_answers(model, tokenizer, task: ExecutionTask, idx: np.ndarray, max_new_tokens: int,
                   batch_size: int) -> list[str]:
    """The policy's greedy answer to each decision of ``idx`` (a progress bar on a terminal)."""
    texts = []
    chunks = np.array_split(idx, max(1, int(np.ceil(len(idx) / batch_size))))
    for chunk in tqdm(chunks, desc="policy answers", unit="batch", disable=None):
        roll = sample(model, tokenizer, task.prompts(chunk), group_size=1, max_new_tokens=max_new_tokens,
                      temperature=1.0, greedy=True)
        texts += roll.texts
    return texts


QUEUE_WORDS = {QueueModel.NONE: "", QueueModel.CONSERVATIVE: ", or by trades at it beyond the visible queue ahead",
               QueueModel.CAPPED: ", or by trades at it beyond the queue ahead (capped at the level's visible size)"}


def fill_words(cfg: RunConfig, task: ExecutionTask) -> str:
    """How resting orders fill in this evaluation (the simulator's rule 4), in words."""
    if task.tape.book_only:
        return ("book-only fills (a resting order fills when the opposite best reaches its price; no trades in "
                "the data)")
    rule = ("fills when the opposite best touches the limit price or a trade prints through it"
            if cfg.execution.fill_rule is FillRule.TOUCH else "fills by trades printing through the limit price")
    return rule + QUEUE_WORDS[cfg.execution.queue_model]


def caption(cfg: RunConfig, task: ExecutionTask, n: int) -> str:
    fills = fill_words(cfg, task)
    venue = (f"{cfg.venue.name} (maker {cfg.venue.maker_fee_bps:g} / taker {cfg.venue.taker_fee_bps:g} bps, latency "
             f"{cfg.venue.latency_ms:g} ms)")
    depth = (f"depth beyond the visible book priced by the square-root impact sigma * sqrt(Q / V) over "
             f"{cfg.execution.impact_window_s:g} s")
    return (f"{cfg.asset.name} on {venue}, {cfg.data.source} data, {cfg.evaluate.split} split ({n} decisions), horizon "
            f"{cfg.decisions.horizon_s:g} s, IS in bps incl. fees and cleanup; {fills}; {depth}. Oracle = ex-post best "
            "offset (upper bound, not a strategy).")


def comparison_note(best: str, best_val_is_bps: float, split: str, n_comparisons: int) -> str:
    return (f"Best baseline = {best}, the lowest mean IS on the validation split ({best_val_is_bps:.2f} bps there; "
            f"oracle excluded), chosen before the {split} split was scored. Diff vs best baseline = IS(policy) - "
            f"IS({best}): negative = the policy is cheaper; p-values of paired tests over decisions, Bonferroni over "
            f"the {n_comparisons} comparisons made (each policy vs the best baseline and vs the policy it started "
            "from: tables/comparisons).")


def policy_answers(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, policy_dir: Path) -> list[str]:
    """Greedy answers of the policy in ``policy_dir`` to the decisions ``idx`` (prompts rendered by its tokenizer)."""
    model, tokenizer = load_policy(ModelConfig(**{**cfg.model.__dict__, "init_from": str(policy_dir)}),
                                   device=policy_device(cfg.trainer.accelerator))
    model.eval()
    task = task.rendered(tokenizer)
    return greedy_answers(model, tokenizer, task, idx, cfg.algo.max_new_tokens, cfg.evaluate.batch_size)


def distinct_offsets(outcomes: StrategyOutcomes) -> int | None:
    """How many different offsets a policy answered on the decisions scored, to 0.1 bps (the answers' precision; the
    offsets of the orders placed differ from the answer by the tick rounding), None if unknown: 1 is a constant
    policy, which can only tie the fixed-offset baseline of that offset."""
    return None if outcomes.offset_bps is None else int(len(np.unique(np.round(outcomes.offset_bps, 1))))


def median_offset(offsets_bps: Sequence[float]) -> float | None:
    """The ensemble rule (why the median: :mod:`hyperdapo.pipeline.ensemble`): the median of the valid offsets
    (bps; NaN = an invalid answer), None when no answer is valid."""
    valid = [o for o in offsets_bps if math.isfinite(o)]
    return statistics.median(valid) if valid else None


def ensemble_answers(task: ExecutionTask, idx: np.ndarray, member_texts: list[list[str]]) -> list[str]:
    """Per decision, the answer of :func:`median_offset` of the members' answers
    (the rule the serve/paper ensemble applies); the first member's answer when no member's is valid."""
    offsets = np.stack([task.score(idx, texts, 1).offsets_bps.ravel() for texts in member_texts])  # (M, N), NaN
    medians = [median_offset(offsets[:, k].tolist()) for k in range(len(idx))]
    return [member_texts[0][k] if m is None else task.completion(i, task.answer_of_offset(i, m))
            for k, (i, m) in enumerate(zip(idx, medians, strict=True))]


def policy_outcomes(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, policy: EvaluatedPolicy) -> StrategyOutcomes:
    """The outcomes of one policy row on decisions ``idx``: its kind's, or an ensemble's median answers."""
    if len(policy.dirs) > 1:
        texts = [policy_answers(cfg, task, idx, d) for d in policy.dirs]
        return llm_outcomes(task, idx, ensemble_answers(task, idx, texts), fallback_offset_bps(cfg), policy.row)
    kind = kind_of(policy.dirs[0])
    assert kind is not None, policy.dirs[0]  # checked by evaluated_policies
    return kind.outcomes(cfg, task, idx, policy.dirs[0], policy.row)


def compare(policies: Sequence[EvaluatedPolicy], strategies: dict[str, StrategyOutcomes], best: str,
            seed: int) -> list[Comparison]:
    """Each compared policy against the best baseline and against the policy it started from; Bonferroni over
    all of these comparisons."""
    pairs = [(p.row, best, BEST) for p in policies if p.compared]
    pairs += [(p.row, p.parent, STARTED_FROM) for p in policies if p.compared and p.parent is not None]
    return [Comparison(a, b, role,
                       paired_tests({a: strategies[a].is_bps}, strategies[b].is_bps, seed, len(pairs))[a],
                       win_rate(strategies[a].is_bps, strategies[b].is_bps))
            for a, b, role in pairs]


def lineages(policies: Sequence[EvaluatedPolicy]) -> dict[str, list[dict]]:
    """The training lineage (oldest first) of every compared policy with a training summary, by row."""
    return {p.row: training_lineage(p.summary) for p in policies
            if p.compared and p.summary is not None and "run_dir" in p.summary}


def training_runs(chains: dict[str, list[dict]]) -> list[dict]:
    """Every run of the lineages once, in lineage order."""
    return list({s["run_dir"]: s for chain in chains.values() for s in chain}.values())


def write_figures(out: Path, names: list[str], metrics: dict, ci: dict, strategies: dict[str, StrategyOutcomes],
                  policy_rows: list[str], chains: dict[str, list[dict]]) -> list[Path]:
    """``strategy_is``, ``cumulative_pnl`` and the learning curves (``learning_curves`` for one policy,
    ``learning_curves_<row>`` for several); returns the PNG paths."""
    figures = out / "figures"
    bars = strategy_bars(names, np.array([metrics[n]["IS [bps]"] for n in names]), np.array([ci[n] for n in names]),
                         "implementation shortfall [bps], mean and 95% CI", policies=policy_rows)
    pngs = save_figure(bars, figures / "strategy_is")[:1]
    pngs += save_figure(cumulative_pnl({n: strategies[n].pnl_usd for n in names}, policies=policy_rows),
                        figures / "cumulative_pnl")[:1]
    for row, chain in chains.items():
        runs = [(run_label(s), Path(s["run_dir"], "metrics.csv")) for s in chain]
        runs = [(label, csv) for label, csv in runs if csv.exists()]
        if runs:
            stem = "learning_curves" if len(chains) == 1 else f"learning_curves_{row}"
            pngs += save_figure(learning_curves(runs, ["train/reward_mean", "train/loss", "val/reward_mean",
                                                       "val/valid_rate"], continuous=True), figures / stem)[:1]
    return pngs


def wandb_summary(metrics: dict, ci: dict, made: Sequence[Comparison], best: str | None) -> dict[str, float | str]:
    """The summary numbers of an evaluation: per strategy its mean IS and 95% CI (bps), per comparison the mean
    difference (bps), the p-values (raw, Bonferroni) and the win rate (%), and the best baseline's name."""
    out: dict[str, float | str] = {"eval/best_baseline": best} if best else {}
    for name, m in metrics.items():
        out |= {f"eval/{name}/is_bps": m["IS [bps]"], f"eval/{name}/is_ci_low_bps": ci[name][0],
                f"eval/{name}/is_ci_high_bps": ci[name][1]}
    for c in made:
        key = f"eval/{c.policy}/vs_{c.versus}"
        out |= {f"{key}/diff_bps": c.test["mean_diff_bps"], f"{key}/p_t": c.test["t_p"],
                f"{key}/p_t_bonf": c.test["t_p_bonf"], f"{key}/p_w": c.test["wilcoxon_p"],
                f"{key}/p_w_bonf": c.test["wilcoxon_p_bonf"], f"{key}/win_rate_pct": c.win_rate_pct}
    return out


def log_to_wandb(cfg: RunConfig, out: Path, tables: dict[str, pd.DataFrame], pngs: list[Path],
                 summary: dict[str, float | str]) -> None:
    """One W&B run (``job_type=eval``, in the sweep's group, see :func:`wandb_names`) with every table
    (``eval/tables/<stem>``, a ``wandb.Table``), every figure (``eval/figures/<stem>``, a ``wandb.Image``) and the
    summary numbers; offline unless ``logger.mode=online`` (``WANDB_MODE`` wins, as in training)."""
    import wandb
    from omegaconf import OmegaConf

    group, name = wandb_names(cfg, out)
    run = wandb.init(project=cfg.logger.project, group=group, job_type="eval", name=name, dir=str(out),
                     mode=os.environ.get("WANDB_MODE", cfg.logger.mode),
                     tags=sorted({*cfg.logger.tags, f"asset:{cfg.asset.name}", f"split:{cfg.evaluate.split}"}),
                     config=OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True))
    try:
        run.log({**{f"eval/tables/{stem}": wandb.Table(dataframe=df.astype(object).where(df.notna(), None))
                    for stem, df in tables.items()},
                 **{f"eval/figures/{png.stem}": wandb.Image(str(png)) for png in pngs}})
        run.summary.update(summary)
    finally:
        run.finish()


def evaluation_tables(cfg: RunConfig, task: ExecutionTask, n: int, metrics: dict, ci: dict, made: list[Comparison],
                      policies: list[EvaluatedPolicy], chains: dict[str, list[dict]], cap: str, best: str | None,
                      identical: dict[str, list[str]]) -> dict[str, tuple[pd.DataFrame, str, list[str], list[str]]]:
    """Every table of an evaluation: ``stem -> (table, caption, rows shown first, rows in bold)``; bold are only the
    policies significantly cheaper than the best baseline (:func:`significant_win`), in the table of that test.
    ``identical``: per policy row, the strategies it equals on every decision (named in the headline caption)."""
    rows = [p.row for p in policies]
    setting = (f"{cfg.asset.name} on {cfg.venue.name}, {cfg.data.source} data, {cfg.evaluate.split} split ({n} "
               f"decisions), horizon {cfg.decisions.horizon_s:g} s, {fill_words(cfg, task)}."
               + transfer_note(cfg, policies))
    filled = "share of decisions filled by the limit order(s) without the cleanup market order"
    win = (f"win rate = share of decisions where the policy's IS is below the best baseline's ({best}, chosen on the "
           "validation split; a tie is no win); " if best is not None else "")
    sharpe = (f"Sharpe per decision = mean / sd of the per-decision PnL, not annualised, blank below "
              f"{MIN_SHARPE_DECISIONS} decisions" if n >= MIN_SHARPE_DECISIONS else
              f"Sharpe per decision blank: fewer than {MIN_SHARPE_DECISIONS} decisions")
    detail = (f"Execution detail by strategy: fill rate = {filled}; slippage = |exec - target| / target, exec the "
              "average execution price, target the limit for the limit-filled quantity and the arrival mid for the "
              "rest (market order, cleanup); price improvement = share of fills better than the arrival mid; time to "
              f"fill over filled decisions; adverse selection {cfg.decisions.adverse_horizon_s:g} s after the fill; "
              f"{sharpe}; max drawdown of the cumulative PnL [USD]; {win}Depth-short = decisions with an order beyond "
              "the visible book (rest priced by the impact model); invalid answers = policy answers that did not parse "
              "(fallback order used). ")
    tests = {c.policy: c.test for c in made if c.role == BEST}
    winners = [name for name, t in tests.items() if significant_win(t)]
    bold = (f" Bold: a policy significantly cheaper than {best} (Diff < 0, paired t and Wilcoxon p < 0.05 after "
            f"Bonferroni){'' if winners else '; none is'}." if tests else "")
    tables = {
        "execution_quality": (execution_quality(metrics, ci, tests, reference="best baseline"),
                              "Execution quality (cost) by strategy. " + cap + bold, rows, winners),
        "execution_detail": (execution_detail(metrics), detail + setting, rows, []),
        "fill_rate": (fill_rate_comparison({cfg.asset.name: {k: m["Fill rate [%]"] for k, m in metrics.items()}}),
                      f"Fill rate [%] by strategy: {filled}. " + setting, rows, []),
    }
    traditional = [k for k in classic_baselines(cfg.evaluate.baselines) if k in metrics]
    if rows:
        groups = dict.fromkeys(tuple(sorted({row, *same})) for row, same in identical.items() if same)
        ties = "".join(f" {', '.join(g[:-1])} and {g[-1]} are identical on every decision (same IS)." for g in groups)
        versus = f"the best baseline ({best}, chosen on the validation split), " if best is not None else ""
        tables["headline"] = (headline(metrics, rows, traditional, best),
                              f"Headline metrics as the seeds report them: each policy, {versus}the traditional "
                              f"average (mean over {', '.join(traditional)} of those with a value) and the policy's "
                              "improvement over each, in % of it, positive = better (higher fill rate and price "
                              "improvement, lower slippage and time to fill); not tested, see execution_quality for "
                              f"the paired test of IS.{ties} " + setting, [], [])
    if made:
        tables["comparisons"] = (comparisons(made), "Paired comparisons made: Diff = IS(policy) - IS(versus), bps, "
                                 "negative = the policy is cheaper, with its bootstrap 95% CI; win rate = share of "
                                 "decisions where the policy's IS is below the other's; p-values of paired t and "
                                 f"Wilcoxon tests over decisions, Bonferroni over the {len(made)} comparisons. " + cap,
                                 [], [])
    if chains:
        names = ", ".join(p.dirs[0].name for p in policies if p.row in chains)
        tables["training_performance"] = (training_performance(training_runs(chains)), "Training performance of the "
                                          f"evaluated {'policy' if len(chains) == 1 else 'policies'} {names} and the "
                                          "runs they started from, oldest first. Training time = wall time of the fit "
                                          "(data building excluded).", [], [])
    return tables


@dataclass(frozen=True)
class RegimeAnalysis:
    """The decisions ``idx`` by market regime: the regimes fitted on the training split, each decision's bucket per
    regime, and the ``execution_by_regime`` table with its caption."""

    regimes: list[Regime]
    labels: dict[str, np.ndarray]  # regime -> (D,) bucket index of each decision of idx, -1 = no value
    table: pd.DataFrame
    caption: str


def regime_analysis(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, is_bps: dict[str, np.ndarray],
                    best: str | None, policies: Sequence[EvaluatedPolicy]) -> RegimeAnalysis:
    """Every strategy's IS by regime bucket (:mod:`hyperdapo.evaluation.regimes`): thresholds from the training
    split's decisions only, each compared policy tested against the validation-chosen ``best`` per bucket."""
    values = regime_values(task.features, task.instrument)
    regimes = fit_regimes(values, task.decisions.split, cfg.evaluate.regimes.quantiles)
    labels = {r.name: r.label(values[r.name][idx]) for r in regimes}
    compared = [p.row for p in policies if p.compared]
    rows = [p.row for p in policies]
    ordered = {n: is_bps[n] for n in [*rows, *(n for n in is_bps if n not in rows)]}  # the policies' columns first
    n_tests = len(buckets_with_tests(regimes, labels)) * len(compared) if best is not None else 0
    return RegimeAnalysis(regimes, labels, regime_table(regimes, labels, ordered, best, compared, cfg.seed),
                          regime_caption(regimes, cfg.evaluate.regimes.quantiles, best, n_tests,
                                         caption(cfg, task, len(idx)) + transfer_note(cfg, policies)))


def run_evaluation(cfg: RunConfig, out_dir: Path) -> dict:
    out = Path(cfg.evaluate.out_dir or out_dir)
    policies = evaluated_policies(cfg)  # before any work: a wrong policy fails in a second, not after the baselines
    task = build_task(cfg)
    idx = task.split_index(cfg.evaluate.split)
    if len(idx) < 2:
        raise ValueError(too_few_decisions(cfg.evaluate.split, len(idx), cfg.decisions))
    best, val_is = None, {}
    if policies:  # chosen on the validation decisions alone, before the evaluation split is scored
        best, val_is = best_on_validation(task, cfg.evaluate.baselines)
        log.info("best baseline on the validation split: %s (%.2f bps)", best, val_is[best])
    with timed(log, f"backtest: baselines ({len(idx)} decisions)"):
        strategies: dict[str, StrategyOutcomes] = baseline_outcomes(task, idx, cfg.evaluate.baselines)
    for p in policies:
        with timed(log, f"backtest: policy {p.row} ({'+'.join(d.name for d in p.dirs)})"):
            strategies[p.row] = policy_outcomes(cfg, task, idx, p)
    per_day = 86_400 / cfg.decisions.every_s
    metrics = {name: strategy_metrics(o, per_day) for name, o in strategies.items()}
    ci = {name: mean_ci(o.is_bps, cfg.seed) for name, o in strategies.items()}
    made = compare(policies, strategies, best, cfg.seed) if best is not None else []
    for c in made:
        if c.role == BEST:
            metrics[c.policy]["Win rate [%]"] = c.win_rate_pct
    cap = caption(cfg, task, len(idx)) + transfer_note(cfg, policies) + (
        f" {comparison_note(best, val_is[best], cfg.evaluate.split, len(made))}" if best is not None else "")
    chains = lineages(policies)
    is_bps = {n: o.is_bps for n, o in strategies.items()}
    identical = {p.row: identical_to(is_bps, p.row) for p in policies}
    tables = evaluation_tables(cfg, task, len(idx), metrics, ci, made, policies, chains, cap, best, identical)
    tables["execution_by_objective"] = (
        by_objective(is_bps, task.decisions.objective[idx]),
        "Implementation shortfall [bps] by the objective each decision's prompt states (n = decisions); the reward "
        + ("adds each objective's components (reward.objective_weights). " if cfg.reward.objective_weights else
           "is the same for every objective. ") + cap, [p.row for p in policies], [])
    regimes = regime_analysis(cfg, task, idx, is_bps, best, policies)
    tables["execution_by_regime"] = (regimes.table, regimes.caption, [], [])
    for stem, (df, text, first, bold) in tables.items():
        write_table(df, out / "tables", stem, text, policies=first, bold=bold)
    names = [n for n in strategies if n not in NOT_STRATEGIES]
    pngs = write_figures(out, names, metrics, ci, strategies, [p.row for p in policies], chains)
    pngs += save_figure(regime_lines(bucket_means(regimes.table, regimes.regimes, names), bucket_ticks(regimes.table),
                                     [p.row for p in policies]),
                        out / "figures" / "execution_by_regime")[:1]
    decisions = pd.DataFrame({"ts_us": task.decisions.ts_us[idx], **{f"is_bps_{n}": o.is_bps for n, o in
                                                                     strategies.items()},
                              **{f"offset_bps_{p.row}": strategies[p.row].offset_bps for p in policies
                                 if strategies[p.row].offset_bps is not None},
                              **{f"regime_{r.name.replace(' ', '_')}": bucket_names(r, regimes.labels[r.name])
                                 for r in regimes.regimes}})
    with atomic_path(out / "decisions.parquet") as tmp:
        decisions.to_parquet(tmp, index=False)
    policy = (None if not policies else f"{ENSEMBLE}({', '.join(map(str, policies[0].dirs))})"
              if len(policies[0].dirs) > 1 else ", ".join(str(p.dirs[0]) for p in policies if p.compared))
    result = {"asset": cfg.asset.name, "venue": cfg.venue.name, "fills": fill_words(cfg, task), "caption": cap,
              "policy": policy,
              "policies": {p.row: {"dirs": [str(d) for d in p.dirs], "compared": p.compared, "started_from": p.parent,
                                   "distinct_offsets": distinct_offsets(strategies[p.row]),
                                   "trained_on": [asdict(m) for m in p.trained_on]} for p in policies},
              "best_baseline": {"name": best, "chosen_on": "val", "val_is_bps": val_is} if best else None,
              "metrics": metrics, "is_ci": ci, "comparisons": [asdict(c) for c in made],
              "regimes": {r.name: {"unit": r.unit, "edges": list(r.edges), "buckets": list(r.buckets),
                                   "fitted_on": "train"} for r in regimes.regimes},
              "training": {row: chain[-1] for row, chain in chains.items()}}
    write_text_atomic(out / "results.json", json.dumps(result, indent=2, default=str))
    if cfg.logger.name == "wandb":
        log_to_wandb(cfg, out, {stem: df for stem, (df, *_) in tables.items()}, pngs,
                     wandb_summary(metrics, ci, made, best))
    print((out / "tables" / "execution_quality.md").read_text())
    return result
