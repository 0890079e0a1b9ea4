"""The thesis runs (``make thesis``): for each asset (``experiment=thesis asset=<ASSET>``), SFT then DAPO with
Qwen2.5-7B 4-bit + LoRA, then the backtest, then the tables. Prints the plan and the expected cost first; refuses to
start without a GPU (``--force`` to run anyway, e.g. with ``--extra hardware=cpu model=qwen2_5_0_5b`` on a big CPU
machine).

    .venv/bin/python experiments/thesis.py [--assets BTC ETH SOL HYPE] [--dry-run] [--force] [--extra k=v ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch

# Planning figures, NOT measured here (this project's machines have no GPU): Qwen2.5-7B nf4 + LoRA on one A100
# 40 GB, 32 prompts x 8 answers x ~400 prompt + 32 answer tokens per step, ~2-3 min per DAPO step incl. generation.
EXPECTED = {"sft": "~0.5 h (200 steps)", "dapo": "~20 h (500 steps)", "evaluate": "~0.5 h"}


def plan(asset: str, extra: list[str]) -> list[list[str]]:
    exp = ["experiment=thesis", f"asset={asset}"]
    sft, dapo = f"thesis-{asset.lower()}-sft", f"thesis-{asset.lower()}-dapo"
    return [
        ["train.py", *exp, "algo=sft", "trainer.max_steps=200", "optim.lr=1e-4", f"run_name={sft}", *extra],
        ["train.py", *exp, "algo=dapo", f"model.init_from=outputs/models/{asset}/{sft}", f"run_name={dapo}", *extra],
        ["evaluate.py", *exp, f"evaluate.policy=outputs/models/{asset}/{dapo}", *extra],
    ]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", nargs="+", default=["BTC", "ETH", "SOL", "HYPE"])
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--extra", nargs="*", default=[])
    args = ap.parse_args()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(f"thesis plan on {gpu or 'no GPU (CPU only)'}; expected per asset on one A100 40 GB (estimates, not "
          f"measured): {EXPECTED}")
    steps = [cmd for a in args.assets for cmd in plan(a, args.extra)] + [["experiments/make_tables.py"]]
    for cmd in steps:
        print("  python " + " ".join(cmd))
    if args.dry_run:
        return 0
    if gpu is None and not args.force:
        print("no GPU here: the thesis configuration needs one (hardware=gpu_a100_40gb). Use --force with "
              "--extra overrides to run a reduced version, or run the commands above on a GPU machine / SLURM "
              "(hydra/launcher=submitit_slurm).", file=sys.stderr)
        return 2
    for cmd in steps:
        subprocess.run([sys.executable, *cmd], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
