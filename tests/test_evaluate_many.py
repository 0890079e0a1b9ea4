"""Several policies in one evaluation (one row each, named after its run), the best baseline chosen on the
validation split, each policy compared with the policy it started from, and the W&B evaluation run (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hyperdapo.evaluation.baselines import ORACLE, baseline_outcomes, best_on_validation
from hyperdapo.pipeline.evaluate_run import run_evaluation
from hyperdapo.pipeline.train_run import build_task, run_training
from tests.pipeline_helpers import fast, run_config, wandb_records

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

ROWS = ("market", "moderate", "passive", "twap", "analytic")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An SFT policy and a DAPO policy started from it, in a registry under ``tmp``."""
    tmp = tmp_path_factory.mktemp("many")
    sft = run_training(run_config(fast(tmp, "algo=sft", "trainer.max_steps=2", "run_name=sft", "logger=none")),
                       tmp / "run_sft")
    dapo = fast(tmp, "algo=dapo", "algo.sft_warmup_steps=0", "trainer.max_steps=1", "logger=none",
                f"model.init_from={sft['policy_dir']}", "run_name=dapo", "algo.dynamic_sampling=false")
    run_training(run_config(dapo), tmp / "run_dapo")
    return tmp


def evaluate(tmp: Path, out: str, *overrides: str) -> tuple[dict, pd.DataFrame]:
    result = run_evaluation(run_config(fast(tmp, *overrides), "evaluate"), tmp / out)
    return result, pd.read_parquet(tmp / out / "decisions.parquet")


def test_several_policies_in_one_call_equal_one_by_one_calls(registry):
    tmp = registry
    models = tmp / "models" / "BTC"
    many, many_is = evaluate(tmp, "many", "evaluate.policies=[sft,d*]")  # a run name and a pattern of the registry
    dapo, dapo_is = evaluate(tmp, "one_dapo", f"evaluate.policy={models / 'dapo'}")
    sft, sft_is = evaluate(tmp, "one_sft", f"evaluate.policy={models / 'sft'}")
    quality = pd.read_csv(tmp / "many" / "tables" / "execution_quality.csv")
    assert quality.Strategy[:2].tolist() == ["sft", "dapo"]  # the policies first, named after their runs
    assert many["policies"]["dapo"]["started_from"] == "sft" and dapo["policies"]["llm"]["started_from"] == "sft"
    assert dapo["policies"]["sft"]["compared"] is False  # dapo's start, scored as a row of its own
    # one call with both = one call each: per-decision IS and every metric
    np.testing.assert_array_equal(many_is["is_bps_dapo"], dapo_is["is_bps_llm"])
    np.testing.assert_array_equal(many_is["is_bps_sft"], sft_is["is_bps_llm"])
    np.testing.assert_array_equal(many_is["is_bps_sft"], dapo_is["is_bps_sft"])
    assert many["metrics"]["dapo"] == pytest.approx(dapo["metrics"]["llm"], nan_ok=True)
    assert many["metrics"]["sft"] == pytest.approx(sft["metrics"]["llm"], nan_ok=True)
    for name in ROWS:
        assert many["metrics"][name] == dapo["metrics"][name]
    assert many["best_baseline"] == dapo["best_baseline"] == sft["best_baseline"]
    # the same paired tests; Bonferroni over the comparisons each call made (3: sft and dapo vs the best baseline,
    # dapo vs sft; 2 for dapo alone: vs the best baseline and vs sft)
    best = many["best_baseline"]["name"]
    pairs = {(c["policy"], c["versus"]): c for c in many["comparisons"]}
    assert set(pairs) == {("sft", best), ("dapo", best), ("dapo", "sft")}
    alone = {(c["policy"], c["versus"]): c for c in dapo["comparisons"]}
    assert set(alone) == {("llm", best), ("llm", "sft")}
    for versus in (best, "sft"):
        a, b = pairs["dapo", versus], alone["llm", versus]
        assert a["test"]["mean_diff_bps"] == pytest.approx(b["test"]["mean_diff_bps"])
        assert a["win_rate_pct"] == b["win_rate_pct"]
        assert a["test"]["t_p"] == pytest.approx(b["test"]["t_p"], nan_ok=True)
        assert a["test"]["t_p_bonf"] == pytest.approx(min(1.0, 3 * a["test"]["t_p"]), nan_ok=True)
        assert b["test"]["t_p_bonf"] == pytest.approx(min(1.0, 2 * b["test"]["t_p"]), nan_ok=True)
    # the win rate vs the best baseline by hand, from the per-decision IS
    assert many["metrics"]["dapo"]["Win rate [%]"] == pytest.approx(
        100 * np.mean(many_is["is_bps_dapo"] < many_is[f"is_bps_{best}"]))
    headline = pd.read_csv(tmp / "many" / "tables" / "headline.csv").set_index("Metric")
    classic = ["market", "aggressive", "moderate", "conservative", "passive", "twap", "vwap"]
    fills = [many["metrics"][n]["Fill rate [%]"] for n in classic]
    assert headline.loc["Fill rate [%]", "Traditional average"] == pytest.approx(np.mean(fills))
    with pytest.raises(FileNotFoundError, match=r"evaluate\.policies: 'ppo\*' matches no policy"):
        run_evaluation(run_config(fast(tmp, "evaluate.policies=[ppo*]"), "evaluate"), tmp / "none")
    with pytest.raises(ValueError, match=r"evaluate\.policies=.*evaluate\.policy=none"):
        run_config(fast(tmp, "evaluate.policies=[sft]", "evaluate.policy=none"), "evaluate")


def test_the_best_baseline_is_chosen_on_validation_without_reading_the_test_split(registry):
    task = build_task(run_config(fast(registry), "evaluate"))
    cfg = run_config(fast(registry), "evaluate").evaluate.baselines
    best, val_means = best_on_validation(task, cfg)
    mean_is = {split: {n: float(np.mean(o.is_bps)) for n, o in baseline_outcomes(task, task.split_index(split),
                                                                               cfg).items() if n != ORACLE}
               for split in ("val", "test")}
    assert val_means == pytest.approx(mean_is["val"])
    assert best == min(mean_is["val"], key=mean_is["val"].get)
    test_best = min(mean_is["test"], key=mean_is["test"].get)
    assert best != test_best, "this market's validation-best and test-best baselines differ (the case to show)"
    result = json.loads((registry / "many" / "results.json").read_text())
    assert result["best_baseline"]["name"] == best != test_best  # the evaluation compared with the validation's


def test_wandb_offline_evaluation_logs_tables_figures_and_summary(registry, monkeypatch):
    tmp = registry
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    result, _ = evaluate(tmp, "wb", "evaluate.policies=[dapo]", "logger=wandb", "logger.group=sweep-7",
                         "run_name=eval-sweep-7")
    (run_dir,) = (tmp / "wb" / "wandb").glob("offline-run-*")
    records = wandb_records(next(run_dir.glob("run-*.wandb")))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.job_type, run.display_name) == ("sweep-7", "eval", "eval-sweep-7")
    summary = {u.key or "/".join(u.nested_key): json.loads(u.value_json)
               for r in records if r.WhichOneof("record_type") == "summary" for u in r.summary.update}
    best = result["best_baseline"]["name"]
    assert summary["eval/best_baseline"] == best
    assert summary["eval/dapo/is_bps"] == pytest.approx(result["metrics"]["dapo"]["IS [bps]"])
    assert summary["eval/dapo/is_ci_low_bps"] == pytest.approx(result["is_ci"]["dapo"][0])
    (vs_best,) = [c for c in result["comparisons"] if c["versus"] == best]
    assert summary[f"eval/dapo/vs_{best}/p_t_bonf"] == pytest.approx(vs_best["test"]["t_p_bonf"])
    assert summary["eval/dapo/vs_sft/diff_bps"] == pytest.approx(
        result["metrics"]["dapo"]["IS [bps]"] - result["metrics"]["sft"]["IS [bps]"])
    media = run_dir / "files" / "media"
    tables = {p.name.rsplit("_", 2)[0]: p for p in (media / "table" / "eval" / "tables").glob("*.table.json")}
    assert {"execution_quality", "execution_detail", "headline", "comparisons", "fill_rate",
            "training_performance"} <= set(tables)
    logged = json.loads(tables["headline"].read_text())
    written = pd.read_csv(tmp / "wb" / "tables" / "headline.csv")
    assert logged["columns"] == written.columns.tolist()
    assert logged["data"][0][1] == pytest.approx(written.iloc[0, 1])  # dapo's fill rate, the same number
    images = {p.name.rsplit("_", 2)[0] for p in (media / "images" / "eval" / "figures").glob("*.png")}
    assert {"strategy_is", "cumulative_pnl", "learning_curves"} <= images
