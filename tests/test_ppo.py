"""The PPO baseline (hyperdapo/rl/ppo.py): it learns on the market's own reward (held-out validation reward above a
uniform random policy's on the same decisions, paired test), a seed reproduces it, and ``train.py algo=ppo`` writes
a registry entry whose loader gives back the offsets the training run validated."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hyperdapo.features.decision_set import Split
from hyperdapo.pipeline.train_run import build_task, run_training
from hyperdapo.rl.gym_env import LimitOrderEnv
from hyperdapo.rl.ppo import env_spec_of, is_ppo_policy, policy_offsets, ppo_offsets, train_ppo
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out


def _market(tmp) -> list[str]:
    """Half a synthetic day, the demo's decision grid and horizon (15 s, 120 s): about 2,200 training and 250
    validation decisions."""
    return ["data.synthetic.n_days=0.5", "decisions.every_s=15", "decisions.horizon_s=120", f"data.raw_dir={tmp}/raw",
            f"data.cache_dir={tmp}/cache", f"registry_dir={tmp}/models", "algo=ppo"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = run_config(_market(tmp_path_factory.mktemp("ppo")))
    return cfg, build_task(cfg)


def test_ppo_beats_a_uniform_random_policy_on_validation(setup):
    cfg, task = setup
    ppo_cfg = replace(cfg.algo.ppo, total_timesteps=24_576, eval_every_steps=8192)
    model, curve = train_ppo(task, ppo_cfg, seed=0)
    val = task.split_index(Split.VAL)
    offsets = policy_offsets(model, task, val, env_spec_of(ppo_cfg, task))
    ppo_bps, _ = task.score_offsets(val, offsets[:, None])  # (V, 1)
    env = LimitOrderEnv(task, Split.VAL, ppo_cfg.action, ppo_cfg.offset_grid_bps)
    env.action_space.seed(123)
    random_offsets = [ppo_cfg.offset_grid_bps[env.action_space.sample()] for _ in val]
    random_bps, _ = task.score_offsets(val, np.array(random_offsets)[:, None])
    diff = ppo_bps[:, 0] - random_bps[:, 0]
    test = stats.ttest_rel(ppo_bps[:, 0], random_bps[:, 0], alternative="greater")
    assert len(val) >= 200
    assert diff.mean() > 0.5 and test.pvalue < 0.01, (diff.mean(), test.pvalue)
    assert curve["val/reward_mean"].iloc[-1] == pytest.approx(ppo_bps.mean())  # the logged curve is this reward
    assert curve["step"].iloc[-1] == ppo_cfg.total_timesteps and curve["step"].iloc[0] == 0


def test_a_seed_reproduces_the_policy(setup):
    cfg, task = setup
    ppo_cfg = replace(cfg.algo.ppo, total_timesteps=4096, eval_every_steps=4096)
    val = task.split_index(Split.VAL)
    a, b, c = (policy_offsets(train_ppo(task, ppo_cfg, seed)[0], task, val, env_spec_of(ppo_cfg, task))
               for seed in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_train_py_algo_ppo_writes_a_registry_entry_the_loader_reads(tmp_path):
    cfg = run_config(fast(tmp_path, "algo=ppo", "run_name=ppo-rt", "algo.ppo.total_timesteps=4096",
                          "algo.ppo.eval_every_steps=2048"))
    summary = run_training(cfg, tmp_path / "run")
    policy_dir = tmp_path / "models" / "BTC" / "ppo-rt"
    assert summary["policy_dir"] == str(policy_dir) and summary["steps"] == 4096
    assert {p.name for p in policy_dir.iterdir()} == {"ppo.zip", "summary.json", "config.yaml", "metrics.csv"}
    assert json.loads((policy_dir / "summary.json").read_text())["algo"] == "ppo"
    assert (tmp_path / "run" / "summary.json").exists() and (tmp_path / "run" / "metrics.csv").exists()
    assert "name: ppo" in (policy_dir / "config.yaml").read_text()
    metrics = pd.read_csv(policy_dir / "metrics.csv")
    assert metrics["step"].tolist() == [0, 2048, 4096]
    assert is_ppo_policy(policy_dir) and not is_ppo_policy(tmp_path / "run") and not is_ppo_policy(tmp_path)

    task = build_task(cfg)  # a fresh task, as the evaluation builds it
    val = task.split_index(Split.VAL)
    offsets = ppo_offsets(policy_dir, task, val)
    assert set(offsets) <= set(cfg.algo.ppo.offset_grid_bps)
    np.testing.assert_array_equal(offsets, ppo_offsets(policy_dir, task, val))  # deterministic actions
    rewards, _ = task.score_offsets(val, offsets[:, None])  # the loaded policy scores what training logged
    assert rewards.mean() == pytest.approx(metrics["val/reward_mean"].iloc[-1], abs=1e-9)
    with pytest.raises(FileNotFoundError, match="not a PPO policy"):
        ppo_offsets(tmp_path / "run", task, val)

    # the backtest: evaluate.policy=<the PPO entry> gives a `ppo` row, evaluate.policies its run name's; both are
    # the loaded policy's offsets scored on the test split
    from hyperdapo.pipeline.evaluate_run import run_evaluation

    test = task.split_index(Split.TEST)
    want, _ = task.score_offsets(test, ppo_offsets(policy_dir, task, test)[:, None])
    alone = run_evaluation(run_config(fast(tmp_path, f"evaluate.policy={policy_dir}"), "evaluate"), tmp_path / "e1")
    many = run_evaluation(run_config(fast(tmp_path, "evaluate.policies=[ppo-rt]"), "evaluate"), tmp_path / "e2")
    assert alone["metrics"]["ppo"]["IS [bps]"] == pytest.approx(-want.mean(), abs=1e-12)
    assert many["metrics"]["ppo-rt"]["IS [bps]"] == alone["metrics"]["ppo"]["IS [bps]"]
    assert [c["versus"] for c in alone["comparisons"]] == [alone["best_baseline"]["name"]]


def test_sft_labels_from_a_ppo_teacher_trained_here_or_registered(tmp_path):
    """``algo.label_teacher``: the SFT labels are the teacher's deterministic answers on the training decisions,
    from a PPO policy trained in-process (``ppo``, the run's seed) or from a registry entry (its path)."""
    base = fast(tmp_path, "trainer.max_steps=1", "algo.ppo.total_timesteps=2048", "algo.ppo.eval_every_steps=2048")
    cfg = run_config([*base, "algo=sft"])
    task = build_task(cfg)
    spec = env_spec_of(cfg.algo.ppo, task)
    run_training(run_config([*base, "algo=ppo", "run_name=teacher"]), tmp_path / "ppo")
    registered = tmp_path / "models" / "BTC" / "teacher"
    for teacher, run_name in (("ppo", "sft-in-process"), (str(registered), "sft-registered")):
        run_training(run_config([*base, "algo=sft", f"algo.label_teacher={teacher}", f"run_name={run_name}"]),
                     tmp_path / run_name)
        pairs = pd.read_parquet(tmp_path / run_name / "datasets" / "preferences_train.parquet")
        idx = pairs["index"].to_numpy()
        want = (policy_offsets(train_ppo(task, cfg.algo.ppo, cfg.seed)[0], task, idx, spec) if teacher == "ppo"
                else ppo_offsets(registered, task, idx))
        assert pairs["chosen"].tolist() == [task.answer_of_offset(i, o) for i, o in zip(idx, want, strict=True)]
        assert [list(t) for t in pairs["targets"]] == [[c] for c in pairs["chosen"]]
        rewards, _ = task.score_offsets(idx, want[:, None])
        np.testing.assert_allclose(pairs["chosen_reward"], rewards[:, 0])
        assert len(set(want)) > 1  # a function of the state, not one answer
