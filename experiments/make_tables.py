"""Collect finished runs into the thesis tables and figures (``make tables``).

    .venv/bin/python experiments/make_tables.py [--registry outputs/models] [--evals outputs/eval] [--out DIR]

Tables in ``<out>/`` (md, tex, raw csv and the caption sidecar ``.caption.txt``, see ``hyperdapo.evaluation.tables``):
- ``training_performance``: one row per trained policy in the registry (``<registry>/<ASSET>/<run>/summary.json``),
  oldest first.
- ``fill_rate_comparison``: strategies x assets from the newest evaluation of each asset
  (``<evals>/<ASSET>/<run>/results.json``), with the average over assets.
- ``execution_quality_<ASSET>``, ``execution_detail_<ASSET>``, ``headline_<ASSET>`` (the seeds' metric x policy /
  traditional average / improvement) and ``comparisons_<ASSET>`` (the paired tests made): copied from that newest
  evaluation, when it wrote them (the last two need a policy).

Figures in ``<out>/figures/`` (PNG and PDF):
- ``learning_curves_<ASSET>_<run>``: one per final run (no other registered run started from it), with the runs it
  started from before it on one continuous step axis (e.g. SFT then DAPO).
- ``<ASSET>_<figure>``: every figure of the newest evaluation of each asset.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from hyperdapo.atomic import atomic_path
from hyperdapo.evaluation.figures import learning_curves, save_figure
from hyperdapo.evaluation.tables import (
    fill_rate_comparison,
    run_label,
    training_lineage,
    training_performance,
    write_table,
)

CURVE_KEYS = ["train/reward_mean", "train/loss", "val/reward_mean", "val/valid_rate"]
COPIED_TABLES = ("execution_quality", "execution_detail", "headline", "comparisons")
TABLE_FILES = ("md", "tex", "csv", "caption.txt")


def newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def final_lineages(runs: list[dict]) -> list[list[dict]]:
    """The lineage (oldest first) of every run that no other run started from."""
    lineages = [training_lineage(r) for r in runs]
    ancestors = {s["run_dir"] for chain in lineages for s in chain[:-1]}
    return [chain for chain in lineages if chain[-1]["run_dir"] not in ancestors]


def write_learning_curves(runs: list[dict], fig_dir: Path) -> None:
    for chain in final_lineages(runs):
        curves = [(run_label(s), Path(s["run_dir"], "metrics.csv")) for s in chain]
        curves = [(label, csv) for label, csv in curves if csv.exists()]
        if curves:
            last = chain[-1]
            name = Path(last.get("policy_dir", last["run_dir"])).name
            save_figure(learning_curves(curves, CURVE_KEYS, continuous=True),
                        fig_dir / f"learning_curves_{last['asset']}_{name}")


def collect_evaluation(eval_dir: Path, asset: str, out: Path, fig_dir: Path) -> None:
    """Copy the execution tables (``<stem>_<asset>.*``) and every figure (``<asset>_<name>``) of one evaluation."""
    for stem in COPIED_TABLES:
        for ext in TABLE_FILES:
            src = eval_dir / "tables" / f"{stem}.{ext}"
            if src.exists():
                copy_atomic(src, out / f"{stem}_{asset}.{ext}")
    for src in sorted((eval_dir / "figures").glob("*")):
        copy_atomic(src, fig_dir / f"{asset}_{src.name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", default="outputs/models")
    ap.add_argument("--evals", default="outputs/eval")
    ap.add_argument("--out", default="outputs/tables")
    args = ap.parse_args()
    out, fig_dir = Path(args.out), Path(args.out) / "figures"
    summaries = sorted(Path(args.registry).glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime)
    runs = [json.loads(p.read_text()) for p in summaries]
    if runs:
        write_table(training_performance(runs), out, "training_performance",
                    "Training performance, one row per registered run (CPU runs unless the model column says "
                    "otherwise). Training time = wall time of the fit (data building excluded).", policies=())
        write_learning_curves(runs, fig_dir)
    fills, rules = {}, []
    for asset_dir in sorted(p for p in Path(args.evals).glob("*") if p.is_dir()):
        latest = newest(list(asset_dir.glob("*/results.json")))
        if latest is None:
            continue
        result = json.loads(latest.read_text())
        asset = result["asset"]
        fills[asset] = {n: m["Fill rate [%]"] for n, m in result["metrics"].items()}
        rules.append(f"{asset} {'book-only' if 'book-only fills' in result['caption'] else 'trade-through'}")
        collect_evaluation(latest.parent, asset, out, fig_dir)
    if fills:
        write_table(fill_rate_comparison(fills), out, "fill_rate_comparison",
                    "Fill rate [%] by strategy and asset: share of decisions filled by the limit order(s) without "
                    "the cleanup market order, newest evaluation of each asset; Average = mean over the assets. "
                    f"Fill rule: {', '.join(rules)}.")
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    print(f"tables and figures in {out}: {made}")


if __name__ == "__main__":
    main()
