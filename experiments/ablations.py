"""DAPO ablations in a CPU-sized configuration (``make ablations``).

    .venv/bin/python experiments/ablations.py [--sft-steps 300] [--steps 100]

One SFT policy (experiment=ablation_base), then every variant from it for the same number of steps: full DAPO,
each DAPO component switched off in turn (experiment=ablation_no_clip_higher, ..._no_dynamic_sampling,
..._sample_level_loss, ..._no_overlong_shaping), GRPO and DPO; each is backtested on the test split. Writes
``outputs/tables/ablations.{md,tex,csv}``: validation reward (greedy, bps) and test implementation shortfall of
the variant's policy (bps, lower is better) with its bootstrap CI. Same seed, same data, same decisions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from hyperdapo.evaluation.tables import write_table

VARIANTS = {
    "dapo": ["experiment=ablation_base"],
    "no clip-higher (eps_high=0.2)": ["experiment=ablation_no_clip_higher"],
    "no dynamic sampling": ["experiment=ablation_no_dynamic_sampling"],
    "sample-level loss": ["experiment=ablation_sample_level_loss"],
    "no overlong shaping": ["experiment=ablation_no_overlong_shaping"],
    "grpo": ["experiment=ablation_base", "algo=grpo"],
    "dpo": ["experiment=ablation_base", "algo=dpo", "optim.lr=1e-4"],
}


def run(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", default="outputs/tables")
    ap.add_argument("--registry", default="outputs/models")
    args = ap.parse_args()
    reg = f"registry_dir={args.registry}"
    sft = Path(args.registry) / "BTC" / "ablation-sft"
    run(["train.py", "experiment=ablation_base", "algo=sft", f"trainer.max_steps={args.sft_steps}", "optim.lr=3e-3",
         "run_name=ablation-sft", reg, "overwrite=true"])
    rows = []
    for k, (label, overrides) in enumerate(VARIANTS.items()):
        name = f"ablation-{k}"
        run(["train.py", *overrides, f"model.init_from={sft}", f"trainer.max_steps={args.steps}", f"run_name={name}",
             "overwrite=true", reg])
        eval_dir = Path("outputs/eval_ablations") / name
        run(["evaluate.py", "experiment=ablation_base", f"evaluate.policy={Path(args.registry) / 'BTC' / name}",
             f"hydra.run.dir={eval_dir}", reg])
        summary = json.loads((Path(args.registry) / "BTC" / name / "summary.json").read_text())
        result = json.loads((eval_dir / "results.json").read_text())
        lo, hi = result["is_ci"]["llm"]
        rows.append({"Variant": label, "Val reward [bps]": summary["final"].get("val/reward_mean", float("nan")),
                     "Test IS [bps]": result["metrics"]["llm"]["IS [bps]"], "IS 95% CI": f"[{lo:.2f}, {hi:.2f}]",
                     "Invalid": result["metrics"]["llm"]["Invalid"], "Train time [s]": summary["train_seconds"]})
    table = pd.DataFrame(rows)
    write_table(table, Path(args.out), "ablations",
                f"DAPO ablations, CPU configuration: tiny model, synthetic BTC day, {args.steps} RL steps from one SFT "
                f"policy ({args.sft_steps} steps); test IS of greedy answers (bps, lower is better).")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
