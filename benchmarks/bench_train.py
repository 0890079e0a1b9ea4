"""Seconds per DAPO step and generated + trained tokens per second of the tiny model on the CPU.

    .venv/bin/python benchmarks/bench_train.py [--steps 20]

A synthetic BTC day (Tardis files written to benchmarks/.out on first use), the default tiny model with the
compact prompt, DAPO with the default batch (8 prompts x 8 answers, 2 optimiser steps per rollout batch),
dynamic sampling off so that every step does the same work. Times the Lightning fit after one warm-up step;
tokens = prompt + answer tokens of every sequence generated and trained on. Last line:
``RESULT dapo_tokens_per_s=<median over steps>``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L

from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.config import compose_run_config as run_config
from hyperdapo.pipeline.train_run import build_task, fit_policy, tokenizer_corpus


class StepTimer(L.Callback):
    def __init__(self):
        self.t, self.times, self.tokens = None, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter() - self.t)
        tps = trainer.callback_metrics.get("train/tokens_per_s")
        self.tokens.append(float(tps) if tps is not None else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(["algo=dapo", "algo.sft_warmup_steps=0", "algo.dynamic_sampling=false",
                          f"trainer.max_steps={args.steps + 1}", "trainer.val_every_n_steps=1000",
                          "data.raw_dir=benchmarks/.out/raw", "data.cache_dir=benchmarks/.out/cache",
                          f"registry_dir={tmp}/models", "logger=none"])
        task = build_task(cfg)
        model, tokenizer = load_policy(cfg.model, corpus=tokenizer_corpus(task))
        timer = StepTimer()
        fit_policy(cfg, task, model, tokenizer, Path(tmp) / "run", time.perf_counter(), extra_callbacks=[timer])
    step_s = statistics.median(timer.times[1:])
    tps = statistics.median(timer.tokens[1:])
    print(f"{args.steps} DAPO steps (B=8 prompts x G=8 answers), tiny model, CPU: median {step_s:.2f} s/step")
    print(f"RESULT dapo_tokens_per_s={tps:.0f}")


if __name__ == "__main__":
    main()
