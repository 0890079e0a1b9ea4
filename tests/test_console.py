"""Console output: known third-party noise is dropped (and nothing else), the progress bar counts training steps
with reward and loss, and prints plain lines when stdout is not a terminal."""

from __future__ import annotations

import logging
import warnings

import lightning as L
import torch

from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.progress import StepProgressBar, step_metrics


def test_known_noise_is_dropped_and_other_messages_are_kept():
    quiet_third_party()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()  # after "always": the filters above it must win
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("You're resuming from a checkpoint that ended before the epoch ended and your dataloader "
                      "is not resumable.", UserWarning, stacklevel=1)
        warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["some other deprecation"]
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # sees what passes each logger's own filters
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "bitsandbytes.backends.cpu.ops")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        loggers[0].warning("💡 Tip: For seamless cloud logging ...")
        loggers[0].warning("GPU available: False, used: False")
        loggers[1].warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "No module")
        loggers[1].warning("something else from bitsandbytes")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    kept = ["GPU available: False, used: False", "something else from bitsandbytes"]
    assert [r.getMessage() for r in records] == kept


class _Steps(L.LightningModule):
    """A tiny module that counts training steps as PolicyModule does and logs its metric names."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.train_batches = 0

    def training_step(self, batch, batch_idx):
        self.train_batches += 1
        loss = (self.w - 1).pow(2).sum()
        self.log_dict({"train/loss": loss.detach(), "train/reward_mean": -2.5}, on_step=True, prog_bar=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(bar: StepProgressBar, steps: int, epochs: int = 2) -> None:
    data = torch.utils.data.DataLoader(range(steps // epochs), batch_size=1)  # several epochs of the ticker
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_model_summary=False, callbacks=[bar], enable_progress_bar=True)
    trainer.fit(_Steps(), train_dataloaders=data)


def test_plain_progress_lines_when_stdout_is_not_a_terminal(capsys):
    _fit(StepProgressBar(total_steps=4, description="dapo", every_n_steps=2, plain=True), steps=4)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("dapo step")]
    assert [line.split(" s ")[0].rsplit(" ", 1)[0] for line in lines] == ["dapo step 2/4 (50%)", "dapo step 4/4 (100%)"]
    assert all("reward=-2.5" in line and "loss=" in line for line in lines)
    assert "Epoch" not in out


def test_terminal_bar_counts_training_steps_across_epochs():
    bar = StepProgressBar(total_steps=4, description="sft", plain=False)
    _fit(bar, steps=4)
    assert (bar.train_progress_bar.n, bar.train_progress_bar.total) == (4, 4)
    assert bar.train_progress_bar.desc.startswith("sft")
    assert "reward=-2.50" in bar.train_progress_bar.postfix and "loss=" in bar.train_progress_bar.postfix


def test_step_metrics_picks_reward_loss_and_validation_reward():
    metrics = {"train/loss": torch.tensor(0.5), "train/reward_mean": -3.0, "val/reward_mean": -2.0, "train/lr": 1e-4}
    assert step_metrics(metrics) == {"reward": -3.0, "loss": 0.5, "val_reward": -2.0}
