"""Seconds per DAPO step and prompt + answer tokens per second of the tiny model on the CPU.

    .venv/bin/python benchmarks/bench_train.py [--steps 20]

A synthetic BTC day (Tardis files written to benchmarks/.out on first use), the default tiny model with the
compact prompt, DAPO with the default batch (8 prompts x 8 answers, 2 optimiser steps per rollout batch),
dynamic sampling off so that every step does the same work, no validation (every 1000 steps). Runs ``--steps`` + 1
training steps; the first one (warm-up) is not counted; step 20 also writes a checkpoint (the median ignores it).

- seconds per step: wall clock of Lightning's whole training step, ``on_train_batch_start`` -> ``on_train_batch_end``
  (generation, scoring, the old-log-prob forward, every forward and backward, the optimiser steps, logging), median
  over the steps;
- tokens per step: the prompt + answer tokens of the 64 sequences (``train/tokens_total`` differences);
- tokens per second: ``train/tokens_per_s`` as logged (tokens / the step's wall clock from the start of
  ``training_step`` to its logging), median over the steps.

Last line: ``RESULT dapo_seconds_per_step=<median> dapo_tokens_per_s=<median>``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L

from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.config import compose_run_config as run_config
from hyperdapo.pipeline.train_run import build_task, fit_policy, tokenizer_corpus


class StepTimer(L.Callback):
    """Wall clock of each training step and the ``train/<key>`` metrics it logged (``keys``)."""

    def __init__(self, keys: tuple[str, ...] = ("tokens_per_s", "tokens_total")):
        self.t, self.times, self.logged, self.keys = None, [], [], keys

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter() - self.t)
        self.logged.append({k: float(trainer.callback_metrics[f"train/{k}"]) for k in self.keys})


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
    totals = [m["tokens_total"] for m in timer.logged]
    step_s = statistics.median(timer.times[1:])
    tokens = statistics.median(b - a for a, b in itertools.pairwise(totals))
    tps = statistics.median(m["tokens_per_s"] for m in timer.logged[1:])
    print(f"{args.steps} DAPO steps (B=8 prompts x G=8 answers), tiny model, CPU: median {step_s:.2f} s/step, "
          f"{tokens:.0f} tokens/step, {tps:.0f} tokens/s")
    print(f"RESULT dapo_seconds_per_step={step_s:.3f} dapo_tokens_per_s={tps:.0f}")


if __name__ == "__main__":
    main()
