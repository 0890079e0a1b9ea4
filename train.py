"""Train a limit-order policy: ``python train.py [asset=BTC] [algo=dapo] [model=tiny] ...`` (see conf/)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hyperdapo.pipeline.config import register_configs, to_run_config
from hyperdapo.pipeline.train_run import run_training

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_training(to_run_config(cfg), HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
