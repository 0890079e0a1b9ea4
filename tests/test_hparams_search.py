"""Hyperparameter search: ``train.py hparams_search=dapo_optuna`` runs a real Hydra multirun with the Optuna
sweeper (3 tiny DAPO trials, CPU) and writes ``optimization_results.yaml`` whose best value is the best validation
reward the trials returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.pipeline_helpers import REPO, fast

SEARCHED = ("optim.lr", "algo.eps_high", "algo.mu")  # conf/hparams_search/dapo_optuna.yaml


@pytest.mark.slow  # a real 3-trial sweep in a train.py process (~80 s on the loaded 2-core machine)
def test_a_three_trial_optuna_search_writes_the_best_validation_reward(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*fast(tmp_path, "algo.sft_warmup_steps=1", "trainer.max_steps=2", "algo.dynamic_sampling=false"),
            "hparams_search=dapo_optuna", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep}"]
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    trials = sorted(p for p in sweep.iterdir() if (p / "summary.json").exists())
    assert len(trials) == 3
    rewards = [json.loads((t / "summary.json").read_text())["final"]["val/reward_mean"] for t in trials]
    chosen = [yaml.safe_load((t / ".hydra" / "overrides.yaml").read_text()) for t in trials]
    for overrides in chosen:
        assert {o.split("=")[0] for o in overrides} >= set(SEARCHED)  # Optuna chose every searched value
    assert len({tuple(o) for o in chosen}) == 3  # three different trials

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna" and set(results["best_params"]) == set(SEARCHED)
    assert results["best_value"] == pytest.approx(max(rewards))
