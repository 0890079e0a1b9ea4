"""The training progress bar, in training steps.

:class:`StepProgressBar` replaces Lightning's bar, which counts epochs of the step ticker ("Epoch 0/-2"): one
bar over the run's training steps with the latest reward and loss; when stdout is not a terminal (SLURM,
``make demo > log``) it prints a plain line every ``every_n_steps`` steps instead of redrawing.
"""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


def step_metrics(metrics: dict) -> dict[str, float]:
    """The progress numbers of the logged metrics: reward (RL rollouts), loss and the validation reward."""
    names = {"reward": "train/reward_mean", "loss": "train/loss", "val_reward": "val/reward_mean"}
    return {short: float(metrics[key]) for short, key in names.items() if key in metrics}


class StepProgressBar(TQDMProgressBar):
    """Progress in training steps (``module.train_batches`` of ``total_steps``) with reward and loss."""

    def __init__(self, total_steps: int, description: str, every_n_steps: int | None = None,
                 plain: bool | None = None):
        super().__init__(leave=True)
        self.total_steps, self.description = total_steps, description
        self.every_n_steps = every_n_steps or max(1, total_steps // 20)  # about 20 plain lines a run
        self.plain = not sys.stdout.isatty() if plain is None else plain
        self._t0 = time.perf_counter()
        if self.plain:  # no tqdm bars (train or validation): on_train_batch_end prints lines
            self.disable()

    def init_train_tqdm(self) -> Tqdm:
        """Lightning's training bar, named after the run and sized in training steps from the start."""
        return Tqdm(desc=self.description, total=self.total_steps, position=2 * self.process_position,
                    disable=self.is_disabled, leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0,
                    bar_format=self.BAR_FORMAT)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._t0 = time.perf_counter()
        self.train_progress_bar.n = pl_module.train_batches  # a resumed run starts where it stopped

    def on_train_epoch_start(self, trainer, *_) -> None:
        """One bar for the whole run (Lightning would start a new one per epoch of the step ticker)."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """The bar outlives epochs; :meth:`on_train_end` closes it."""

    def get_metrics(self, trainer, pl_module) -> dict[str, float]:
        """The bar's postfix (Lightning's hooks also call this): reward and loss, not Lightning's v_num."""
        return step_metrics(trainer.callback_metrics)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, metrics = pl_module.train_batches, self.get_metrics(trainer, pl_module)
        if not self.plain:
            self.train_progress_bar.n = step
            self.train_progress_bar.set_postfix(metrics, refresh=True)
        elif step % self.every_n_steps == 0 or step == self.total_steps:
            print(self.plain_line(step, metrics, time.perf_counter() - self._t0), flush=True)

    def plain_line(self, step: int, metrics: dict[str, float], seconds: float) -> str:
        """``sft step 20/400 (5%) 12 s reward=-3.1 loss=0.52``."""
        numbers = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        return (f"{self.description} step {step}/{self.total_steps} ({100 * step / self.total_steps:.0f}%) "
                f"{seconds:.0f} s {numbers}").rstrip()
