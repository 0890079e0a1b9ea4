"""What DAPO adds: SFT, SFT->DAPO, SFT->GRPO, SFT->DPO and PPO over seeds (``make evidence``, ``make evidence-real``).

    .venv/bin/python experiments/evidence.py [--seeds 0 1 2] [--sft-steps 400] [--rl-steps 500] [--dpo-steps 500]
    .venv/bin/python experiments/evidence.py --preset standx_btc --policies sft dapo grpo ppo ...   # real data

``--preset demo`` (default): the synthetic demo market; ``--preset standx_btc``: the real StandX BTC recording
(``experiment=standx_btc``: train / validation / test by time); ``--set key=value`` adds overrides to every run.

Per seed s (the training seed: model init, batches, rollouts; the market and the decisions stay those of seed 0, so
the same test decisions are compared across seeds): SFT on ex-post best offsets, then DAPO, GRPO and DPO from that
SFT policy, and the PPO baseline on the features (``algo=ppo``); one backtest of the five policies
(``evaluate.policies=[...]``) on the test split, whose best baseline is chosen on the validation split. The
settings are the demo's (``make demo``: SFT 400 steps at lr 3e-3, RL 500 steps at lr 1e-4; chosen on the validation
reward in earlier sessions); nothing here reads the test split before the final backtests.

Writes ``outputs/tables/evidence.{md,tex,csv}``: per policy, mean +- sd over seeds of the test IS (bps, lower is
better), fill rate (%) and the final greedy validation reward (bps); and pooled paired tests over decisions x
seeds (per-decision IS differences of all seeds together; the seeds share the test decisions, so the pooled n
overstates independence; the per-seed mean differences are reported too): every policy against the best baseline
of its seed's validation split and each RL policy against its SFT start, Bonferroni over all of them. The share of
the baseline-to-oracle gap a policy closes is ``(IS_base - IS_policy) / (IS_base - IS_oracle)``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import format_p, write_table

POLICIES = ("sft", "dapo", "grpo", "dpo", "ppo")
STARTED_FROM_SFT = ("dapo", "grpo", "dpo")
PRESETS = {  # one market, one set of decisions for every seed
    "demo": (["experiment=demo", "data.synthetic.seed=0", "decisions.seed=0"],
             "the demo market (synthetic BTC, 120-s horizon, tiny model, CPU)"),
    "standx_btc": (["experiment=standx_btc", "decisions.seed=0"],
                   "real data: StandX BTC-USD perpetual, 49 h (train / validation / test by time), 60-s horizon, "
                   "tiny model, CPU"),
}


def run(args: list[str], reuse: Path | None = None) -> None:
    """Run a train.py / evaluate.py command; with ``reuse``, skip it when that registry entry is finished already."""
    if reuse is not None and (reuse / "summary.json").exists():
        print(f"= reusing {reuse}", flush=True)
        return
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], check=True)


def train_seed(seed: int, args: argparse.Namespace, reg: str) -> dict[str, Path]:
    """The policies of one seed, trained into the registry; their directories by policy name."""
    root = Path(args.registry) / "BTC"
    name = {p: f"{args.name}-s{seed}-{p}" for p in args.policies}
    common = [*PRESETS[args.preset][0], f"seed={seed}", reg, "overwrite=true", *args.set]
    reuse = lambda p: root / name[p] if args.reuse else None  # noqa: E731
    run(["train.py", *common, "algo=sft", f"trainer.max_steps={args.sft_steps}", f"optim.lr={args.sft_lr}",
         f"run_name={name['sft']}"], reuse("sft"))
    sft = root / name["sft"]
    for algo, steps in (("dapo", args.rl_steps), ("grpo", args.rl_steps), ("dpo", args.dpo_steps)):
        if algo not in args.policies:
            continue
        rl = ["algo.sft_warmup_steps=0", f"algo.max_gen_batches={args.max_gen_batches}"] if algo != "dpo" else []
        run(["train.py", *common, f"algo={algo}", *rl, f"trainer.max_steps={steps}", f"optim.lr={args.rl_lr}",
             f"model.init_from={sft}", f"run_name={name[algo]}"], reuse(algo))
    if "ppo" in args.policies:
        run(["train.py", *common, "algo=ppo", f"run_name={name['ppo']}"], reuse("ppo"))
    return {p: root / n for p, n in name.items()}


def evaluate_seed(seed: int, dirs: dict[str, Path], reg: str, args: argparse.Namespace) -> Path:
    out = Path("outputs/eval_evidence") / args.name / f"seed{seed}"
    run(["evaluate.py", *PRESETS[args.preset][0], f"seed={seed}", reg, *args.set, "evaluate.policy=latest",
         f"evaluate.policies=[{','.join(map(str, dirs.values()))}]", f"evaluate.out_dir={out}",
         f"hydra.run.dir={out}/hydra"])
    return out


def seed_rows(seed: int, dirs: dict[str, Path], out: Path) -> tuple[pd.DataFrame, dict]:
    """Per-decision IS of the five policies, the seed's best baseline and the oracle; the seed's summary rows."""
    result = json.loads((out / "results.json").read_text())
    decisions = pd.read_parquet(out / "decisions.parquet")
    best = result["best_baseline"]["name"]
    rows = {p: d.name for p, d in dirs.items()}
    is_bps = pd.DataFrame({p: decisions[f"is_bps_{row}"] for p, row in rows.items()})
    is_bps["best baseline"], is_bps["oracle"] = decisions[f"is_bps_{best}"], decisions["is_bps_oracle"]
    is_bps["seed"] = seed
    summary = {}
    for p, row in rows.items():
        trained = json.loads((dirs[p] / "summary.json").read_text())
        val = trained.get("registered", trained.get("final", {})).get("val/reward_mean", np.nan)  # the registered one
        summary[p] = {"is": result["metrics"][row]["IS [bps]"], "fill": result["metrics"][row]["Fill rate [%]"],
                      "val": val}
    summary["best baseline"] = {"is": result["metrics"][best]["IS [bps]"],
                                "fill": result["metrics"][best]["Fill rate [%]"], "val": np.nan, "name": best}
    return is_bps, summary


def evidence_table(pooled: pd.DataFrame, summaries: list[dict], policies: tuple[str, ...] = POLICIES) -> pd.DataFrame:
    """One row per policy (module docstring)."""
    comparisons = ({(p, "best baseline") for p in policies}
                   | {(p, "sft") for p in STARTED_FROM_SFT if p in policies})
    tests = {pair: paired_tests({pair[0]: pooled[pair[0]].to_numpy()}, pooled[pair[1]].to_numpy(),
                                n_comparisons=len(comparisons))[pair[0]] for pair in comparisons}
    gap = pooled["best baseline"].mean() - pooled["oracle"].mean()
    rows = []
    for p in (*policies, "best baseline"):
        is_, fill, val = (np.array([s[p][key] for s in summaries], dtype=float) for key in ("is", "fill", "val"))
        row = {"Policy": p, "Test IS [bps]": f"{is_.mean():.2f} ± {is_.std(ddof=1):.2f}",
               "Fill rate [%]": f"{fill.mean():.1f} ± {fill.std(ddof=1):.1f}",
               "Val reward [bps]": (f"{np.nanmean(val):.2f} ± {np.nanstd(val, ddof=1):.2f}"
                                    if np.isfinite(val).any() else "–")}
        for versus in ("best baseline", "sft"):
            t = tests.get((p, versus))
            diff = pooled[p] - pooled[versus] if t else None
            per_seed = diff.groupby(pooled["seed"]).mean() if t else None
            row[f"Diff vs {versus} [bps]"] = (f"{t['mean_diff_bps']:+.2f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]"
                                              if t else "–")
            row[f"per seed vs {versus}"] = " ".join(f"{x:+.2f}" for x in per_seed) if t else "–"
            identical = t is not None and bool((diff == 0).all())  # equal on every decision: no test is possible
            row[f"p (t, Bonf.) vs {versus}"] = ("identical" if identical else format_p(t["t_p_bonf"]) if t else "–")
            row[f"_p {versus}"] = t["t_p_bonf"] if t and not identical else np.nan  # for the bold rule, not shown
        row["Gap closed [%]"] = (100 * (pooled["best baseline"].mean() - pooled[p].mean()) / gap
                                 if p in policies else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--rl-steps", type=int, default=500)
    ap.add_argument("--dpo-steps", type=int, default=500)
    ap.add_argument("--registry", default="outputs/models")
    ap.add_argument("--out", default="outputs/tables")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    ap.add_argument("--name", default="", help="run names and table: <name>-s<seed>-<policy>, <name>.md "
                                               "(default: evidence, or evidence_<preset>)")
    ap.add_argument("--sft-lr", type=float, default=3e-3)
    ap.add_argument("--rl-lr", type=float, default=1e-4)
    ap.add_argument("--max-gen-batches", type=int, default=32)
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every train/evaluate run")
    ap.add_argument("--reuse", action="store_true", help="keep policies already in the registry under these names "
                                                         "(an interrupted evidence run goes on where it stopped)")
    args = ap.parse_args()
    args.name = args.name or ("evidence" if args.preset == "demo" else f"evidence_{args.preset}")
    if "sft" not in args.policies:
        ap.error("--policies: the RL policies start from sft, which must be one of them")
    reg = f"registry_dir={args.registry}"
    t0 = time.perf_counter()
    frames, summaries = [], []
    for seed in args.seeds:
        dirs = train_seed(seed, args, reg)
        frame, summary = seed_rows(seed, dirs, evaluate_seed(seed, dirs, reg, args))
        frames.append(frame)
        summaries.append(summary)
    pooled = pd.concat(frames, ignore_index=True)
    policies = tuple(p for p in POLICIES if p in args.policies)
    table = evidence_table(pooled, summaries, policies)
    p_best = table.pop("_p best baseline")  # NaN where identical or untested
    table = table.drop(columns=["_p sft"])
    cheaper = {p: (pooled[p] - pooled["best baseline"]).mean() < 0 for p in policies}
    wins = [p for p, pb in zip(table["Policy"], p_best, strict=True) if cheaper.get(p, False) and pb < 0.05]
    minutes = (time.perf_counter() - t0) / 60
    bests = ", ".join(f"seed {s}: {summ['best baseline']['name']}" for s, summ in zip(args.seeds, summaries,
                                                                                        strict=True))
    n_tests = len(policies) + len([p for p in STARTED_FROM_SFT if p in policies])
    write_table(table, Path(args.out), args.name,
                f"Evidence on {PRESETS[args.preset][1]}, seeds {args.seeds}: policies {', '.join(policies)}; SFT "
                f"{args.sft_steps} steps (lr {args.sft_lr:g}), DAPO/GRPO {args.rl_steps} steps (lr {args.rl_lr:g})"
                + (f", DPO {args.dpo_steps} steps" if "dpo" in policies else "") + " from it"
                + (", PPO on the features" if "ppo" in policies else "") + f"; extra overrides {args.set or 'none'}; "
                "registered checkpoints chosen on validation (Val reward = the registered checkpoint's, bps: the "
                "language models' on the first trainer.val_decisions validation decisions, PPO's on all of them). "
                "Bold: "
                "cheaper than the best baseline at Bonferroni p < 0.05 (none if none is). Test IS of greedy answers "
                "(bps, lower is better), mean "
                "± sd over seeds; Diff = IS(policy) - IS(versus) pooled over decisions x seeds with its bootstrap 95% "
                f"CI, per-seed means, paired t-test p Bonferroni over {n_tests} comparisons; best baseline "
                f"chosen on each seed's validation split ({bests}); gap closed = share of (best baseline - oracle) IS. "
                f"Wall time {minutes:.0f} min" + (" (--reuse: policies already in the registry were not trained again)"
                                                   if args.reuse else "") + ".", policies=("dapo",), bold=wins)
    print(table.to_string(index=False))
    print(f"evidence: {minutes:.1f} min")


if __name__ == "__main__":
    main()
