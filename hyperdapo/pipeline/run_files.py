"""What a training run keeps on disk while it runs: ``metrics.csv`` and ``checkpoints/``, both resumable and
written atomically (a crash or a full disk never leaves a truncated file, and a resume never loses history).

- :class:`MetricsCSV`: a Lightning logger that writes ``<run>/metrics.csv`` (one row per logged step, ``step``
  = training steps). Resumed at training step k it keeps the rows of steps < k and drops what the interrupted
  run logged after its last checkpoint (those steps are run again).
- :class:`StepCheckpoints`: ``checkpoints/step-000020.ckpt`` every ``every_n`` training steps and
  ``last.ckpt`` at each of those and at the end or interruption. The names have no ``=`` (Hydra's override
  grammar rejects it unquoted: ``ckpt_path=.../step-000020.ckpt`` works as typed).
- :class:`AtomicCheckpointIO`: Lightning's torch checkpoint IO through :func:`hyperdapo.atomic.atomic_path`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from hyperdapo.atomic import atomic_path, write_text_atomic

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file of the target directory, then rename."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}.ckpt"


def resolve_checkpoint(ckpt_path: str | None, run_dir: Path) -> Path | None:
    """``ckpt_path=last`` -> ``<run_dir>/checkpoints/last.ckpt``; a path must exist. Errors name the key."""
    if ckpt_path is None:
        return None
    path = run_dir / "checkpoints" / LAST if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = (f"no {LAST} in {run_dir / 'checkpoints'}: resume in the interrupted run's directory "
                "(hydra.run.dir=<that directory>)" if ckpt_path == "last" else "no such file")
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: {hint}")
    return path


def checkpoint_step(path: Path) -> int:
    """Training steps done when ``path`` was written (read without the weights' device placement)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    try:
        return int(ckpt["counters"]["train_batches"])
    except KeyError as e:
        raise ValueError(f"{path}: not a HyperDAPO checkpoint (no counters)") from e


class StepCheckpoints(L.Callback):
    """Checkpoint every ``every_n`` training steps (the module's ``train_batches``) and at the end."""

    def __init__(self, dirpath: Path, every_n: int):
        self.dirpath, self.every_n = Path(dirpath), every_n

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = module.train_batches
        if step % self.every_n == 0:
            trainer.save_checkpoint(self.dirpath / checkpoint_name(step))
            trainer.save_checkpoint(self.dirpath / LAST)

    def on_train_end(self, trainer, module) -> None:
        if module.train_batches % self.every_n:  # not saved by the last batch already
            trainer.save_checkpoint(self.dirpath / LAST)


class MetricsCSV(Logger):
    """``metrics.csv`` in the run directory; ``resume_step`` keeps the earlier rows of an interrupted run."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) < resume_step]

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:  # the run's config.yaml holds them
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        self.rows.append({**row, "step": step})

    @rank_zero_only
    def save(self) -> None:
        if not self.rows:
            return
        keys = sorted({k for r in self.rows for k in r} - {"step"}) + ["step"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in self.rows)
        write_text_atomic(self.path, out.getvalue())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def _cell(v):
    return "" if isinstance(v, float) and math.isnan(v) else v
