"""The command-line entry points: ``train.py`` (``hyperdapo-train``) and ``evaluate.py`` (``hyperdapo-evaluate``).

This module and the config schema it composes import no torch, transformers, numba or pandas, so ``--help``
and shell completion answer at once; a run imports the pipeline when it starts. Hydra finds ``conf/`` by its
absolute path (:data:`~hyperdapo.pipeline.config.CONF_DIR`), so the entry points work from any directory.

Errors a user causes end the run with one line on stderr, ``error: <message>`` (the message names the config
key or the file), and exit code :data:`EXIT_USER_ERROR`, without a traceback: a bad config value (ValueError
from a schema's ``__post_init__``, or OmegaConf's ValidationError), a missing file or policy
(FileNotFoundError), a registry entry of another run (FileExistsError), an unreachable Tardis.dev
(ConnectionError). ``HYDRA_FULL_ERROR=1`` re-raises them with the traceback; any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from hyperdapo.pipeline.config import CONF_DIR, register_configs, to_run_config
from hyperdapo.pipeline.console import quiet_third_party

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ConnectionError, OmegaConfBaseException)
EXIT_USER_ERROR = 2  # as `python -m hyperdapo.data`; Hydra's own composition errors exit with 1
T = TypeVar("T")

register_configs()


def user_message(exc: BaseException) -> str:
    """The message of a user error, unwrapped from OmegaConf's wrapper when it caused one (OmegaConf.to_object
    may re-raise a schema's ValueError inside its own exception, with the original as ``__cause__``)."""
    while isinstance(exc, OmegaConfBaseException) and isinstance(exc.__cause__, USER_ERRORS):
        exc = exc.__cause__
    return str(exc)


def reports_user_errors(main: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Wrap a Hydra task function (its return value passes through): a user error prints ``error: <message>`` and
    exits with :data:`EXIT_USER_ERROR` (with ``HYDRA_FULL_ERROR=1`` it propagates to Hydra, which prints the
    traceback)."""

    @functools.wraps(main)
    def run(cfg: DictConfig) -> T:
        try:
            return main(cfg)
        except USER_ERRORS as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {user_message(exc)}", file=sys.stderr)
            raise SystemExit(EXIT_USER_ERROR) from None

    return run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
@reports_user_errors
def train(cfg: DictConfig) -> float:
    """Train a limit-order policy (``conf/train.yaml``); returns the last validation reward (``val/reward_mean``,
    bps), the value a Hydra sweeper optimises (``hparams_search=dapo_optuna``)."""
    quiet_third_party()
    from hyperdapo.pipeline.preemption import after_signal, resume_if_requeued
    from hyperdapo.pipeline.train_run import run_training

    hydra = HydraConfig.get()
    out_dir = Path(hydra.runtime.output_dir)
    summary = run_training(resume_if_requeued(to_run_config(cfg), out_dir), out_dir)
    if summary.get("stopped_by"):
        after_signal(summary, out_dir, list(hydra.overrides.task))
    return validation_reward(summary)


def validation_reward(summary: dict) -> float:
    """The run's last ``val/reward_mean`` (bps; a finished run validates at its end), NaN when it has not
    validated (stopped early by ``trainer.stop_after_steps``)."""
    return float(summary["final"].get("val/reward_mean", math.nan))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
@reports_user_errors
def evaluate(cfg: DictConfig) -> None:
    """Backtest the baselines and the trained policy (``conf/evaluate.yaml``)."""
    quiet_third_party()
    from hyperdapo.pipeline.evaluate_run import run_evaluation

    run_evaluation(to_run_config(cfg), HydraConfig.get().runtime.output_dir)
