"""How much is there to learn? Fixed offsets vs a state-dependent rule vs the ex-post oracle.

    .venv/bin/python experiments/offset_oracle.py [--asset BTC] [--days 1] [--seed 0] [--signal-strength 0.08]
        [--imbalance-noise 0.7] [--horizon-s 300] [--every-s 60]

On the synthetic market (in memory), prints the mean reward (bps, default reward = -IS) on the test split
of each fixed offset, of a simple state-dependent rule (the best offset per quartile of side * top-5
imbalance, fitted on the training split only) and of the per-decision ex-post best offset (the oracle, an
upper bound). If the rule cannot beat the best fixed offset, the market has no learnable signal.
"""

from __future__ import annotations

import argparse

import numpy as np

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.synthetic import simulate_market
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.preferences import offset_rewards, offset_table
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import Split
from hyperdapo.prompts.config import PromptConfig

OFFSETS_BPS = (-50.0, -30.0, -15.0, -10.0, -5.0, -2.0, 0.0, 5.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--asset", default="BTC")
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--signal-strength", type=float, default=SyntheticConfig.signal_strength)
    ap.add_argument("--imbalance-noise", type=float, default=SyntheticConfig.imbalance_noise)
    ap.add_argument("--horizon-s", type=float, default=DecisionConfig.horizon_s)
    ap.add_argument("--every-s", type=float, default=DecisionConfig.every_s)
    args = ap.parse_args()
    asset = load_asset(args.asset)
    synth = SyntheticConfig(n_days=args.days, seed=args.seed, signal_strength=args.signal_strength,
                            imbalance_noise=args.imbalance_noise)
    market = simulate_market(asset, synth).market_data()
    decisions = DecisionConfig(every_s=args.every_s, horizon_s=args.horizon_s,
                               embargo_s=max(DecisionConfig.embargo_s, args.horizon_s + 60.0))
    task = ExecutionTask.build(asset, load_venue("hyperliquid"), market, decisions, FeatureConfig(), FillConfig(),
                               RewardConfig(), PromptConfig())
    train, test = task.split_index(Split.TRAIN), task.split_index(Split.TEST)
    edges = np.quantile(task.book_lean(train), [0.25, 0.5, 0.75])
    r_train = offset_rewards(task, train, OFFSETS_BPS)
    bins_train = np.searchsorted(edges, task.book_lean(train))
    best_per_bin = [int(np.argmax(r_train[bins_train == b].mean(axis=0))) for b in range(4)]
    r_test = offset_rewards(task, test, OFFSETS_BPS)
    rule = r_test[np.arange(len(test)), np.array(best_per_bin)[np.searchsorted(edges, task.book_lean(test))]]
    table = offset_table(task, Split.TEST, OFFSETS_BPS)
    best_fixed = int(np.argmax(r_test.mean(axis=0)))
    diff = rule - r_test[:, best_fixed]
    print(f"{args.asset} synthetic, {args.days:g} day(s), seed {args.seed}: test split, {len(test)} decisions")
    print(table.to_string(index=False))
    print(f"state rule (offset per imbalance quartile {[OFFSETS_BPS[k] for k in best_per_bin]}, fitted on train): "
          f"{rule.mean():.3f} bps; vs best fixed ({OFFSETS_BPS[best_fixed]:+.1f} bps): {diff.mean():+.3f} "
          f"+- {diff.std(ddof=1) / np.sqrt(len(diff)):.3f} bps (paired se)")


if __name__ == "__main__":
    main()
