"""Robustness (``make robustness``, issue 23 item 3): every policy and baseline under every stress scenario of
``conf/scenario/`` on the same test decisions as the clean market.

    .venv/bin/python experiments/robustness.py [--policies NAME_OR_DIR ...] [--scenarios NAME ...]
                                               [--set KEY=VALUE ...] [--out outputs/tables]

One backtest (``evaluate.py``'s :func:`~hyperdapo.pipeline.evaluate_run.run_evaluation`) per market: the clean one
(``scenario=none``) and one per scenario, all with ``experiment=demo`` on one synthetic day (``--set`` adds or
overrides keys, e.g. ``decisions.every_s=30``) and the policies of ``--policies`` (``evaluate.policies``: registry run
names or directories; none = the baselines only). The scenario's market has the clean market's seed, so the decisions
(times, sides, USD notionals, objectives) are the same; the quantity in coins follows the mid. The one-off events are
moved into the test split, whose period starts at ``f = decisions.train_frac + decisions.val_frac`` of the span: the
regime switch at ``f`` (the test period after it, training and validation before), the flash crash a quarter into the
test period, the liquidity drought over the whole test period; spoofing and momentum ignition run throughout (their
YAML parameters otherwise). The policies are the ones given, trained on the clean market: they are not retrained.

Per scenario and strategy (the oracle left out: an upper bound, not a strategy) the table gives the mean IS (bps,
cost positive, fees and cleanup included) on the clean market and under the scenario and the paired difference
``IS(scenario) - IS(clean)`` per decision (bps, positive = the scenario costs the strategy more) with its bootstrap
95% CI and paired t and Wilcoxon p-values, Bonferroni over every test of the table. A scenario re-draws the trade tape
(the generator's draws after the scenario's first change shift), so a difference also carries that noise, paired
away only in part.

Writes ``<out>/robustness.{md,tex,csv,caption.txt}``; the backtests go to ``outputs/eval_robustness/<scenario>/``.
Budget: six backtests of a synthetic day (534 test decisions at the demo's 15-s grid), each simulating its market
the first time: 10 min wall with one tiny-model policy on the shared 2 cores at load 3.5 (measured, markets not yet
written); each further policy adds its greedy answers, six times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hyperdapo import CONF_DIR
from hyperdapo.evaluation.baselines import ORACLE
from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import IDENTICAL, write_table
from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.pipeline.evaluate_run import run_evaluation

CLEAN = "none"
SETUP = ["experiment=demo", "data.synthetic.n_days=1", "logger=none"]


def scenario_names() -> list[str]:
    """Every option of ``conf/scenario/`` but ``none``, in name order."""
    return sorted(p.stem for p in (CONF_DIR / "scenario").glob("*.yaml") if p.stem != CLEAN)


def event_overrides(name: str, test_from: float) -> list[str]:
    """The keys that move a one-off event into the test split, which starts at ``test_from`` of the span."""
    key = "data.synthetic.scenario"
    return {"regime_switch": [f"{key}.at_frac={test_from}"],
            "flash_crash": [f"{key}.at_frac={test_from + (1 - test_from) / 4}"],
            "liquidity_drought": [f"{key}.start_frac={test_from}", f"{key}.end_frac=1.0"]}.get(name, [])


def robustness_table(runs: dict[str, pd.DataFrame], seed: int = 0) -> pd.DataFrame:
    """One row per (scenario, strategy) from the per-decision IS of each backtest (``decisions.parquet`` frames keyed
    by scenario, ``none`` the clean market; their ``ts_us`` must agree): the mean IS clean and under the scenario and
    the paired test of ``IS(scenario) - IS(clean)`` (bps), Bonferroni over every row; ``Identical``: the scenario left
    the strategy's IS unchanged on every decision (the tables print "identical", not p = 1)."""
    clean = runs[CLEAN]
    strategies = [c.removeprefix("is_bps_") for c in clean.columns
                  if c.startswith("is_bps_") and c != f"is_bps_{ORACLE}"]
    for name, frame in runs.items():
        if not np.array_equal(frame["ts_us"].to_numpy(), clean["ts_us"].to_numpy()):
            raise ValueError(f"scenario {name}: its test decisions are not the clean market's (another seed, span or "
                             "decision grid?); robustness compares the same decisions only")
    scenarios = [n for n in runs if n != CLEAN]
    m = len(scenarios) * len(strategies)
    rows = []
    for name in scenarios:
        for s in strategies:
            stressed, base = runs[name][f"is_bps_{s}"].to_numpy(), clean[f"is_bps_{s}"].to_numpy()
            t = paired_tests({s: stressed}, base, seed, m)[s]
            rows.append({"Scenario": name, "Strategy": s, "IS clean [bps]": float(base.mean()),
                         "IS scenario [bps]": float(stressed.mean()), "Diff [bps]": t["mean_diff_bps"],
                         "Diff CI low [bps]": t["ci_low"], "Diff CI high [bps]": t["ci_high"],
                         "p (t, Bonf.)": t["t_p_bonf"], "p (W, Bonf.)": t["wilcoxon_p_bonf"],
                         IDENTICAL: t["identical"]})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", nargs="*", default=[], help="evaluate.policies entries (run names or directories)")
    ap.add_argument("--scenarios", nargs="*", default=None, help="default: every option of conf/scenario/")
    ap.add_argument("--set", nargs="*", default=[], help="more overrides for every backtest, key=value")
    ap.add_argument("--eval-dir", default="outputs/eval_robustness")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = [*SETUP, *args.set, *([f"evaluate.policies=[{','.join(args.policies)}]"] if args.policies else
                                 ["evaluate.policy=none"])]
    clean_cfg = compose_run_config(base, "evaluate")
    test_from = clean_cfg.decisions.train_frac + clean_cfg.decisions.val_frac
    runs, results = {}, {}
    for name in [CLEAN, *(args.scenarios if args.scenarios is not None else scenario_names())]:
        cfg = compose_run_config([*base, f"scenario={name}", *event_overrides(name, test_from)], "evaluate")
        out = Path(args.eval_dir) / name
        results[name] = run_evaluation(cfg, out)
        runs[name] = pd.read_parquet(out / "decisions.parquet")
    table = robustness_table(runs, clean_cfg.seed)
    n = len(runs[CLEAN])
    policies = ", ".join(args.policies) if args.policies else "none (baselines only)"
    write_table(table, Path(args.out), "robustness",
                f"Robustness: implementation shortfall [bps] of each strategy on the clean synthetic market and under "
                f"each stress scenario (conf/scenario/), on the same {n} test decisions ({clean_cfg.asset.name} on "
                f"{results[CLEAN]['venue']}, horizon {clean_cfg.decisions.horizon_s:g} s, {results[CLEAN]['fills']}); "
                "one-off events placed in the test split (experiments/robustness.py). Diff = IS(scenario) - IS(clean) "
                "per decision, bps, positive = the scenario costs the strategy more, with its bootstrap 95% CI; "
                f"p-values of paired t and Wilcoxon tests, Bonferroni over the {len(table)} rows. Policies (trained on "
                f"the clean market, not retrained): {policies}. Wall time {(time.perf_counter() - t0) / 60:.0f} min.",
                policies=(), bold=())
    print((Path(args.out) / "robustness.md").read_text())


if __name__ == "__main__":
    main()
