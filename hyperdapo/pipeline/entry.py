"""The command-line entry points: ``train.py`` (``hyperdapo-train``) and ``evaluate.py`` (``hyperdapo-evaluate``).

This module and the config schema it composes import no torch, transformers, numba or pandas, so ``--help``
and shell completion answer at once; a run imports the pipeline when it starts. Hydra finds ``conf/`` by its
absolute path (:data:`~hyperdapo.pipeline.config.CONF_DIR`), so the entry points work from any directory.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hyperdapo.pipeline.config import CONF_DIR, register_configs, to_run_config

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train(cfg: DictConfig) -> None:
    """Train a limit-order policy (``conf/train.yaml``)."""
    from hyperdapo.pipeline.train_run import run_training

    run_training(to_run_config(cfg), HydraConfig.get().runtime.output_dir)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def evaluate(cfg: DictConfig) -> None:
    """Backtest the baselines and the trained policy (``conf/evaluate.yaml``)."""
    from hyperdapo.pipeline.evaluate_run import run_evaluation

    run_evaluation(to_run_config(cfg), HydraConfig.get().runtime.output_dir)
