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

from hyperdapo.pipeline.compare import sft_then_dapo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--dapo-steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--out", default="outputs/learning_curve")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    result = sft_then_dapo(["experiment=demo", *args.overrides], Path(args.out), args.sft_steps, args.dapo_steps,
                           args.lr)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
