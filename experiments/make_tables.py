"""Collect finished runs into the thesis tables and figures (``make tables``).

    .venv/bin/python experiments/make_tables.py [--registry outputs/models] [--evals outputs/eval]

- Training Performance: one row per trained policy in the registry (``<registry>/<ASSET>/<run>/summary.json``).
- Fill Rate Comparison: strategies x assets from the newest evaluation of each asset
  (``<evals>/<ASSET>/<run>/results.json``), with the average over assets.
- Execution Quality: one table per asset (its newest evaluation), copied with its caption.
- Figures: learning curves of every registered run (``train/reward_mean``, ``train/loss``, ``val/reward_mean``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hyperdapo.evaluation.figures import learning_curves
from hyperdapo.evaluation.tables import fill_rate_comparison, training_performance, write_table


def newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", default="outputs/models")
    ap.add_argument("--evals", default="outputs/eval")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = sorted(Path(args.registry).glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime)
    runs = [json.loads(p.read_text()) for p in summaries]
    if runs:
        write_table(training_performance(runs), out, "training_performance",
                    "Training performance (CPU runs unless stated in the model column).")
        curves = {f"{r['asset']} {r['algo']} ({Path(r['run_dir']).name})": Path(r["run_dir"], "metrics.csv")
                  for r in runs if Path(r["run_dir"], "metrics.csv").exists()}
        learning_curves(curves, ["train/reward_mean", "train/loss", "val/reward_mean"], out / "learning_curves.png")
    fills, captions = {}, []
    for asset_dir in sorted(p for p in Path(args.evals).glob("*") if p.is_dir()):
        latest = newest(list(asset_dir.glob("*/results.json")))
        if latest is None:
            continue
        result = json.loads(latest.read_text())
        fills[result["asset"]] = {n: m["Fill rate [%]"] for n, m in result["metrics"].items()}
        captions.append(f"{result['asset']}: {result['caption']}")
        for ext in ("md", "tex", "csv"):
            src = latest.parent / "tables" / f"execution_quality.{ext}"
            if src.exists():
                shutil.copyfile(src, out / f"execution_quality_{result['asset']}.{ext}")
    if fills:
        write_table(fill_rate_comparison(fills), out, "fill_rate_comparison",
                    "Fill rate [%] by strategy and asset. " + " ".join(captions))
    print(f"tables and figures in {out}: {sorted(p.name for p in out.glob('*'))}")


if __name__ == "__main__":
    main()
