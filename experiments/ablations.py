"""DAPO ablations that measure something: component activity next to the outcome, over seeds (``make ablations``).

    .venv/bin/python experiments/ablations.py [--seeds 0 1 2] [--sft-steps 300] [--rl-steps 150] [--jobs 2]

Per seed s (the training seed: model init, batches, rollouts; the market and the decisions stay those of seed 0, so
every seed is tested on the same decisions, as in ``experiments/evidence.py``): one SFT start (``algo=sft``,
``--sft-steps`` at lr 3e-3), then every variant from it for the same ``--rl-steps`` steps (experiment=ablation_base
and its ``ablation_*`` children): full DAPO, each DAPO component switched off in turn (clip-higher, dynamic
sampling, token-level loss, overlong shaping), GRPO, DPO; and the data-size sweep, DAPO on every 16th / 4th / every
training decision (``decisions.train_every``; x1 / x4 / x16, x16 is the full-DAPO variant). The SFT start uses all
training decisions for every size: the sweep measures how much data DAPO itself needs from a fixed start (a
thinned SFT would change the start too, and the steps-to-threshold level with it). One backtest per seed
(``evaluate.py 'evaluate.policies=[...]'``) scores every policy of the seed on the test split, whose best baseline
is chosen on the validation split. The runs go ``--jobs`` at a time in worker processes that compose each run's
config as ``train.py`` / ``evaluate.py`` would and call the same ``run_training`` / ``run_evaluation`` (the pipeline
is imported once per worker, not once per run: ~40 s a run on the loaded shared cores), on one torch thread each
(there, one thread trained the tiny model ~7x faster than two: 30 DAPO steps in 10 s against 75 s). Every run's
command line is printed; its log is ``<run dir>/train.log``, its console output ``<run dir>.out``.

Activity (mean over the run's training steps, from its ``metrics.csv``): clip-low / clip-high share (tokens whose
ratio the decoupled clip cut, %), kept-group share (groups dynamic sampling kept of those generated, %),
zero-std group share (groups without reward spread, %, measured whether or not they are dropped), overlong share
(answers the overlong shaping penalised, %; 0 by definition where it is off), truncated share (answers without
<|im_end|> within the 16 tokens, %: what the overlong shaping would act on), answer-length std (tokens, within a
step). DPO has none of these.

A run whose policy collapses so far that dynamic sampling finds fewer than 8 groups with reward spread in
``algo.max_gen_batches`` = 64 generation batches is stopped by ``PolicyModule`` (an error). That is an outcome of the
variant, not a crash of the experiment: the run is reported as stopped after its last step, its activity counts
the steps it ran, its steps-to-threshold counts if reached before, and it has no final policy, so its seed is left
out of that variant's outcome and paired tests (the tables say which seed stopped where).

Outcome: test implementation shortfall (bps, lower is better) mean +- sd over seeds; the pooled paired test of each
variant against full DAPO (per-decision IS differences of all seeds together; the seeds share the test decisions,
so the pooled n overstates independence; per-seed mean differences shown too), and of full DAPO against its SFT
start, Bonferroni over these comparisons (7; the data-size table's 2 are their own family); the final greedy
validation reward (bps, the whole validation split of 401 decisions).

Steps-to-threshold (DAPO, GRPO, DPO; and the data sizes): the threshold of a seed is its SFT start's greedy
validation reward (the SFT run's last validation, after its last step, on the validation decisions the RL runs
validate on) + ``THRESHOLD_MARGIN_BPS`` = 0.25 bps, fixed before these runs: the size of the SFT -> DAPO test gain
``make evidence`` measured on the demo market (-0.23 bps), so "reached" means a gain of that size on validation.
A run's steps-to-threshold is the first validation (every ``trainer.val_every_n_steps`` = 10 steps) whose
reward >= the threshold, or "not reached" within ``--rl-steps``; the median over seeds counts not reached as
infinite. A step is one optimisation batch: DAPO/GRPO 8 prompts x 8 answers and 4 optimiser steps (dynamic
sampling may generate several batches), DPO 16 preference pairs and 1 optimiser step, so a step is not a unit of
compute; the table shows the runs' training seconds too.

How the settings were chosen (pilots from one SFT start, seed 0, 150 RL steps, validation only, on the shared
cores; none read the test split). RL: lr 1e-4 with one pass (the demo's setting) clips ~0.002% of tokens, so
clip-higher cannot matter; lr 3e-4, one pass: clip-low 0.03%, clip-high 0.01%, final val -2.38 bps; lr 3e-4 with
``algo.mu=2`` (4 optimiser steps per rollout, as DAPO's several updates per rollout): clip-low 0.42%, clip-high
0.20% (some clipping in 45% / 75% of the steps, spread over the whole run), val -2.03 bps; lr 1e-3, one pass: the
policy sharpens (entropy halves, dynamic sampling keeps 12% of the groups by step 100), val -2.59 bps. Hence lr
3e-4, mu=2 (``conf/experiment/ablation_base.yaml``). Steps: 150, because clipping acts throughout them and the
pilot's validation reward rose until ~step 100; the budget (``make ablations`` <= 60 min on the 2 shared cores:
35 min measured with other jobs running, load ~5) allows little more. DPO's lr on the same validation: 1e-5 flat
(-2.42), 3e-5 -2.32, 1e-4 erratic (-2.38 .. -3.90, final -3.34): 3e-5. Overlong shaping (L_max 16, cache 4
tokens) penalises answers longer than 12 tokens; the answers are ~6 tokens, so it rarely acts at any run length:
the table shows how often, and the truncated share what happens without it.

Writes ``outputs/tables/ablations.{md,tex,csv}``, ``ablations_steps_to_threshold.*`` and
``ablations_data_size.*`` (``hyperdapo.evaluation.tables.write_table``).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import re
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd

from hyperdapo.evaluation.stats import paired_tests
from hyperdapo.evaluation.tables import write_table

BASE = ["experiment=ablation_base", "data.synthetic.seed=0", "decisions.seed=0"]  # one market, one decision set
SFT_LR = 3e-3
DPO_LR = 3e-5  # chosen on validation (module docstring)
THRESHOLD_MARGIN_BPS = 0.25  # steps-to-threshold level above the SFT start's validation reward (module docstring)
VARIANTS = {  # key (run name part) -> (table label, train.py overrides)
    "dapo": ("dapo", []),
    "no-clip-higher": ("no clip-higher (eps_high 0.20)", ["experiment=ablation_no_clip_higher"]),
    "no-dynamic-sampling": ("no dynamic sampling", ["experiment=ablation_no_dynamic_sampling"]),
    "sample-level-loss": ("sample-level loss", ["experiment=ablation_sample_level_loss"]),
    "no-overlong-shaping": ("no overlong shaping", ["experiment=ablation_no_overlong_shaping"]),
    "grpo": ("grpo", ["algo=grpo"]),
    "dpo": ("dpo", ["algo=dpo", f"optim.lr={DPO_LR}"]),
}
DATA_SIZES = {"x1": 16, "x4": 4, "x16": 1}  # label -> decisions.train_every (x16 is the full-DAPO variant)
THRESHOLD_ALGOS = ("dapo", "grpo", "dpo")
# activity column -> (metrics.csv column, scale to the shown unit)
ACTIVITY = {
    "Clip-low [%]": ("train/clip_low", 100.0),
    "Clip-high [%]": ("train/clip_high", 100.0),
    "Kept groups [%]": ("train/kept_group_share", 100.0),
    "Zero-std groups [%]": ("train/zero_std_group_share", 100.0),
    "Overlong [%]": ("train/overlong_share", 100.0),
    "Truncated [%]": ("train/truncated_share", 100.0),
    "Answer-len std [tokens]": ("train/answer_len_std", 1.0),
}
TASK_LINE = re.compile(r"task: \d+ decisions \(train (\d+),")
STARVED = "dynamic sampling kept"  # how PolicyModule's error begins when dynamic sampling finds too few groups


# ------------------------------------------------------------------------------------------------ running
def run_name(seed: int, key: str) -> str:
    return f"ablation-s{seed}-{key}"


def run_job(kind: str, overrides: list[str], out_dir: str) -> tuple[float, str]:
    """One ``train.py`` / ``evaluate.py`` run (``kind`` train / evaluate) in this worker process: the config the entry
    point composes from ``overrides``, run by the same ``run_training`` / ``run_evaluation`` into ``out_dir``, on one
    torch thread; its log records go to ``<out_dir>/<kind>.log``, its console output to ``<out_dir>.out``. Returns
    its wall time (s) and, for a training run that dynamic sampling starved (``PolicyModule`` stops it when
    ``algo.max_gen_batches`` generation batches hold too few groups with reward spread: the policy has collapsed),
    the error message; any other error is raised."""
    import torch

    from hyperdapo.pipeline.config import compose_run_config
    from hyperdapo.pipeline.console import quiet_third_party

    torch.set_num_threads(1)
    quiet_third_party()
    out = Path(out_dir)
    if kind == "train" and out.exists():
        shutil.rmtree(out)  # a fresh run directory: no metrics or checkpoints of an earlier invocation
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / f"{kind}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    t0, stopped = time.perf_counter(), ""
    try:
        with out.with_name(f"{out.name}.out").open("w") as f, redirect_stdout(f), redirect_stderr(f):
            if kind == "train":
                from hyperdapo.pipeline.train_run import run_training

                run_training(compose_run_config(overrides), out)
            else:
                from hyperdapo.pipeline.evaluate_run import run_evaluation

                run_evaluation(compose_run_config(overrides, "evaluate"), out)
    except RuntimeError as exc:
        if not str(exc).startswith(STARVED):
            raise
        stopped = str(exc)
    finally:
        root.removeHandler(handler)
        handler.close()
    return time.perf_counter() - t0, stopped


def run_all(pool: ProcessPoolExecutor, jobs: list[tuple[str, list[str], str]]) -> set[str]:
    """Run ``jobs`` in ``pool`` (each printed as the command line that does the same); the output directories of
    the runs dynamic sampling stopped."""
    for kind, overrides, _ in jobs:
        print("+", f"{kind}.py", " ".join(overrides), flush=True)
    stopped = set()
    for (_, _, out), (seconds, message) in zip(jobs, pool.map(run_job, *zip(*jobs, strict=True)), strict=True):
        print(f"  {'STOPPED' if message else 'done'} {out} ({seconds:.0f} s) {message}", flush=True)
        if message:
            stopped.add(out)
    return stopped


def train_job(seed: int, key: str, overrides: list[str], steps: int, args: argparse.Namespace) -> tuple:
    name = run_name(seed, key)
    return ("train", [*BASE, *overrides, f"seed={seed}", f"trainer.max_steps={steps}", f"run_name={name}",
                      f"registry_dir={args.registry}", "overwrite=true"], f"{args.runs}/{name}")


def rl_keys() -> dict[str, list[str]]:
    """Every run trained from a seed's SFT start: the variants and the data sizes (x16 is ``dapo``)."""
    keys = {key: overrides for key, (_, overrides) in VARIANTS.items()}
    keys |= {f"dapo-{size}": [f"decisions.train_every={every}"] for size, every in DATA_SIZES.items() if every > 1}
    return keys


def evaluate_job(seed: int, dirs: list[Path], args: argparse.Namespace) -> tuple:
    return ("evaluate", [*BASE, f"seed={seed}", f"registry_dir={args.registry}",
                         f"evaluate.policies=[{','.join(map(str, dirs))}]"], f"{args.eval_dir}/seed{seed}")


# ------------------------------------------------------------------------------------------------ reading
def activity(metrics: pd.DataFrame) -> dict[str, float]:
    """Per activity column: the mean over the run's training steps (NaN where the run does not log it)."""
    return {col: metrics[key].mean() * scale if key in metrics else np.nan for col, (key, scale) in ACTIVITY.items()}


def val_curve(metrics: pd.DataFrame) -> pd.Series:
    """Greedy validation reward (bps) by training steps done: a validation row logged at 0-based step k follows
    k + 1 training steps."""
    rows = metrics.dropna(subset=["val/reward_mean"])
    return pd.Series(rows["val/reward_mean"].to_numpy(), index=rows["step"].astype(int).to_numpy() + 1)


def steps_to_threshold(curve: pd.Series, threshold: float) -> float:
    """Training steps until the validation reward first reaches ``threshold`` (bps); inf if it never does."""
    reached = curve.index[curve.to_numpy() >= threshold]
    return float(reached[0]) if len(reached) else np.inf


def train_decisions(run_dir: Path) -> int:
    """Training decisions of a run (the count its ``train.log`` records when it builds the task)."""
    return int(TASK_LINE.search((run_dir / "train.log").read_text()).group(1))


def read_run(run_dir: Path, stopped: bool) -> dict:
    """What a training run's directory says: activity, validation curve, final validation reward (NaN for a stopped
    run: no final policy), the steps it stopped after (NaN if it finished) and its training seconds."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    curve = val_curve(metrics)
    summary = {} if stopped else json.loads((run_dir / "summary.json").read_text())
    return {"curve": curve, "val": np.nan if stopped else curve.iloc[-1],
            "stopped_at": metrics["step"].max() + 1 if stopped else np.nan,
            "train_s": summary.get("train_seconds", np.nan), **activity(metrics)}


def seed_results(seed: int, run_dirs: dict[str, Path], stopped: set[str], out: Path
                 ) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Per-decision test IS of the seed's finished runs (columns by key, NaN for a stopped run, plus ``seed``) from
    the seed's backtest in ``out``, and per run :func:`read_run` with its test IS."""
    result = json.loads((out / "results.json").read_text())
    decisions = pd.read_parquet(out / "decisions.parquet")
    is_bps = pd.DataFrame({key: decisions[f"is_bps_{d.name}"] if key not in stopped else np.nan
                           for key, d in run_dirs.items()})
    is_bps["seed"] = seed
    runs = {key: read_run(d, key in stopped) | {"is": np.nan if key in stopped else
                                                result["metrics"][d.name]["IS [bps]"]}
            for key, d in run_dirs.items()}
    return is_bps, runs


# ------------------------------------------------------------------------------------------------ tables
def mean_sd(values, digits: int = 2) -> str:
    """``mean ± sd`` over the seeds with a value (sd with ddof 1; the mean alone for one); an en dash for none."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "–"
    if len(x) < 2:
        return f"{x.mean():.{digits}f}"
    return f"{x.mean():.{digits}f} ± {x.std(ddof=1):.{digits}f}"


def compare(pooled: pd.DataFrame, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Pooled paired tests ``IS(a) - IS(b)`` over decisions x seeds where both runs finished, Bonferroni over
    ``pairs``; per-seed mean differences. A pair without a common finished seed has no test."""
    tests = {}
    for a, b in pairs:
        both = pooled[[a, b]].notna().all(axis=1)
        if not both.any():
            continue
        x = pooled[both]
        t = paired_tests({a: x[a].to_numpy()}, x[b].to_numpy(), n_comparisons=len(pairs))[a]
        t["per_seed"] = (x[a] - x[b]).groupby(x["seed"]).mean().to_numpy()
        tests[(a, b)] = t
    return tests


def diff_columns(t: dict | None, versus: str) -> dict:
    """The columns of one paired test (``compare``), en dashes without one."""
    if t is None:
        return {f"Diff vs {versus} [bps]": "–", "per seed": "–", "p (t, Bonf.)": np.nan}
    return {f"Diff vs {versus} [bps]": f"{t['mean_diff_bps']:+.2f} [{t['ci_low']:+.2f}, {t['ci_high']:+.2f}]",
            "per seed": " ".join(f"{x:+.2f}" for x in t["per_seed"]), "p (t, Bonf.)": t["t_p_bonf"]}


def stopped_text(runs: list[dict[str, dict]], key: str, seeds: list[int]) -> str:
    """The seeds whose run dynamic sampling stopped, with the steps done: ``seed 1 at 126``; an en dash for none."""
    stops = [f"seed {s} at {r[key]['stopped_at']:.0f}" for s, r in zip(seeds, runs, strict=True)
             if np.isfinite(r[key]["stopped_at"])]
    return ", ".join(stops) or "–"


def ablation_table(pooled: pd.DataFrame, runs: list[dict[str, dict]], seeds: list[int]) -> pd.DataFrame:
    """One row per variant (and the SFT start): activity, then outcome (module docstring)."""
    pairs = [(key, "dapo") for key in VARIANTS if key != "dapo"] + [("dapo", "sft")]
    tests = compare(pooled, pairs)
    rows = []
    for key, label in [(k, lab) for k, (lab, _) in VARIANTS.items()] + [("sft", "sft start")]:
        row = {"Variant": label}
        for col in ACTIVITY:
            row[col] = mean_sd([r[key][col] for r in runs], 1 if "groups" in col else 2)
        row["Stopped (starved)"] = stopped_text(runs, key, seeds)
        row["Val reward [bps]"] = mean_sd([r[key]["val"] for r in runs])
        row["Test IS [bps]"] = mean_sd([r[key]["is"] for r in runs])
        versus = "sft" if key == "dapo" else "dapo"
        row["Reference"] = versus if (key, versus) in tests else "–"
        row |= diff_columns(tests.get((key, versus)), "reference")
        rows.append(row)
    return pd.DataFrame(rows)


def format_steps(steps: float, max_steps: int, stopped_at: float = np.nan) -> str:
    """Steps to threshold: the number, ``> max_steps`` if the run never reached it, ``stopped at k`` if dynamic
    sampling stopped the run after k steps before it reached it."""
    if np.isfinite(steps):
        return f"{steps:.0f}"
    return f"stopped at {stopped_at:.0f}" if np.isfinite(stopped_at) else f"> {max_steps}"


def steps_table(runs: list[dict[str, dict]], thresholds: list[float], keys: tuple[str, ...], max_steps: int,
                seeds: list[int], ratio_to: str) -> pd.DataFrame:
    """Per run key: steps-to-threshold per seed, their median (not reached = inf), the median's ratio to run
    ``ratio_to``'s, how many seeds reached it, and the mean training seconds of the finished runs."""
    steps = {key: [steps_to_threshold(r[key]["curve"], th) for r, th in zip(runs, thresholds, strict=True)]
             for key in keys}
    medians = {key: float(np.median(s)) for key, s in steps.items()}
    rows = []
    for key in keys:
        per_seed = {f"Steps seed {s}": format_steps(x, max_steps, r[key]["stopped_at"])
                    for s, x, r in zip(seeds, steps[key], runs, strict=True)}
        rows.append({"Policy": key, **per_seed, "Median steps": format_steps(medians[key], max_steps),
                     f"Median / {ratio_to} median": ratio_text(medians[key], medians[ratio_to], max_steps),
                     "Reached": f"{int(np.isfinite(steps[key]).sum())}/{len(seeds)}",
                     "Train time [s]": float(np.nanmean([r[key]["train_s"] for r in runs]))})
    return pd.DataFrame(rows)


def ratio_text(a: float, b: float, max_steps: int) -> str:
    """``a / b`` of two medians (steps); a bound where one was not reached in ``max_steps``."""
    if np.isfinite(a) and np.isfinite(b):
        return f"{a / b:.2f}"
    if np.isfinite(a):
        return f"< {a / max_steps:.2f}"
    if np.isfinite(b):
        return f"> {max_steps / b:.2f}"
    return "–"


def data_size_table(pooled: pd.DataFrame, runs: list[dict[str, dict]], thresholds: list[float],
                    decisions: dict[str, int], max_steps: int, seeds: list[int]) -> pd.DataFrame:
    """One row per data size: training decisions, validation reward, test IS, paired test vs x16, steps."""
    keys = {size: ("dapo" if every == 1 else f"dapo-{size}") for size, every in DATA_SIZES.items()}
    tests = compare(pooled, [(keys[s], "dapo") for s in keys if keys[s] != "dapo"])
    rows = []
    for size, key in keys.items():
        steps = [steps_to_threshold(r[key]["curve"], th) for r, th in zip(runs, thresholds, strict=True)]
        rows.append({"Data": f"{size} (train_every {DATA_SIZES[size]})", "n train decisions": decisions[key],
                     "Val reward [bps]": mean_sd([r[key]["val"] for r in runs]),
                     "Test IS [bps]": mean_sd([r[key]["is"] for r in runs]),
                     **diff_columns(tests.get((key, "dapo")), "x16"),
                     "Steps to threshold (median)": format_steps(float(np.median(steps)), max_steps),
                     "Clip-high [%]": mean_sd([r[key]["Clip-high [%]"] for r in runs]),
                     "Kept groups [%]": mean_sd([r[key]["Kept groups [%]"] for r in runs], 1),
                     "Stopped (starved)": stopped_text(runs, key, seeds)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--rl-steps", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (worker processes, one torch thread each)")
    ap.add_argument("--registry", default="outputs/models")
    ap.add_argument("--runs", default="outputs/runs/BTC/ablations", help="training run directories and logs")
    ap.add_argument("--eval-dir", default="outputs/eval_ablations")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    keys = ["sft", *rl_keys()]
    run_dirs = {s: {key: Path(args.runs) / run_name(s, key) for key in keys} for s in args.seeds}
    policy = {s: {key: Path(args.registry) / "BTC" / run_name(s, key) for key in keys} for s in args.seeds}
    # the SFT starts (validated once, after their last step), then every run from them, then one backtest per seed
    # of its finished runs; the workers are spawned (no state forked from here), each imports the pipeline once
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        run_all(pool, [train_job(s, "sft", ["algo=sft", f"optim.lr={SFT_LR}",
                                            f"trainer.val_every_n_steps={args.sft_steps}"], args.sft_steps, args)
                       for s in args.seeds])
        stopped_dirs = run_all(pool, [train_job(s, key, [*overrides, f"model.init_from={policy[s]['sft']}"],
                                                args.rl_steps, args)
                                      for s in args.seeds for key, overrides in rl_keys().items()])
        stopped = {s: {key for key in keys if str(run_dirs[s][key]) in stopped_dirs} for s in args.seeds}
        run_all(pool, [evaluate_job(s, [policy[s][key] for key in keys if key not in stopped[s]], args)
                       for s in args.seeds])

    frames, runs = [], []
    for s in args.seeds:
        frame, seed_runs = seed_results(s, run_dirs[s], stopped[s], Path(args.eval_dir) / f"seed{s}")
        frames.append(frame)
        runs.append(seed_runs)
    pooled = pd.concat(frames, ignore_index=True)
    thresholds = [r["sft"]["val"] + THRESHOLD_MARGIN_BPS for r in runs]
    minutes = (time.perf_counter() - t0) / 60
    setup = (f"synthetic BTC day (seed 0 market and decisions), 120-s horizon, tiny model on CPU; seeds {args.seeds}; "
             f"per seed one SFT start ({args.sft_steps} steps), every run {args.rl_steps} steps from it "
             "(RL lr 3e-4, 2 passes x 2 mini-batches; DPO lr 3e-5; lr, passes and steps chosen on validation pilots "
             "so that clipping acts, see experiments/ablations.py)")
    stop_note = ("A run that dynamic sampling starved (fewer than 8 groups with reward spread in 64 generation "
                 "batches: a collapsed policy) stops there and has no final policy: its activity counts the steps it "
                 "ran, its outcome and paired tests leave that seed out.")
    th_text = ", ".join(f"seed {s}: {th:.2f}" for s, th in zip(args.seeds, thresholds, strict=True))

    table = ablation_table(pooled, runs, args.seeds)
    write_table(table, Path(args.out), "ablations",
                f"DAPO ablations with component activity, {setup}. Activity: mean over the run's training steps of "
                "the share of answer tokens clipped below / above (%), of generated groups dynamic sampling kept "
                "(%), of groups without reward spread (std < 0.5 bps, %), of answers the overlong shaping penalised "
                "(%), of answers truncated at 16 tokens (%), and the within-step std of answer lengths (tokens); "
                "mean ± sd over seeds. Outcome: final greedy validation reward (bps, 401 decisions) and test IS of "
                "greedy answers (bps, lower is better), mean ± sd over seeds; Diff = IS(variant) - IS(reference) "
                "pooled over decisions x seeds with its bootstrap 95% CI, per-seed means, paired t-test p Bonferroni "
                f"over 7 comparisons (each variant vs full DAPO, full DAPO vs its SFT start). {stop_note} Wall time "
                f"of the whole experiment {minutes:.0f} min.", policies=("dapo",))
    steps = steps_table(runs, thresholds, THRESHOLD_ALGOS, args.rl_steps, args.seeds, ratio_to="dpo")
    write_table(steps, Path(args.out), "ablations_steps_to_threshold",
                f"Steps to threshold, {setup}. Training steps until the greedy validation reward (bps, every 10 steps) "
                f"first reaches the seed's threshold = its SFT start's validation reward + {THRESHOLD_MARGIN_BPS} bps "
                f"({th_text} bps); '> {args.rl_steps}': not reached in the run; median over seeds (not reached counts "
                "as infinite) and its ratio to DPO's (< 1: fewer steps than DPO; a bound where one is not reached). "
                "A step is one optimisation batch (DAPO/GRPO: 8 prompts x 8 answers, 4 optimiser steps; DPO: 16 "
                "preference pairs, 1 optimiser step); train time is the mean wall time of the finished runs (s).",
                policies=("dapo",))
    decisions = {key: train_decisions(run_dirs[args.seeds[0]][key])
                 for key in ("dapo", *(f"dapo-{size}" for size, every in DATA_SIZES.items() if every > 1))}
    sizes = data_size_table(pooled, runs, thresholds, decisions, args.rl_steps, args.seeds)
    write_table(sizes, Path(args.out), "ablations_data_size",
                f"DAPO data-size sweep, {setup}: RL on every 16th / 4th / every training decision "
                "(decisions.train_every; validation and test decisions unchanged), the SFT start on all of them. "
                "Final greedy validation reward and test IS (bps, lower is better) mean ± sd over seeds; Diff = "
                "IS(size) - IS(x16) pooled over decisions x seeds with its bootstrap 95% CI, per-seed means, paired "
                "t-test p Bonferroni over 2 comparisons; steps to the seed's threshold (as in "
                "ablations_steps_to_threshold), median over seeds; clip-high and kept-group shares as in ablations. "
                f"{stop_note}", policies=("x16 (train_every 1)",))
    for name, df in (("ablations", table), ("steps to threshold", steps), ("data size", sizes)):
        print(f"\n{name}\n{df.to_string(index=False)}")
    print(f"ablations: {minutes:.1f} min")


if __name__ == "__main__":
    main()
