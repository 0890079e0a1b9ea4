"""Paper trading in replay: a trained policy trades recorded market data as it unfolds, beside the baselines.

The market is read through the same readers and cache as training (any ``data=`` source, e.g. the shared
Hyperliquid hour with ``experiment=hl_sample``: book only, so fills use the book-only rule). Every ``every_s``
seconds of market time after the training period (the baselines' fit period: ``decisions.train_frac`` of the span,
plus the embargo) the policy is asked for one order from the causal features at that time
(:class:`~hyperdapo.pipeline.trained.TrainedPolicy`, the prompts and parser of training); the order is simulated
on the events that follow by the backtest's fill simulator (placement latency, horizon, cleanup market order, fees),
an invalid answer is replaced by the ``evaluate.fallback`` fixed offset and counted. The baselines trade the same
decisions. ``speed`` > 0 paces the replay at that many market seconds per wall second (0: as fast as possible).

Outputs in ``out_dir``: ``paper_log.jsonl`` (one line per decision, written as it happens: time, mid USD, side,
quantity, answer, order, fill, IS bps of the policy and of each baseline), ``tables/paper_summary.{md,tex,csv}``
(IS, fill rate, the policy's paired test against each baseline with the backtest's sign, :data:`DIFF`) and
``summary.json``.

A policy trained on another asset than the market's is refused, as ``evaluate.py`` refuses it, unless
``evaluate.allow_other_asset=true``; one trained on another market (venue, price tick, lot, data source or fill rule)
is refused naming each field unless ``evaluate.allow_transfer=true``, evaluate.py's check
(:func:`~hyperdapo.pipeline.evaluate_run.transfer_from`); the summary's caption then states the transfer
(:func:`check_asset`, :func:`transfer_words`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hyperdapo.atomic import write_text_atomic
from hyperdapo.data.schema import Side
from hyperdapo.evaluation.baselines import baseline_outcomes, llm_outcomes, single_offset
from hyperdapo.evaluation.metrics import StrategyOutcomes, strategy_metrics
from hyperdapo.evaluation.stats import mean_ci, paired_tests, significant_win
from hyperdapo.evaluation.tables import execution_quality, write_table
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import Objective
from hyperdapo.features.decision_set import Split
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.ensemble import EnsemblePolicy
from hyperdapo.pipeline.evaluate_run import (
    CANDIDATE,
    NOT_STRATEGIES,
    EvaluatedPolicy,
    Market,
    transfer_from,
    transfer_note,
)
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.pipeline.trained import DecisionInput, Order, TrainedPolicy, answer_prefix, run_config_of

log = logging.getLogger(__name__)
US_PER_S = 1_000_000
DIFF = f"Diff ({CANDIDATE} - row) [bps]"  # IS(policy) - IS(row): the backtest tables' sign, policy minus the other


def check_asset(policy: TrainedPolicy | EnsemblePolicy, cfg: RunConfig, live: bool = False) -> None:
    """Refuse to trade ``cfg``'s asset with a policy trained on another one unless ``evaluate.allow_other_asset``,
    and ``cfg``'s market with a policy (each member of an ensemble) trained on another venue, tick, lot, data source
    or fill rule unless ``evaluate.allow_transfer`` (the rules of ``evaluate.py``, its transfer check reused;
    ``live``: the stream is the data, so only the venue, tick and lot are compared)."""
    if policy.asset != cfg.asset.name and not cfg.evaluate.allow_other_asset:
        raise ValueError(f"policy={policy.path} was trained on {policy.asset}, not asset={cfg.asset.name}; pass "
                         "evaluate.allow_other_asset=true to paper-trade it there anyway")
    trained_on(policy, cfg, live)


def policy_dirs(policy: TrainedPolicy | EnsemblePolicy) -> list[Path]:
    """The registry directories of a policy: its own, or its members'."""
    return [m.path for m in policy.members] if isinstance(policy, EnsemblePolicy) else [policy.path]


def trained_on(policy: TrainedPolicy | EnsemblePolicy, cfg: RunConfig, live: bool = False) -> tuple[Market, ...]:
    """The other markets ``policy`` was trained on (none: ``cfg``'s own market); an error naming the policy, both
    markets and each differing field unless ``evaluate.allow_transfer=true``. ``live``: ``cfg``'s data source is
    not what is traded (the stream is), so each policy is compared with its own data source and fill rule."""
    def here(d: Path) -> RunConfig:
        return replace(cfg, data=run_config_of(d).data) if live else cfg

    return tuple(dict.fromkeys(m for d in policy_dirs(policy) if (m := transfer_from(
        d, here(d), "policy", action="paper-trade it on this market anyway (the caption states the transfer)",
        here_words="the paper-trading market's")) is not None))


def transfer_words(policy: TrainedPolicy | EnsemblePolicy, cfg: RunConfig, live: bool = False) -> str:
    """The caption's sentence on a transfer ("" when the policy was trained on ``cfg``'s market), as the backtest's."""
    markets = trained_on(policy, cfg, live)
    return transfer_note(cfg, [EvaluatedPolicy(CANDIDATE, tuple(policy_dirs(policy)), None, trained_on=markets)])


def paper_trade(policy: TrainedPolicy, market_cfg: RunConfig, out_dir: Path | str, speed: float = 0.0) -> dict:
    """Replay ``market_cfg``'s market (its ``decisions.every_s`` is the decision interval) with ``policy``; returns
    the summary (also ``summary.json``)."""
    check_asset(policy, market_cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(market_cfg, prompt=policy.cfg.prompt)  # score answers with the policy's own prefill and band
    task = build_task(cfg)
    idx = np.sort(np.concatenate([task.split_index(Split.VAL), task.split_index(Split.TEST)]))
    if len(idx) < 2:
        raise ValueError(f"{len(idx)} decisions after the training period: use more data or a smaller "
                         "decisions.every_s / decisions.train_frac")
    d = task.decisions
    fallback_bps = cfg.evaluate.baselines.fixed_offsets_bps[cfg.evaluate.fallback]
    baselines = baseline_outcomes(task, idx, cfg.evaluate.baselines)  # each decision's outcome uses its own window
    completions = []
    t_wall = time.perf_counter()
    with (out / "paper_log.jsonl").open("w") as logf:
        for k, i in enumerate(idx):
            if speed > 0:
                lag_s = (d.ts_us[i] - d.ts_us[idx[0]]) / US_PER_S / speed - (time.perf_counter() - t_wall)
                time.sleep(max(lag_s, 0.0))
            side = Side(int(d.side[i]))
            order = policy.decide([DecisionInput(task.features[i], side, float(d.qty[i]), Objective(d.objective[i]),
                                                 d.horizon_s)])[0]
            completions.append(order.answer[len(answer_prefix(cfg, side)):])
            offset = order.offset_bps if order.valid else fallback_bps
            row = order_row(task, i, order, offset, {n: o.is_bps[k] for n, o in baselines.items()})
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            if k % 20 == 0 or k == len(idx) - 1:
                log.info("decision %d/%d: %s -> %s (IS %.2f bps)", k + 1, len(idx), order.answer,
                         "filled" if row["filled"] else "cleanup", row["is_bps"])
    strategies = {**baselines, CANDIDATE: llm_outcomes(task, idx, completions, fallback_bps)}
    span = f"{utc_text(d.ts_us[idx[0]])} to {utc_text(d.ts_us[idx[-1]])} UTC"
    head = (f"Paper trading (replay) of {policy.path.name} on {cfg.asset.name} {cfg.data.source} data, {span}: "
            f"{len(idx)} decisions every {cfg.decisions.every_s:g} s after the training period")
    return summarize(out, cfg, policy, strategies, head, not task.tape.book_only, time.perf_counter() - t_wall)


def order_row(task: ExecutionTask, i: int, order: Order, offset_bps: float, baselines_is_bps: dict) -> dict:
    """The running log's line of decision ``i``: the policy's order (``offset_bps``: its offset, or the fallback's
    when invalid) simulated by the backtest's fill model, beside the baselines' IS (bps) on the same decision."""
    d = task.decisions
    llm = single_offset(CANDIDATE, task, np.array([i]), np.array([offset_bps]))
    return {"ts_us": int(d.ts_us[i]), "mid_usd": float(task.mid_usd[i]), "side": Side(int(d.side[i])).name,
            "qty": float(d.qty[i]), "objective": str(d.objective[i]), "answer": order.answer, "valid": order.valid,
            "reason": order.reason, "offset_bps": float(offset_bps), "limit_px": float(llm.target_price[0]),
            "filled": bool(llm.fill_share[0] >= 1), "time_to_fill_s": _finite(llm.time_to_fill_s[0]),
            "is_bps": float(llm.is_bps[0]), "baselines_is_bps": {n: float(v) for n, v in baselines_is_bps.items()}}


def summarize(out: Path, cfg: RunConfig, policy: TrainedPolicy, strategies: dict[str, StrategyOutcomes], head: str,
              has_trades: bool, wall_s: float, live: bool = False) -> dict:
    """Write ``tables/paper_summary.*`` and ``summary.json`` of ``strategies`` (the policy's outcomes under
    ``llm``); ``head`` opens the caption (mode, policy, market, span), a transfer closes it (``live``: see
    :func:`trained_on`). Returns the summary."""
    per_day = 86_400 / cfg.decisions.every_s
    metrics = {n: strategy_metrics(o, per_day) for n, o in strategies.items()}
    ci = {n: mean_ci(o.is_bps, cfg.seed) for n, o in strategies.items()}
    tests = versus_baselines(strategies, cfg.seed)
    fills = ("fills by trades printing through the limit price" if has_trades else "book-only fills (a resting "
             "order fills when the opposite best reaches its price; no trades in the data)")
    caption = (f"{head}, horizon {cfg.decisions.horizon_s:g} s, IS in bps incl. fees and cleanup; {fills}; invalid "
               f"answers ({int(metrics[CANDIDATE]['Invalid'])}) replaced by the {cfg.evaluate.fallback} offset. "
               "Oracle = ex-post best offset (upper bound). Diff (llm - row) = IS(llm) - IS(row), bps, negative = the "
               "policy is cheaper (the sign of the backtest tables: policy minus the other); paired tests over "
               "decisions, Bonferroni over the baselines." + transfer_words(policy, cfg, live))
    table = execution_quality(metrics, ci, tests, CANDIDATE).rename(columns={f"Diff vs {CANDIDATE} [bps]": DIFF},
                                                                     errors="raise")
    table.insert(1, "Fill rate [%]", [metrics[n]["Fill rate [%]"] for n in table["Strategy"]])
    wins = bool(tests) and all(significant_win(t) for t in tests.values())  # cheaper than every baseline
    write_table(table, out / "tables", "paper_summary", caption + (" Bold: the policy is significantly cheaper than "
                "every baseline (paired t and Wilcoxon, Bonferroni p < 0.05)." if wins else ""),
                bold=[CANDIDATE] if wins else [])
    summary = {"policy": str(policy.path), "asset": cfg.asset.name, "decisions": len(strategies[CANDIDATE].is_bps),
               "caption": caption, "metrics": metrics, "is_ci": ci, "tests": tests, "wall_s": wall_s}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def versus_baselines(strategies: dict[str, StrategyOutcomes], seed: int) -> dict[str, dict]:
    """Per baseline (the oracle and other non-strategies left out): the paired test of the policy (``llm``) against
    it, the policy first as in the backtest's comparisons (``mean_diff_bps`` = IS(llm) - IS(baseline), bps, negative =
    the policy is cheaper), Bonferroni over the baselines."""
    base = {n: o.is_bps for n, o in strategies.items() if n not in (CANDIDATE, *NOT_STRATEGIES)}
    llm = {CANDIDATE: strategies[CANDIDATE].is_bps}
    return {n: paired_tests(llm, is_bps, seed, len(base))[CANDIDATE] for n, is_bps in base.items()}


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def utc_text(ts_us: int) -> str:
    """``ts_us`` as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return str(np.datetime64(int(ts_us), "us").astype("datetime64[s]")).replace("T", " ")
