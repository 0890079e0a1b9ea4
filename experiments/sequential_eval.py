"""Sequential execution evaluated with the episode, one parent order, as the unit (issue 22, item 5;
``make evidence-sequential``).

    .venv/bin/python experiments/sequential_eval.py [--preset demo|standx_btc] [--seeds 0] [--timesteps 40960]
        [--set sequential.dt_s=20 ...] [--policies outputs/models/BTC/demo-seq-dapo ...]

Builds the task of ``experiment=<preset>`` (``train.py``'s decisions, features and simulator; ``--set`` adds
overrides, e.g. ``sequential.dt_s``, checked to divide ``decisions.horizon_s``), then:

1. on the validation split only (:func:`~hyperdapo.evaluation.sequential_metrics.choose_on_validation`): the best
   sequential baseline (lowest mean IS over the validation episodes) and the one-shot policy held to T (the held fixed
   offset of lowest validation IS);
2. PPO on ``HyperDAPO/Execution-v0`` per seed, trained on the training split (``algo.ppo``'s hyperparameters and
   grid, ``--timesteps`` env steps, the last weights: no checkpoint is chosen);
3. LLM policies of the registry (``--policies``), greedy: a multi-turn one (``sequential.multi_turn``, trained on
   this task) answers at every step; a one-shot one answers once, its order held to T (invalid answers: the
   ``evaluate.fallback`` offset). A multi-turn policy whose ``model.init_from`` is another of ``--policies`` (its SFT
   start) is also tested against it (``sequential_starts_<preset>.*``; pooled over the pairs given, e.g. 3 seeds);
4. every sequential baseline, each PPO seed and each policy on the test split, read once, for the tables:
   ``outputs/tables/sequential_<preset>.*`` (per strategy, :func:`~hyperdapo.evaluation.sequential_metrics.
   episode_table`) and ``sequential_examples_<preset>.*`` (the first seed's PPO, step by step, on the first test
   episode of each way an episode ends: :func:`~hyperdapo.evaluation.sequential_metrics.example_positions`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from hyperdapo.evaluation.sequential_metrics import (
    BEST,
    CROSS_BEFORE_END_S,
    ONE_SHOT,
    URGENT_KAPPA_PER_S,
    choose_on_validation,
    endings,
    episode_table,
    example_positions,
    example_table,
    run_metrics,
    sequential_baselines,
    versus_start,
)
from hyperdapo.evaluation.tables import write_table
from hyperdapo.execution.sequential import SequentialPolicy
from hyperdapo.execution.sequential_baselines import HeldOffset
from hyperdapo.features.decision_set import Split
from hyperdapo.models.config import ModelConfig
from hyperdapo.models.policy import load_policy, policy_device
from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.pipeline.evaluate_run import fallback_offset_bps, fill_words, greedy_answers
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.rl.multiturn import LLMTurnPolicy
from hyperdapo.rl.sequential_env import ppo_policy, train_sequential_ppo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--timesteps", type=int, default=None, help="PPO env steps per seed (default algo.ppo's)")
    ap.add_argument("--set", nargs="*", default=[], help="overrides, e.g. sequential.dt_s=20")
    ap.add_argument("--policies", nargs="*", default=[], help="registry directories of LLM policies")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    cfg = compose_run_config([f"experiment={args.preset}", *args.set])
    seq, d = cfg.sequential, cfg.decisions
    n_steps = seq.n_steps(d.horizon_s)  # dt must divide the horizon: fail before building anything
    ppo_cfg = cfg.algo.ppo if args.timesteps is None else replace(cfg.algo.ppo, total_timesteps=args.timesteps)
    task = build_task(cfg)
    baselines = sequential_baselines(cfg.evaluate.baselines)
    choice = choose_on_validation(task, baselines, seq)  # before the test split is run
    print(f"chosen on validation: best {choice.best}, one-shot {choice.one_shot} ({choice.val_is_bps})", flush=True)
    test = task.split_index(Split.TEST)
    runs = {name: run_metrics(task, test, policy, seq) for name, policy in baselines.items()}
    for seed in args.seeds:
        t_seed = time.perf_counter()
        model = train_sequential_ppo(task, ppo_cfg, seq, seed)
        runs[f"ppo seed {seed}"] = run_metrics(task, test, ppo_policy(model, task, test, ppo_cfg.offset_grid_bps), seq)
        print(f"ppo seed {seed}: {time.perf_counter() - t_seed:.0f} s", flush=True)
    llm_rows, starts = {}, {}
    for policy_dir in map(Path, args.policies):
        t_policy = time.perf_counter()
        row, policy, start = llm_policy(cfg, task, test, policy_dir)
        runs[row] = run_metrics(task, test, policy, seq)
        llm_rows[str(policy_dir.resolve())] = row
        starts[row] = start
        print(f"{row}: {time.perf_counter() - t_policy:.0f} s", flush=True)
    start_of = {row: llm_rows[s] for row, s in starts.items() if s in llm_rows}  # policy row -> its start's row
    ppo_rows = [f"ppo seed {s}" for s in args.seeds]
    references = {BEST: choice.best, ONE_SHOT: choice.one_shot}
    table = episode_table({name: r[0] for name, r in runs.items()}, references, cfg.seed)
    n_tests = int(table.filter(like="p (t, Bonf.)").notna().to_numpy().sum())
    first = runs[ppo_rows[0]]
    ways = example_positions(first[0], seq.dt_s)
    examples = example_table(first[1], first[2], list(ways.values()))
    shares = endings(first[0], seq.dt_s)
    qty, mid = task.decisions.qty[test], task.mid_usd[test]
    wall_min = (time.perf_counter() - t0) / 60
    command = " ".join(["experiments/sequential_eval.py", f"--preset {args.preset}",
                        f"--seeds {' '.join(map(str, args.seeds))}", f"--timesteps {ppo_cfg.total_timesteps}",
                        *([f"--set {' '.join(args.set)}"] if args.set else [])])
    v = cfg.venue
    setup = (f"Sequential execution on experiment={args.preset}: {cfg.asset.name} on {v.name} (maker "
             f"{v.maker_fee_bps:g} / taker {v.taker_fee_bps:g} bps, latency {v.latency_ms:g} ms), "
             f"{cfg.data.source} data; {fill_words(cfg, task)}. One episode = one parent order (buy or sell, "
             f"{d.notional_min_usd:,.0f}-{d.notional_max_usd:,.0f} USD notional, {np.median(qty):.4g} coins and "
             f"{np.median(qty * mid):,.0f} USD median on test) worked every dt = {seq.dt_s:g} s (sequential.dt_s) to "
             f"T = {d.horizon_s:g} s (decisions.horizon_s), {n_steps} steps of KEEP / REPLACE at x bps / CROSS; what "
             f"is left at T is cleaned up by a market order. {len(test)} test episodes, read once, for these tables.")
    held = ", ".join(f"{n} {x:+g} bps" for n, x in cfg.evaluate.baselines.fixed_offsets_bps.items())
    caption = (
        f"{setup} IS = s (exec - arrival mid) / arrival mid * 1e4 + fees, bps of the parent (cost positive), cleanup "
        "included; completed = the whole parent executed before T without a cleanup; replacements = cancels of a "
        "working order; time to complete (s) and adverse selection (bps, positive = the market moved against the "
        f"fill, {d.adverse_horizon_s:g} s after it) over completed episodes. Baselines: the fixed offsets held to T "
        f"(held: {held}; each equals its one-shot order bitwise), rest at the touch then cross "
        f"{CROSS_BEFORE_END_S:g} s before T, peg to the best, TWAP at the touch, Almgren-Chriss market slices (linear; "
        f"urgent: kappa {URGENT_KAPPA_PER_S:g}/s). Chosen on the "
        f"validation split ({len(task.split_index(Split.VAL))} episodes) before the test split was run: best baseline "
        f"= {choice.best} ({choice.val_is_bps[choice.best]:.2f} bps there), one-shot policy held to T = "
        f"{choice.one_shot} ({choice.val_is_bps[choice.one_shot]:.2f} bps there, the one-shot evaluation's choice "
        f"among the fixed offsets). PPO: stable-baselines3 MlpPolicy {list(ppo_cfg.hidden_sizes)} on "
        f"HyperDAPO/Execution-v0, {ppo_cfg.total_timesteps:,} env steps on the training split per seed, actions KEEP, "
        f"CROSS or REPLACE at {list(ppo_cfg.offset_grid_bps)} bps, the last weights (no checkpoint choice). Diff vs "
        "a reference = mean over episodes of IS(row) - IS(reference), negative = the row is cheaper; paired t and "
        f"Wilcoxon tests over episodes, Bonferroni over the {n_tests} tests of the table (each row against each "
        f"reference but itself). Wall time {wall_min:.1f} min (`.venv/bin/python {command}`).")
    out = Path(args.out)
    write_table(table, out, f"sequential_{args.preset}", caption, policies=[*ppo_rows, *llm_rows.values()], bold=[])
    if start_of:
        starts_table = versus_start({row: runs[row][0].is_bps for row in runs}, start_of, cfg.seed)
        write_table(starts_table, out, f"sequential_starts_{args.preset}",
                    f"Multi-turn policies against their SFT start on the same test episodes (pooled: every pair's "
                    f"episodes stacked): mean IS(policy) - IS(start), bps, negative = the policy is cheaper; paired t "
                    f"and Wilcoxon p, Bonferroni over the {len(starts_table)} rows. {setup}", policies=(), bold=[])
        print(Path(out, f"sequential_starts_{args.preset}.md").read_text())
    ended = "; ".join(f"{way}: decision {int(test[p])} ({100 * shares[way].mean():.1f} % of the test episodes end so)"
                      for way, p in ways.items())
    ex_caption = (f"Example episodes of {ppo_rows[0]}, the first test episode of each way an episode ends ({ended}), "
                  "one row per step until the parent is executed: seconds since the "
                  "decision, the mid's move since arrival (side-relative bps, positive = against the parent), spread, "
                  "remaining share of the parent, the working order's offset from the mid (bps, negative = passive) "
                  "and the visible quantity at its price (coins, all of which may be ahead of it; unknown beyond "
                  "the visible book), IS so far (bps of the parent), the action, and the share of the parent executed "
                  "by the next step (the last step's includes the cleanup at T); the end row gives the episode's IS "
                  f"and end time. {setup}")
    write_table(examples, out, f"sequential_examples_{args.preset}", ex_caption, policies=(), bold=[])
    print(Path(out, f"sequential_{args.preset}.md").read_text())
    print(f"wall time {wall_min:.1f} min")


def llm_policy(cfg, task, idx: np.ndarray, policy_dir: Path) -> tuple[str, SequentialPolicy, str | None]:
    """The row name, the greedy sequential policy on episodes ``idx`` and the start (resolved ``model.init_from``,
    None if none) of the registered LLM policy ``policy_dir``: multi-turn if it was trained so, else its one-shot
    answer held to T."""
    trained = OmegaConf.load(policy_dir / "config.yaml")
    init = OmegaConf.select(trained, "model.init_from")
    start = str(Path(init).resolve()) if init else None
    model, tokenizer = load_policy(ModelConfig(**{**cfg.model.__dict__, "init_from": str(policy_dir)}),
                                   device=policy_device(cfg.trainer.accelerator))
    model.eval()
    if OmegaConf.select(trained, "sequential.multi_turn", default=False):
        policy = LLMTurnPolicy(model, tokenizer, task, idx, max_new_tokens=cfg.algo.max_new_tokens, greedy=True)
        return f"llm {policy_dir.name}", policy, start
    rendered = task.rendered(tokenizer)
    answers = greedy_answers(model, tokenizer, rendered, idx, cfg.algo.max_new_tokens, cfg.evaluate.batch_size)
    scored = rendered.score(idx, answers, 1)
    offsets = np.where(scored.valid[:, 0], scored.offsets_bps[:, 0], fallback_offset_bps(cfg))
    return f"one-shot llm {policy_dir.name} held", HeldOffset(offsets), start


if __name__ == "__main__":
    main()
