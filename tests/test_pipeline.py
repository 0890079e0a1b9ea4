"""The training and evaluation pipeline through real Hydra composition, Lightning Trainer runs and the
registry: SFT -> DAPO -> evaluate, resume after an interruption, invalid configs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hyperdapo.models.policy import ModelConfig, load_policy
from hyperdapo.pipeline.evaluate_run import run_evaluation
from hyperdapo.pipeline.train_run import run_training
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

STRATEGIES = {"market", "aggressive", "moderate", "conservative", "passive", "twap", "vwap", "analytic", "llm"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    sft = run_training(run_config(fast(tmp, "algo=sft", "trainer.max_steps=4", "run_name=sft")), tmp / "run_sft")
    dapo = run_training(run_config(fast(tmp, "algo=dapo", "algo.sft_warmup_steps=0", "trainer.max_steps=3",
                                        f"model.init_from={sft['policy_dir']}", "run_name=dapo",
                                        "algo.dynamic_sampling=false")), tmp / "run_dapo")
    return tmp, sft, dapo


def test_training_writes_policy_config_metrics_and_registry(trained):
    tmp, sft, dapo = trained
    assert sft["steps"] == 4 and dapo["steps"] == 3
    assert dapo["optimizer_steps"] == 3 * 1 * 2  # mu=1 x minibatches=2 per RL step
    for run, name in ((tmp / "run_sft", "sft"), (tmp / "run_dapo", "dapo")):
        assert (run / "config.yaml").exists() and (run / "checkpoints" / "last.ckpt").exists()
        assert (tmp / "models" / "BTC" / name / "config.json").exists()
    metrics = pd.read_csv(tmp / "run_dapo" / "metrics.csv")
    for key in ("train/reward_mean", "train/valid_rate", "train/kept_group_share", "train/clip_low",
                "train/clip_high", "train/approx_kl", "train/entropy", "train/answer_len", "train/tokens_per_s",
                "val/reward_mean"):
        assert metrics[key].notna().any(), key
    assert "TARDIS_API_KEY" not in (tmp / "run_dapo" / "config.yaml").read_text()


def test_evaluate_writes_three_tables_and_three_figures(trained):
    tmp, _, dapo = trained
    cfg = run_config(fast(tmp, f"evaluate.policy={dapo['policy_dir']}"), "evaluate")
    result = run_evaluation(cfg, tmp / "eval")
    assert STRATEGIES | {"oracle", "sft"} == set(result["metrics"])  # sft: the policy dapo started from, by run name
    for stem in ("execution_quality", "execution_detail", "fill_rate", "training_performance", "headline",
                 "comparisons", "execution_by_objective"):
        for ext in ("md", "tex", "csv", "caption.txt"):
            assert (tmp / "eval" / "tables" / f"{stem}.{ext}").exists(), (stem, ext)
    quality = pd.read_csv(tmp / "eval" / "tables" / "execution_quality.csv")
    assert set(quality.Strategy) == STRATEGIES | {"oracle", "sft"} and quality.Strategy[0] == "llm"
    assert np.isfinite(quality.loc[quality.Strategy == "llm", "p (t)"]).all()  # tested against the best baseline
    compared = pd.read_csv(tmp / "eval" / "tables" / "comparisons.csv")
    assert compared[["Policy", "Versus"]].values.tolist() == [["llm", result["best_baseline"]["name"]], ["llm", "sft"]]
    per_objective = pd.read_csv(tmp / "eval" / "tables" / "execution_by_objective.csv").set_index("Strategy")
    decisions = pd.read_parquet(tmp / "eval" / "decisions.parquet")
    n = per_objective.loc["llm", [c for c in per_objective.columns if c.startswith("n ")]]
    assert n.sum() == len(decisions)  # every evaluated decision has one objective
    offsets = decisions["offset_bps_llm"].round(1)  # the answers' offsets (fallback for invalid ones), to 0.1 bps
    assert result["policies"]["llm"]["distinct_offsets"] == offsets.nunique() >= 1
    training = pd.read_csv(tmp / "eval" / "tables" / "training_performance.csv")
    assert training.Run.tolist() == ["BTC sft (sft)", "BTC dapo (dapo)"]  # the policy's lineage, oldest first
    for fig in ("learning_curves", "strategy_is", "cumulative_pnl"):
        path = tmp / "eval" / "figures" / f"{fig}.png"
        with Image.open(path) as im:
            assert im.size[0] > 200 and im.size[1] > 100
        assert path.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    assert "Execution quality" in (tmp / "eval" / "tables" / "execution_quality.md").read_text()


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    base = fast(tmp_path, "algo=dapo", "algo.sft_warmup_steps=2", "trainer.max_steps=4", "algo.dynamic_sampling=false")
    full = run_training(run_config([*base, "run_name=full"]), tmp_path / "full")
    cut = run_training(run_config([*base, "trainer.stop_after_steps=2"]), tmp_path / "cut")
    assert cut["steps"] == 2 and "policy_dir" not in cut  # interrupted: nothing registered
    resumed = run_training(run_config([*base, "ckpt_path=last", "run_name=resumed"]), tmp_path / "cut")
    assert resumed["steps"] == 4 and resumed["optimizer_steps"] == full["optimizer_steps"]
    a, _ = load_policy(ModelConfig(init_from=full["policy_dir"]))
    b, _ = load_policy(ModelConfig(init_from=resumed["policy_dir"]))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    for key in ("train/reward_mean", "train/loss"):
        assert resumed["final"][key] == pytest.approx(full["final"][key], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize(("override", "key"), [
    ("asset=DOGE", "asset"),
    ("reward.weights.shortfall=-1", "reward.weights.shortfall"),
    ("algo.eps_low=0.3", "algo.eps_low"),
    ("algo.group_size=1", "algo.group_size"),
    ("model.quantize=int3", "model.quantize"),
    ("venue.taker_fee_bps=200", "venue.taker_fee_bps"),
])
def test_invalid_configs_name_the_key(tmp_path, override, key):
    with pytest.raises(Exception, match=key.replace(".", r"\.")):
        run_config(fast(tmp_path, override))


def test_every_config_group_option_builds_the_validated_run_config(tmp_path):
    """Every option of every group composes AND builds the typed, validated RunConfig (the reward weights of the
    group used to be merged into the schema's and failed here)."""
    from tests.pipeline_helpers import REPO

    for group in ("asset", "venue", "data", "model", "algo", "reward", "hardware", "logger", "trainer",
                  "execution/fill", "execution/latency"):
        for option in sorted((REPO / "conf" / group).glob("*.yaml")):
            needs = {"data/files": ["data.files.book=[my_quotes.csv.gz]"]}.get(f"{group}/{option.stem}", [])
            cfg = run_config([f"{group}={option.stem}", *needs])
            assert cfg is not None, (group, option)
    for name, weights in (("fill_improve_pnl", {"fill": 0.4, "price_improvement": 0.3, "pnl_if_filled": 0.3}),
                          ("exec_risk_cost", {"execution": 0.5, "risk": 0.3, "cost": 0.2})):
        assert run_config([f"reward={name}"]).reward.effective_weights == weights
    assert run_config(["reward=exec_risk_cost", "reward.weights.risk=0.4"]).reward.effective_weights["risk"] == 0.4


@pytest.mark.parametrize("reward", ["fill_improve_pnl", "exec_risk_cost"])
def test_seed_and_thesis_rewards_train(tmp_path, reward):
    summary = run_training(run_config(fast(tmp_path, f"reward={reward}", "algo.sft_warmup_steps=1",
                                           "trainer.max_steps=2", "algo.dynamic_sampling=false")), tmp_path / "run")
    assert summary["steps"] == 2 and np.isfinite(summary["final"]["train/reward_mean"])


def test_wandb_offline_run_is_named_tagged_and_finished(tmp_path, capfd):
    from tests.pipeline_helpers import wandb_records

    summary = run_training(run_config(fast(tmp_path, "algo=sft", "trainer.max_steps=2", "logger=wandb",
                                           "logger.group=sweep-3", "run_name=sft-lr3")), tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and summary["steps"] == 2
    (run,) = [r.run for r in wandb_records(next(runs[0].glob("run-*.wandb"))) if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.job_type, run.display_name) == ("sweep-3", "train", "sft-lr3")
    assert "algo:sft" in run.tags
    assert (tmp_path / "run" / "datasets" / "preferences_train.parquet").exists()
    assert "anonymous" not in capfd.readouterr().err  # issue 20 item 8: wandb's deprecation warning on every run


def test_every_experiment_preset_composes():
    from tests.pipeline_helpers import REPO

    for preset in sorted((REPO / "conf" / "experiment").glob("*.yaml")):
        cfg = run_config([f"experiment={preset.stem}"])
        assert cfg.asset.name in ("BTC", "ETH", "SOL", "HYPE"), preset
    thesis = run_config(["experiment=thesis", "asset=SOL"])
    assert thesis.model.quantize == "nf4" and thesis.trainer.accelerator == "gpu" and thesis.asset.name == "SOL"


def test_ensemble_answer_is_the_median_of_the_members_valid_offsets(tmp_path):
    from hyperdapo.pipeline.evaluate_run import ensemble_answers
    from hyperdapo.pipeline.train_run import build_task

    task = build_task(run_config(fast(tmp_path)))
    idx = task.split_index("test")[:4]
    text = lambda i, o: task.completion(i, task.answer_of_offset(i, o)) if o is not None else " LIMIT LIMIT"  # noqa: E731
    members = [[-5.0, -5.0, -5.0, None], [-15.0, 0.0, None, None], [None, 150.0, None, None]]  # bps, None = invalid
    texts = [[text(i, o) for i, o in zip(idx, offsets, strict=True)] for offsets in members]
    answers = ensemble_answers(task, idx, texts)
    scored = task.score(idx, answers, 1)
    # the medians -10, 0, -5 bps (150 cannot pull the middle one), priced on the venue's tick grid (< 0.15 bps here)
    np.testing.assert_allclose(scored.offsets_bps.ravel()[:3], [-10.0, 0.0, -5.0], atol=0.15)
    assert answers[3] == texts[0][3] and not scored.valid.ravel()[3]  # no valid member: the first member's answer


def test_evaluate_an_ensemble_of_policies(trained):
    tmp, sft, dapo = trained
    members = f"evaluate.members=[{sft['policy_dir']},{dapo['policy_dir']}]"
    cfg = run_config(fast(tmp, "evaluate.policy=ensemble", members), "evaluate")
    result = run_evaluation(cfg, tmp / "eval_ensemble")
    assert result["policy"].startswith("ensemble(") and "llm" in result["metrics"]
    with pytest.raises(ValueError, match=r"evaluate\.members"):
        run_config(fast(tmp, "evaluate.policy=ensemble", f"evaluate.members=[{sft['policy_dir']}]"), "evaluate")
