"""Collect finished runs into the thesis tables and figures (``make tables``), from any working directory.

    .venv/bin/python experiments/make_tables.py [--runs NAME ...] [--tags TAG ...] [--root DIR]
                                                [--registry DIR] [--evals DIR] [--out DIR]

Paths: ``--root`` (default: this checkout) is where train.py and evaluate.py ran: the defaults ``<root>/outputs/
models``, ``<root>/outputs/eval`` and ``<root>/outputs/tables`` and the relative paths the runs recorded (run and
policy directories, ``model.init_from``) are relative to it; paths given on the command line are relative to the
caller's working directory.

Selection: every registered run, or only those named by ``--runs`` (registry directory names; an unknown name is an
error listing the known ones) and/or carrying one of ``--tags`` (the run's ``logger.tags``, ``asset:<ASSET>``,
``algo:<algo>``); evaluations are then only those of a selected run.

Tables in ``<out>/`` (md, tex, raw csv and the caption sidecar ``.caption.txt``, see ``hyperdapo.evaluation.tables``):
- ``training_performance``: one row per trained policy in the registry (``<registry>/<ASSET>/<run>/summary.json``),
  oldest first.
- ``fill_rate_comparison``: strategies x assets from the newest (selected) evaluation of each asset
  (``<evals>/<ASSET>/<run>/results.json``), with the average over assets.
- ``execution_quality_<ASSET>``, ``execution_detail_<ASSET>``, ``headline_<ASSET>`` (the seeds' metric x policy /
  traditional average / improvement), ``comparisons_<ASSET>`` (the paired tests made) and
  ``execution_by_regime_<ASSET>`` (IS by market regime): copied from that newest evaluation, when it wrote them
  (headline and comparisons need a policy).

Figures in ``<out>/figures/`` (PNG and PDF):
- ``learning_curves_<ASSET>_<run>``: one per final run (no other registered run started from it), with the runs it
  started from before it on one continuous step axis (e.g. SFT then DAPO).
- ``<ASSET>_<figure>``: every figure of the newest evaluation of each asset but its learning curves (those above
  already show each run once).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

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
COPIED_TABLES = ("execution_quality", "execution_detail", "headline", "comparisons", "execution_by_regime")
TABLE_FILES = ("md", "tex", "csv", "caption.txt")
REPO = Path(__file__).resolve().parents[1]


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
    """Copy the execution tables (``<stem>_<asset>.*``) and the figures (``<asset>_<name>``) of one evaluation, but
    its learning curves (:func:`write_learning_curves` draws each run once)."""
    for stem in COPIED_TABLES:
        for ext in TABLE_FILES:
            src = eval_dir / "tables" / f"{stem}.{ext}"
            if src.exists():
                copy_atomic(src, out / f"{stem}_{asset}.{ext}")
    for src in sorted((eval_dir / "figures").glob("*")):
        if not src.name.startswith("learning_curves"):
            copy_atomic(src, fig_dir / f"{asset}_{src.name}")


def run_name(summary: dict) -> str:
    """A registered run's name: its registry directory's."""
    return Path(summary.get("policy_dir", summary["run_dir"])).name


def run_tags(summary: dict) -> set[str]:
    """``logger.tags`` of the run's ``config.yaml`` and ``asset:<ASSET>``, ``algo:<algo>``."""
    config = Path(summary.get("policy_dir", summary["run_dir"]), "config.yaml")
    cfg = (yaml.safe_load(config.read_text()) or {}) if config.exists() else {}
    return {*((cfg.get("logger") or {}).get("tags") or []), f"asset:{summary['asset']}", f"algo:{summary['algo']}"}


def select_runs(runs: list[dict], names: Sequence[str] | None, tags: Sequence[str] | None) -> list[dict]:
    """The runs named in ``names`` (None: any) carrying one of ``tags`` (None: any); an unknown name is an error."""
    unknown = sorted(set(names or ()) - {run_name(r) for r in runs})
    if unknown:
        sys.exit(f"--runs: no registered run named {', '.join(unknown)}; registered: "
                 f"{', '.join(sorted(run_name(r) for r in runs))}")
    return [r for r in runs if (names is None or run_name(r) in names) and (tags is None or run_tags(r) & set(tags))]


def evaluated_runs(result: dict) -> set[str]:
    """The run names of the policies an evaluation's ``results.json`` scored."""
    return {Path(d).name for p in (result.get("policies") or {}).values() for d in p["dirs"]}


def newest_evaluations(evals: Path, selected: set[str] | None) -> list[dict]:
    """Per asset directory, the newest ``results.json`` (of an evaluation of a ``selected`` run unless None), with
    its directory under ``"dir"``."""
    found = []
    for asset_dir in sorted(p for p in evals.glob("*") if p.is_dir()):
        results = [(p, json.loads(p.read_text())) for p in asset_dir.glob("*/results.json")]
        results = [(p, r) for p, r in results if selected is None or evaluated_runs(r) & selected]
        if results:
            path, result = max(results, key=lambda pr: pr[0].stat().st_mtime)
            found.append({**result, "dir": path.parent})
    return found


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", metavar="NAME", help="only these registered runs and their evaluations")
    ap.add_argument("--tags", nargs="+", metavar="TAG", help="only runs with one of these tags (logger.tags, "
                    "asset:<ASSET>, algo:<algo>) and their evaluations")
    ap.add_argument("--root", default=str(REPO), help="where the runs ran (default: this checkout)")
    ap.add_argument("--registry", help="default <root>/outputs/models")
    ap.add_argument("--evals", help="default <root>/outputs/eval")
    ap.add_argument("--out", help="default <root>/outputs/tables")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    root = Path(args.root).resolve()
    registry, evals, out = (Path(given).resolve() if given else root / "outputs" / default
                            for given, default in ((args.registry, "models"), (args.evals, "eval"),
                                                   (args.out, "tables")))
    os.chdir(root)  # the runs recorded their paths relative to where they ran
    fig_dir = out / "figures"
    summaries = sorted(registry.glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime)
    runs = select_runs([json.loads(p.read_text()) for p in summaries], args.runs, args.tags)
    if runs:
        write_table(training_performance(runs), out, "training_performance",
                    "Training performance, one row per registered run (CPU runs unless the model column says "
                    "otherwise). Training time = wall time of the fit (data building excluded).", policies=())
        write_learning_curves(runs, fig_dir)
    fills, rules = {}, []
    filtered = args.runs is not None or args.tags is not None
    for result in newest_evaluations(evals, {run_name(r) for r in runs} if filtered else None):
        asset = result["asset"]
        fills[asset] = {n: m["Fill rate [%]"] for n, m in result["metrics"].items()}
        rules.append(f"{asset} on {result.get('venue', 'an unrecorded venue')}: "
                     f"{result.get('fills', 'fill rule not recorded')}")
        collect_evaluation(result["dir"], asset, out, fig_dir)
    if fills:
        write_table(fill_rate_comparison(fills), out, "fill_rate_comparison",
                    "Fill rate [%] by strategy and asset: share of decisions filled by the limit order(s) without "
                    "the cleanup market order, newest evaluation of each asset; Average = mean over the assets. "
                    f"Venue and fill rule: {'; '.join(rules)}.")
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    print(f"tables and figures in {out}: {made}")


if __name__ == "__main__":
    main()
