"""Backtest the baselines and the trained policy: ``python evaluate.py [asset=BTC] [evaluate.policy=latest]``."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hyperdapo.pipeline.config import register_configs, to_run_config
from hyperdapo.pipeline.evaluate_run import run_evaluation

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_evaluation(to_run_config(cfg), HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
