"""Tokens per second of a multi-turn DAPO step against the one-shot DAPO step, same process, same model and batch.

    .venv/bin/python benchmarks/bench_multiturn.py [--steps 6]

The target (issue 22): a multi-turn step processes tokens within 1.5x of the one-shot step's rate
(``ratio = one-shot tokens/s / multi-turn tokens/s <= 1.5``). Both runs: a synthetic BTC day (benchmarks/.out, as
bench_train.py), the tiny model untrained (the same weights for both), DAPO with 8 parent orders x G = 8, dynamic
sampling off so every step does the same work, a 120-s horizon; the multi-turn run works each parent every 20 s
(``sequential.dt_s=20``, up to 6 turns: each turn is a generation over the live trajectories' own prompts, its
answers parsed and the orders simulated, then one update over all turns' tokens). An untrained policy answers
nonsense, played as KEEP, so its episodes last all 6 turns: the most work per step. ``--steps`` + 1 training steps
per run, the first not counted; tokens per second as logged (``train/tokens_per_s``: prompt + answer tokens / the
step's wall clock), median over the steps.

Last line: ``RESULT multiturn_tokens_per_s=<median> oneshot_tokens_per_s=<median> ratio=<oneshot / multiturn>``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_train import StepTimer

from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.config import compose_run_config as run_config
from hyperdapo.pipeline.train_run import build_task, fit_policy, tokenizer_corpus


def tokens_per_s(steps: int, *overrides: str) -> tuple[float, float, float]:
    """Median tokens/s, seconds per step and turns per trajectory of ``steps`` DAPO steps (after one warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(["algo=dapo", "algo.sft_warmup_steps=0", "algo.dynamic_sampling=false",
                          f"trainer.max_steps={steps + 1}", "trainer.val_every_n_steps=1000",
                          "decisions.horizon_s=120", "data.raw_dir=benchmarks/.out/raw",
                          "data.cache_dir=benchmarks/.out/cache", f"registry_dir={tmp}/models", "logger=none",
                          "algo.max_new_tokens=12", *overrides])
        task = build_task(cfg)
        model, tokenizer = load_policy(cfg.model, corpus=tokenizer_corpus(task))
        timer = StepTimer(("tokens_per_s", "turns_per_trajectory") if "sequential.multi_turn=true" in overrides
                          else ("tokens_per_s",))
        fit_policy(cfg, task, model, tokenizer, Path(tmp) / "run", time.perf_counter(), extra_callbacks=[timer])
    turns = statistics.median(m.get("turns_per_trajectory", 1.0) for m in timer.logged[1:])
    return (statistics.median(m["tokens_per_s"] for m in timer.logged[1:]), statistics.median(timer.times[1:]),
            turns)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    one_tps, one_s, _ = tokens_per_s(args.steps)
    multi_tps, multi_s, turns = tokens_per_s(args.steps, "sequential.multi_turn=true", "sequential.dt_s=20")
    ratio = one_tps / multi_tps
    print(f"one-shot DAPO step: {one_tps:.0f} tokens/s, {one_s:.2f} s/step; multi-turn: {multi_tps:.0f} tokens/s, "
          f"{multi_s:.2f} s/step, {turns:.1f} turns per trajectory; one-shot / multi-turn tokens/s = {ratio:.2f} "
          "(target <= 1.5)")
    print(f"RESULT multiturn_tokens_per_s={multi_tps:.0f} oneshot_tokens_per_s={one_tps:.0f} ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
