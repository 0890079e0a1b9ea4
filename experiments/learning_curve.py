"""Does DAPO improve on its SFT start on the market's own reward? SFT, then DAPO from it, then a paired
comparison of both policies on held-out decisions (same decisions, same simulator).

    .venv/bin/python experiments/learning_curve.py [--sft-steps 400] [--dapo-steps 500] [--lr 1e-4] [override ...]

Runs on ``experiment=demo`` (conf/experiment/demo.yaml); extra arguments are Hydra overrides for both
runs (e.g. ``seed=1 data.synthetic.seed=1``). Prints, for the
test split, the policies' expected reward (mean over 8 sampled answers per decision) and greedy reward, the paired
difference (DAPO - SFT) and its t-test / Wilcoxon p-values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hyperdapo.pipeline.compare import compare_policies
from hyperdapo.pipeline.config import compose_run_config as run_config
from hyperdapo.pipeline.train_run import build_task, run_training

BASE = ["experiment=demo"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--dapo-steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--out", default="outputs/learning_curve")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    out = Path(args.out)
    common = [*BASE, f"registry_dir={out}/models", *args.overrides]
    sft = run_training(run_config([*common, "algo=sft", f"trainer.max_steps={args.sft_steps}", "optim.lr=3e-3",
                                   "run_name=sft"]), out / "sft")
    dapo_cfg = run_config([*common, "algo=dapo", "algo.sft_warmup_steps=0", "algo.max_gen_batches=32",
                           f"trainer.max_steps={args.dapo_steps}", f"optim.lr={args.lr}",
                           f"model.init_from={sft['policy_dir']}", "run_name=dapo"])
    dapo = run_training(dapo_cfg, out / "dapo")
    task = build_task(dapo_cfg)
    result = {mode: compare_policies(task, dapo_cfg.model, sft["policy_dir"], dapo["policy_dir"], "test",
                                     dapo_cfg.algo.max_new_tokens, samples=samples)
              for mode, samples in (("sampled", 8), ("greedy", 0))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
