"""Sequential execution: parent-order episodes per second of each baseline, and env steps per second.

    .venv/bin/python benchmarks/bench_sequential.py [--repeats 3] [--dt-s 10] [--horizon-s 120]

A synthetic BTC day in memory, decisions every 60 s (about 1,300 after the warm-up), horizon 120 s worked every 10 s
(12 steps), the default fill rule; one core. Each baseline runs every decision as one batch of lockstep episodes
(:func:`hyperdapo.execution.sequential.run_episodes`: one simulator call per step), timed after a warm-up (median of
repeats), with its mean IS (bps). The Gymnasium env (``HyperDAPO/Execution-v0``, one episode at a time, random
actions) is timed over 2,000 steps. Last line: ``RESULT twap_episodes_per_s=<n> env_steps_per_s=<n>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.synthetic import simulate_market
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig, SequentialConfig
from hyperdapo.execution.sequential import run_episodes
from hyperdapo.execution.sequential_baselines import TWAP, AlmgrenChriss, HeldOffset, PegToBest, TouchThenCross
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.rl.sequential_env import ExecutionEnv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dt-s", type=float, default=10.0)
    ap.add_argument("--horizon-s", type=float, default=120.0)
    args = ap.parse_args()
    asset = load_asset("btc")
    market = simulate_market(asset, SyntheticConfig(n_days=1))
    task = ExecutionTask.build(asset, load_venue("hyperliquid"), market,
                               DecisionConfig(every_s=60, horizon_s=args.horizon_s), FeatureConfig(), FillConfig(),
                               RewardConfig(), PromptConfig())
    cfg = SequentialConfig(dt_s=args.dt_s)
    idx = np.arange(len(task.decisions))
    per_s = {}
    for policy in (HeldOffset(-5.0), TouchThenCross(30.0), PegToBest(), TWAP(), AlmgrenChriss()):
        run_episodes(task, idx[:4], policy, cfg)  # JIT warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            episodes, trajectory = run_episodes(task, idx, policy, cfg)
            times.append(time.perf_counter() - t0)
        per_s[type(policy).__name__] = len(idx) / statistics.median(times)
        out = episodes.outcomes()
        print(f"{policy!r}: {len(idx)} episodes x {len(trajectory)} steps, {per_s[type(policy).__name__]:,.0f} "
              f"episodes/s; IS {out.is_bps.mean():.3f} bps, cleanup {out.cleanup.mean():.2f}, orders/episode "
              f"{episodes.n_orders.mean():.2f}")
    env = ExecutionEnv(task, "train", cfg)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n_steps, t0 = 2000, time.perf_counter()
    for _ in range(n_steps):
        if env.step(int(rng.integers(env.action_space.n)))[2]:
            env.reset()
    env_per_s = n_steps / (time.perf_counter() - t0)
    print(f"env: {env_per_s:,.0f} steps/s (one episode at a time, random actions)")
    print(f"RESULT twap_episodes_per_s={per_s['TWAP']:.0f} env_steps_per_s={env_per_s:.0f}")


if __name__ == "__main__":
    main()
