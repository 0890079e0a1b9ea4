"""The reward-model teacher (hyperdapo/rl/reward_model.py, ``algo.label_teacher=reward_model``): the MLP's rule is
fitted on the training split only (its epoch chosen on validation, the test split never scored), a seed reproduces
it, and it answers offsets of the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split
from hyperdapo.pipeline.train_run import build_task, run_training
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.prompts.render import compact_z_features
from hyperdapo.rl.gym_env import FEATURES, observe
from hyperdapo.rl.ppo import teacher_offsets
from hyperdapo.rl.reward_model import fit_mlp, prompt_observation, reward_model_offsets, ridge_offsets
from tests.pipeline_helpers import fast, run_config

GRID = [-5.0, -2.0, -1.0, 0.0, 1.0, 2.0]
EPOCHS = 60


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = run_config(fast(tmp_path_factory.mktemp("rm"), "algo=sft"))
    return cfg, build_task(cfg)


def _perturbed(monkeypatch, task: ExecutionTask, split: Split, bonus_bps: np.ndarray, seen: list) -> None:
    """Every reward of a ``split`` decision plus ``bonus_bps`` (K,) (one per grid offset); records the decisions
    scored."""
    original = ExecutionTask.score_offsets
    members = set(task.split_index(split).tolist())

    def score(self, idx, offsets_bps):
        seen.extend(np.asarray(idx).tolist())
        rewards, outcomes = original(self, idx, offsets_bps)
        mask = np.array([i in members for i in np.asarray(idx)], dtype=bool)
        return rewards + np.where(mask[:, None], bonus_bps[None, :rewards.shape[1]], 0.0), outcomes

    monkeypatch.setattr(ExecutionTask, "score_offsets", score)


def test_the_teacher_is_reproducible_from_the_grid_and_dispatched(setup):
    cfg, task = setup
    idx = task.split_index(Split.TRAIN)
    a = reward_model_offsets(task, GRID, 0, idx, epochs=EPOCHS)
    b = reward_model_offsets(task, GRID, 0, idx, epochs=EPOCHS)
    assert len(idx) >= 200 and a.shape == (len(idx),)
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) <= set(GRID)
    via = teacher_offsets(task, "reward_model", cfg.algo.ppo, cfg.seed, idx[:50])  # algo.label_teacher=reward_model
    assert set(via.tolist()) <= set(cfg.algo.ppo.offset_grid_bps)
    np.testing.assert_array_equal(via, reward_model_offsets(task, cfg.algo.ppo.offset_grid_bps, cfg.seed, idx[:50]))


def test_only_training_rows_fit_it_and_the_test_split_is_never_scored(setup, monkeypatch):
    _, task = setup
    idx = task.split_index(Split.TRAIN)
    want = reward_model_offsets(task, GRID, 0, idx, epochs=EPOCHS)
    seen: list = []
    _perturbed(monkeypatch, task, Split.TEST, np.linspace(-30.0, 30.0, len(GRID)), seen)
    np.testing.assert_array_equal(reward_model_offsets(task, GRID, 0, idx, epochs=EPOCHS), want)
    assert not set(seen) & set(task.split_index(Split.TEST).tolist())
    assert set(seen) == set(idx.tolist()) | set(task.split_index(Split.VAL).tolist())
    monkeypatch.undo()
    # the check is not vacuous: the same bonus on the training rows moves the rule toward the favoured offset
    _perturbed(monkeypatch, task, Split.TRAIN, np.linspace(-30.0, 30.0, len(GRID)), [])
    moved = reward_model_offsets(task, GRID, 0, idx, epochs=EPOCHS)
    assert (moved == GRID[-1]).mean() > (want == GRID[-1]).mean()


def test_fit_mlp_is_seeded_and_leaves_the_callers_rng_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    r = np.c_[x[:, 0], -x[:, 0], np.zeros(300)] + rng.normal(scale=0.1, size=(300, 3))  # best: sign of x0
    state = torch.random.get_rng_state()
    a, b = fit_mlp(x[:200], r[:200], x[200:], r[200:], seed=3, epochs=40), fit_mlp(x[:200], r[:200], x[200:],
                                                                                    r[200:], seed=3, epochs=40)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.epoch == b.epoch and a.epoch in (20, 40)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    choice = a.choose(x[200:])
    assert a.val_reward == pytest.approx(r[200:][np.arange(100), choice].mean())
    assert (choice == np.where(x[200:, 0] > 0, 0, 1)).mean() > 0.8  # it learns the state-dependent rule


def test_the_ridge_teacher_reads_what_the_prompt_shows_side_relative_and_never_the_test_split(setup, monkeypatch):
    cfg, task = setup
    features = compact_z_features(PromptConfig(style="compact", book_depth=True))
    idx = task.split_index(Split.TRAIN)
    x = prompt_observation(task, idx, features)
    obs = observe(task, idx)
    side = obs[:, len(FEATURES)]
    assert x.shape == (len(idx), len(features) + 3)
    np.testing.assert_array_equal(x[:, 0], obs[:, FEATURES.index("imbalance_top5_z")] * side)  # side-relative
    np.testing.assert_array_equal(x[:, 2], obs[:, FEATURES.index("volatility_5m_bps_z")])  # not directional
    want = ridge_offsets(task, GRID, features, idx)
    assert set(want.tolist()) <= set(GRID)
    np.testing.assert_array_equal(teacher_offsets(task, "ridge", cfg.algo.ppo, cfg.seed, idx[:50], features),
                                  ridge_offsets(task, cfg.algo.ppo.offset_grid_bps, features, idx[:50]))
    with pytest.raises(ValueError, match="label_teacher=ridge reads the features the prompt shows"):
        teacher_offsets(task, "ridge", cfg.algo.ppo, cfg.seed, idx[:50])
    seen: list = []
    _perturbed(monkeypatch, task, Split.TEST, np.linspace(-30.0, 30.0, len(GRID)), seen)
    np.testing.assert_array_equal(ridge_offsets(task, GRID, features, idx), want)
    assert not set(seen) & set(task.split_index(Split.TEST).tolist())
    monkeypatch.undo()
    _perturbed(monkeypatch, task, Split.TRAIN, np.linspace(-30.0, 30.0, len(GRID)), [])  # not vacuous
    assert (ridge_offsets(task, GRID, features, idx) == GRID[-1]).mean() > (want == GRID[-1]).mean()


def test_a_run_with_the_ridge_teacher_labels_sft_with_its_answers_and_shows_its_features(tmp_path):
    """``train.py algo=sft algo.label_teacher=ridge prompt.book_depth=true``: the SFT labels are the ridge rule's
    answers on the features of the run's own prompt, and those prompts show the depth features the rule reads."""
    cfg = run_config(fast(tmp_path, "algo=sft", "trainer.max_steps=1", "algo.label_teacher=ridge",
                          "prompt.book_depth=true"))
    run_training(cfg, tmp_path / "run")
    pairs = pd.read_parquet(tmp_path / "run" / "datasets" / "preferences_train.parquet")
    task = build_task(cfg)
    idx = pairs["index"].to_numpy()
    want = ridge_offsets(task, cfg.algo.ppo.offset_grid_bps, compact_z_features(cfg.prompt), idx)
    assert pairs["chosen"].tolist() == [task.answer_of_offset(i, o) for i, o in zip(idx, want, strict=True)]
    assert all(" depth " in p and " press " in p for p in pairs["prompt"])
