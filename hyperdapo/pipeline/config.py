"""The typed schema of a run (Hydra structured configs).

``conf/train.yaml`` and ``conf/evaluate.yaml`` start from :class:`RunConfig` (registered in Hydra's
ConfigStore as ``run_schema``), so every group entry (``asset=``, ``venue=``, ``model=``, ...) is type-checked when
Hydra composes it, and :func:`to_run_config` builds the dataclasses, whose ``__post_init__`` checks values
and names the offending key (``algo.eps_low=0.3 > algo.eps_high=0.28 ...``).

Every schema comes from a stage's light ``config`` module, so importing this one (as ``train.py --help`` and
shell completion do) loads neither torch, transformers, numba nor pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from hyperdapo import CONF_DIR
from hyperdapo.data.config import AssetConfig, DataConfig, VenueConfig
from hyperdapo.evaluation.config import BaselineConfig, RegimeConfig
from hyperdapo.execution.config import FillConfig, RewardConfig, SequentialConfig
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.models.config import ModelConfig
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.rl.config import AlgoConfig, AlgoName, OptimConfig


@dataclass
class TrainerConfig:
    """Lightning Trainer settings. Every ``*steps`` value counts training steps: one SFT/DPO batch or one RL rollout
    batch (which makes ``algo.mu * algo.minibatches`` optimiser steps). DAPO's default: 100 SFT warm-up steps
    (``algo.sft_warmup_steps``), then 100 DAPO steps."""

    max_steps: int = 200
    val_every_n_steps: int = 20
    val_decisions: int = 64
    ckpt_every_n_steps: int = 20
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 1
    stop_after_steps: int | None = None  # stop (as if interrupted) after this many training steps
    register: str = "best"  # best: the weights of the best validation reward (pipeline/best_checkpoint.py) | last

    def __post_init__(self) -> None:
        for key in ("max_steps", "val_every_n_steps", "val_decisions", "ckpt_every_n_steps", "devices", "num_nodes",
                    "log_every_n_steps"):
            if getattr(self, key) < 1:
                raise ValueError(f"trainer.{key}={getattr(self, key)}: must be >= 1")
        if self.register not in ("best", "last"):
            raise ValueError(f"trainer.register={self.register!r}: use best (the best validation reward) or last")


@dataclass
class LoggerConfig:
    name: str = "csv"  # csv | wandb | none (the CSV metrics file is always written)
    project: str = "hyperdapo"
    mode: str = "offline"  # wandb: offline | online | disabled
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    samples_every_n_steps: int = 50  # wandb: RL steps between two tables of sample prompts and answers; 0 = none

    def __post_init__(self) -> None:
        if self.samples_every_n_steps < 0:
            raise ValueError(f"logger.samples_every_n_steps={self.samples_every_n_steps}: must be >= 0")
        if self.name not in ("csv", "wandb", "none"):
            raise ValueError(f"logger.name={self.name!r}: use csv, wandb or none")
        if self.mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode={self.mode!r}: use offline, online or disabled")


@dataclass
class EvaluateConfig:
    """What ``evaluate.py`` backtests: the baselines always; the policies of ``evaluate.policies`` (one row each,
    named after its run) or the one of ``evaluate.policy`` (row ``llm``)."""

    policy: str = "latest"  # latest (newest in <registry_dir>/<ASSET>/) | a policy directory | none | ensemble
    # several policies at once: run names in <registry_dir>/<ASSET>/, directories, or globs of either
    # (e.g. "dapo-seed*"); with it, evaluate.policy stays at latest and is not used
    policies: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # with policy=ensemble: the specialists' policy directories
    algo_filter: str = ""  # with latest: only runs whose name starts with this (e.g. "dapo")
    allow_other_asset: bool = False  # evaluate a policy trained on another asset (otherwise an error)
    # evaluate a policy trained on another market (venue, price tick, lot or data source: a transfer row, named
    # "<run> (trained on <source> <venue>)" and stated in the captions; otherwise an error naming the fields)
    allow_transfer: bool = False
    fallback: str = "moderate"  # baseline whose offset replaces an invalid llm answer
    split: str = "test"
    batch_size: int = 64  # prompts per generation batch
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    regimes: RegimeConfig = field(default_factory=RegimeConfig)  # the execution_by_regime table's buckets
    out_dir: str = ""  # "" = the Hydra run directory

    def __post_init__(self) -> None:
        if self.fallback not in self.baselines.fixed_offsets_bps:
            raise ValueError(f"evaluate.fallback={self.fallback!r}: must be one of the fixed offsets "
                             f"{list(self.baselines.fixed_offsets_bps)}")
        if self.split not in ("train", "val", "test"):
            raise ValueError(f"evaluate.split={self.split!r}: use train, val or test")
        if (self.policy == "ensemble") != (len(self.members) >= 2):
            raise ValueError(f"evaluate.members={list(self.members)}: evaluate.policy=ensemble takes two or more "
                             "policy directories in evaluate.members (and only it takes members)")
        if self.policies and self.policy != "latest":
            raise ValueError(f"evaluate.policies={list(self.policies)} with evaluate.policy={self.policy}: give "
                             "every policy in evaluate.policies (evaluate.policy is for one policy or an ensemble)")


@dataclass
class RunConfig:
    asset: AssetConfig = MISSING
    venue: VenueConfig = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    decisions: DecisionConfig = field(default_factory=DecisionConfig)
    execution: FillConfig = field(default_factory=FillConfig)
    # sequential execution (issue 22: a parent order worked every sequential.dt_s seconds to decisions.horizon_s);
    # read by the sequential env and experiments/sequential_eval.py, which check that dt divides the horizon
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    run_name: str = ""  # registry name; "" = <algo>-<the run directory name (its timestamp)>
    registry_dir: str = "outputs/models"  # trained policies: <registry_dir>/<ASSET>/<run_name>/
    ckpt_path: str | None = None  # resume: "last" (the run directory's last checkpoint) or a .ckpt path
    overwrite: bool = False  # replace an existing registry entry of the same run_name
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        self.venue.check_asset(self.asset.name)
        a = self.algo
        if a.name in (AlgoName.DAPO, AlgoName.GRPO) and a.sft_warmup_steps >= self.trainer.max_steps:
            raise ValueError(f"algo.sft_warmup_steps={a.sft_warmup_steps} >= trainer.max_steps="
                             f"{self.trainer.max_steps}: no {a.name.value} step would run; raise trainer.max_steps "
                             "or lower sft_warmup_steps (both count training steps)")


def register_configs() -> None:
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def to_run_config(cfg: DictConfig) -> RunConfig:
    """The composed Hydra config as typed, validated dataclasses (errors name the key)."""
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def compose(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, as train.py / evaluate.py do
    (for scripts and tests that run the pipeline in-process)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def compose_run_config(overrides: list[str], config_name: str = "train") -> RunConfig:
    return to_run_config(compose(overrides, config_name))
