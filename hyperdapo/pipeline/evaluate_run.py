"""One backtest: an asset's evaluation split, every baseline, the trained policy (``llm``), statistics,
tables and figures.

Outputs (``<out>/``): ``results.json`` (metrics, CIs, tests, caption), ``decisions.parquet`` (per-decision
IS and PnL of every strategy), ``tables/`` (execution_quality, fill_rate, training_performance as md, tex,
csv) and ``figures/`` (learning_curves.png, strategy_is.png, cumulative_pnl.png).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hyperdapo.atomic import atomic_path, write_text_atomic
from hyperdapo.evaluation.baselines import baseline_outcomes, llm_outcomes
from hyperdapo.evaluation.figures import cumulative_pnl, learning_curves, save_figure, strategy_bars
from hyperdapo.evaluation.metrics import StrategyOutcomes, strategy_metrics
from hyperdapo.evaluation.stats import mean_ci, paired_tests
from hyperdapo.evaluation.tables import (
    execution_detail,
    execution_quality,
    fill_rate_comparison,
    run_label,
    training_lineage,
    training_performance,
    write_table,
)
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import too_few_decisions
from hyperdapo.models.policy import ModelConfig, load_policy, policy_device
from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.rl.rollout import sample
from hyperdapo.timing import timed

log = logging.getLogger(__name__)
CANDIDATE = "llm"
ENSEMBLE = "ensemble"  # evaluate.policy=ensemble: the median offset of evaluate.members' answers
NOT_STRATEGIES = ("oracle",)  # reported as an upper bound, never compared as a strategy


def find_policy(cfg: RunConfig) -> Path | None:
    """The policy directory: explicit, or the newest run of the asset in the registry (optionally filtered).
    Checked before anything is computed: a run directory, a policy of another asset (unless
    ``evaluate.allow_other_asset=true``) or an empty registry is an error naming ``evaluate.policy``."""
    choice = cfg.evaluate.policy
    if choice == "none":
        return None
    if choice == "latest":
        root = Path(cfg.registry_dir) / cfg.asset.name
        runs = sorted((p for p in root.glob(f"{cfg.evaluate.algo_filter}*") if (p / "summary.json").exists()),
                      key=lambda p: p.stat().st_mtime)
        if not runs:
            raise FileNotFoundError(f"evaluate.policy=latest: no trained policy under {root} (run train.py first, or "
                                    "pass evaluate.policy=none for the baselines only)")
        path = runs[-1]
    else:
        path = Path(choice)
    _check_policy_dir(path, cfg)
    return path


def _check_policy_dir(path: Path, cfg: RunConfig) -> None:
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").exists() else {}
    if not any((path / f).exists() for f in ("config.json", "adapter_config.json")):
        hint = (f"it is a training run's directory; its policy is {summary['policy_dir']}" if "policy_dir" in summary
                else "expected a policy directory written by train.py (outputs/models/<ASSET>/<run_name>), with "
                "config.json or adapter_config.json and the tokenizer")
        raise FileNotFoundError(f"evaluate.policy={path}: {hint}")
    trained_on = summary.get("asset")
    if trained_on and trained_on != cfg.asset.name and not cfg.evaluate.allow_other_asset:
        raise ValueError(f"evaluate.policy={path} was trained on {trained_on}, not asset={cfg.asset.name}; pass "
                         "evaluate.allow_other_asset=true to evaluate it there anyway")


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


def caption(cfg: RunConfig, task: ExecutionTask, n: int) -> str:
    fills = ("book-only fills (a resting order fills when the opposite best reaches its price; no trades in "
             "the data)" if task.market.trades is None else "fills by trades printing through the limit price")
    venue = (f"{cfg.venue.name} (maker {cfg.venue.maker_fee_bps:g} / taker {cfg.venue.taker_fee_bps:g} bps, latency "
             f"{cfg.venue.latency_ms:g} ms)")
    depth = (f"depth beyond the visible book priced by the square-root impact sigma * sqrt(Q / V) over "
             f"{cfg.execution.impact_window_s:g} s (Depth-short counts those decisions)")
    return (f"{cfg.asset.name} on {venue}, {cfg.data.source} data, {cfg.evaluate.split} split ({n} decisions), horizon "
            f"{cfg.execution.horizon_s:g} s, IS in bps incl. fees and cleanup; {fills}; {depth}. Oracle = ex-post best "
            "offset (upper bound, not a strategy). Diff vs llm = IS(strategy) - IS(llm): negative = the strategy "
            "is cheaper than llm; p-values of paired tests over decisions, Bonferroni over the baselines.")


def evaluated_policies(cfg: RunConfig) -> list[Path]:
    """The policy directories ``evaluate.policy`` names, checked before any work: none, one, or the members of
    ``evaluate.policy=ensemble`` (``evaluate.members``)."""
    if cfg.evaluate.policy != ENSEMBLE:
        return [p for p in [find_policy(cfg)] if p is not None]
    members = [Path(m) for m in cfg.evaluate.members]
    for m in members:
        _check_policy_dir(m, cfg)
    return members


def policy_answers(cfg: RunConfig, task: ExecutionTask, idx: np.ndarray, policy_dir: Path) -> list[str]:
    """Greedy answers of the policy in ``policy_dir`` to the decisions ``idx`` (prompts rendered by its tokenizer)."""
    model, tokenizer = load_policy(ModelConfig(**{**cfg.model.__dict__, "init_from": str(policy_dir)}),
                                   device=policy_device(cfg.trainer.accelerator))
    model.eval()
    task.render(tokenizer)
    return greedy_answers(model, tokenizer, task, idx, cfg.algo.max_new_tokens, cfg.evaluate.batch_size)


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


def run_evaluation(cfg: RunConfig, out_dir: Path) -> dict:
    out = Path(cfg.evaluate.out_dir or out_dir)
    members = evaluated_policies(cfg)  # before any work: a wrong policy fails in a second, not after the baselines
    policy_dir = members[0] if len(members) == 1 else None  # a single policy: its training table and curves
    task = build_task(cfg)
    idx = task.split_index(cfg.evaluate.split)
    if len(idx) < 2:
        raise ValueError(too_few_decisions(cfg.evaluate.split, len(idx), cfg.decisions))
    with timed(log, f"backtest: baselines ({len(idx)} decisions)"):
        strategies: dict[str, StrategyOutcomes] = baseline_outcomes(task, idx, cfg.evaluate.baselines)
    summary = None
    if members:
        with timed(log, f"backtest: policy {'+'.join(m.name for m in members)}"):
            texts = [policy_answers(cfg, task, idx, m) for m in members]
            answers = texts[0] if len(texts) == 1 else ensemble_answers(task, idx, texts)
            fallback = cfg.evaluate.baselines.fixed_offsets_bps[cfg.evaluate.fallback]
            strategies[CANDIDATE] = llm_outcomes(task, idx, answers, fallback)
        if policy_dir is not None and (policy_dir / "summary.json").exists():
            summary = json.loads((policy_dir / "summary.json").read_text())
    per_day = 86_400 / cfg.decisions.every_s
    metrics = {name: strategy_metrics(o, per_day) for name, o in strategies.items()}
    ci = {name: mean_ci(o.is_bps, cfg.seed) for name, o in strategies.items()}
    tests = {}
    if CANDIDATE in strategies:
        base = {n: o.is_bps for n, o in strategies.items() if n not in (CANDIDATE, *NOT_STRATEGIES)}
        tests = paired_tests(base, strategies[CANDIDATE].is_bps, cfg.seed)
    cap = caption(cfg, task, len(idx))
    tables = out / "tables"
    fill_rule = "book-only fills" if task.market.trades is None else "trade-through fills"
    setting = (f"{cfg.asset.name}, {cfg.data.source} data, {cfg.evaluate.split} split ({len(idx)} decisions), "
               f"horizon {cfg.execution.horizon_s:g} s, {fill_rule}.")
    filled = "share of decisions filled by the limit order(s) without the cleanup market order"
    write_table(execution_quality(metrics, ci, tests), tables, "execution_quality",
                "Execution quality (cost) by strategy. " + cap)
    write_table(execution_detail(metrics), tables, "execution_detail",
                f"Execution detail by strategy: fill rate = {filled}; slippage = |exec - limit| / limit; price "
                "improvement = share of fills better than the arrival mid; time to fill over filled decisions; "
                f"adverse selection {cfg.execution.adverse_horizon_s:g} s after the fill; Sharpe of the per-decision "
                "PnL, annualised; invalid answers = policy answers that did not parse (fallback order used). "
                + setting)
    fills = fill_rate_comparison({cfg.asset.name: {n: m["Fill rate [%]"] for n, m in metrics.items()}})
    write_table(fills, tables, "fill_rate", f"Fill rate [%] by strategy: {filled}. " + setting)
    lineage = training_lineage(summary) if summary is not None else []
    if lineage:
        write_table(training_performance(lineage), tables, "training_performance",
                    f"Training performance of the evaluated policy {policy_dir.name} and the runs it started from, "
                    "oldest first. Training time = wall time of the fit (data building excluded).", policies=())
    names = [n for n in strategies if n not in NOT_STRATEGIES]
    figures = out / "figures"
    save_figure(strategy_bars(names, np.array([metrics[n]["IS [bps]"] for n in names]),
                              np.array([ci[n] for n in names]), "implementation shortfall [bps], mean and 95% CI"),
                figures / "strategy_is")
    save_figure(cumulative_pnl({n: strategies[n].pnl_usd for n in names}), figures / "cumulative_pnl")
    runs = [(run_label(s), Path(s["run_dir"], "metrics.csv")) for s in lineage]
    runs = [(label, csv) for label, csv in runs if csv.exists()]
    if runs:
        save_figure(learning_curves(runs, ["train/reward_mean", "train/loss", "val/reward_mean", "val/valid_rate"],
                                    continuous=True), figures / "learning_curves")
    decisions = pd.DataFrame({"ts_us": task.decisions.ts_us[idx], **{f"is_bps_{n}": o.is_bps for n, o in
                                                                     strategies.items()}})
    with atomic_path(out / "decisions.parquet") as tmp:
        decisions.to_parquet(tmp, index=False)
    policy = f"{ENSEMBLE}({', '.join(map(str, members))})" if len(members) > 1 else str(policy_dir) if members else None
    result = {"asset": cfg.asset.name, "caption": cap, "policy": policy,
              "metrics": metrics, "is_ci": ci, "tests": tests, "training": summary}
    write_text_atomic(out / "results.json", json.dumps(result, indent=2, default=str))
    print((tables / "execution_quality.md").read_text())
    return result
