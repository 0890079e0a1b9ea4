"""Preemption-safe training: a signal stops the run at a step boundary with a checkpoint, a SLURM job is requeued,
and the requeued job resumes exactly (weights, optimiser, counters, ``metrics.csv``).

- :class:`StopOnSignal` (a Lightning callback): SIGTERM, SIGUSR1 or SIGUSR2 during the fit finishes the current
  training step, stops the fit (every rank at the same step) and lets :class:`~hyperdapo.pipeline.run_files.
  StepCheckpoints` write ``last.ckpt`` at the end of training. Any stop before ``trainer.max_steps`` (a signal or
  ``trainer.stop_after_steps``) skips the validation Lightning runs when a fit stops early, unless the step was due
  one anyway, so that ``metrics.csv`` of the interrupted and the resumed run equals the uninterrupted run's.
- :func:`after_signal`: after such a stop, hand the signal to the handler installed before the fit (submitit's,
  which requeues the job), else requeue the SLURM job (``scontrol requeue``, as Lightning's SLURM environment does)
  on SIGUSR1 / SIGUSR2; print how to resume; exit with ``128 + signal number``, as a shell reports a signal.
- :func:`resume_if_requeued`: a requeued SLURM job (``SLURM_RESTART_COUNT`` >= 1) whose run directory holds
  ``checkpoints/last.ckpt`` resumes from it (``ckpt_path=last``) without being told.

Why not Lightning's ``SLURMEnvironment(auto_requeue=True)`` handler: it saves ``hpc_ckpt_<n>.ckpt`` inside the
signal handler, i.e. possibly in the middle of a training step (an RL step makes ``algo.mu x algo.minibatches``
optimiser steps), and a restarted job loads that file silently, past ``metrics.csv``'s resume. Ours checkpoints
between steps; it replaces Lightning's handlers from ``on_train_start`` (Lightning installs them just before) until
the fit's teardown restores the process's own.

On SLURM the signal must come early enough for one training step and a checkpoint write (``--signal=USR1@300``;
``conf/hydra/launcher/slurm.yaml``); a job killed before that resumes from its previous ``last.ckpt``, exactly too,
repeating the steps since.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

import lightning as L

from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.run_files import LAST

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)  # Lightning's SLURM requeue signal, submitit's


class StopOnSignal(L.Callback):
    """Stop the fit after the current training step on any of :data:`STOP_SIGNALS`; ``stopped_by`` then names the
    signal (None when the run ended at ``max_steps``, however it was signalled)."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.received: signal.Signals | None = None
        self.stopped_by: str | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        log.warning("%s received: stopping after the current training step", self.received.name)

    def on_train_start(self, trainer, module) -> None:
        if threading.current_thread() is not threading.main_thread():  # Python takes handlers in the main thread only
            log.warning("training outside the main thread: signals stop the run without a checkpoint")
            return
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):  # any rank signalled
            trainer.should_stop = True
            if module.train_batches < self.max_steps:
                # a rank the signal did not reach (e.g. a DDP child process) stops as on SIGTERM: it does not requeue
                self.stopped_by = (self.received or signal.SIGTERM).name
        if trainer.should_stop and module.train_batches < self.max_steps:
            skip_unscheduled_validation(trainer, module.train_batches)


def skip_unscheduled_validation(trainer: L.Trainer, steps_done: int) -> None:
    """Lightning validates when a fit stops early; an interrupted run must not (the uninterrupted run does not
    validate here), unless this step is due a validation anyway (every ``trainer.val_every_n_steps``)."""
    if steps_done % trainer.val_check_batch:
        trainer.limit_val_batches = 0  # read by Trainer.enable_validation before the step's validation check


def slurm_job_id() -> str | None:
    """This SLURM job's id (``<array job>_<task>`` in a job array, as ``scontrol requeue`` takes it), else None."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue(signum: signal.Signals) -> str:
    """Requeue this job after a stop by ``signum``; returns what was done, for the user."""
    handler = signal.getsignal(signum)
    if callable(handler):  # installed before the fit, e.g. submitit's: requeues the job, then exits
        handler(signum, None)
        return f"handed {signum.name} to the job's own handler"
    job = slurm_job_id()
    if job is None or signum not in REQUEUE_SIGNALS:
        return "not requeued" + (" (not a SLURM job)" if job is None else f" ({signum.name} is not a requeue signal)")
    if os.environ.get("SLURM_PROCID", "0") != "0":
        return "rank 0 requeues the job"
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode:
        return f"scontrol requeue {job} failed ({result.returncode}): {result.stderr.strip()}"
    return f"requeued SLURM job {job}: it resumes from this checkpoint"


def resume_command(out_dir: Path, overrides: list[str]) -> str:
    """The command that resumes the run of ``out_dir`` from its ``last.ckpt``."""
    kept = [o for o in overrides if not o.startswith(("ckpt_path=", "hydra.run.dir="))]
    return " ".join(["python train.py", *kept, "ckpt_path=last", f"hydra.run.dir={out_dir}"])


def after_signal(summary: dict, out_dir: Path, overrides: list[str]) -> None:
    """After a fit stopped by a signal: requeue (SLURM), print where the checkpoint is and how to resume, exit."""
    signum = signal.Signals[summary["stopped_by"]]
    requeued = requeue(signum)
    print(f"{signum.name}: stopped after training step {summary['steps']}; checkpoint "
          f"{Path(out_dir) / 'checkpoints' / LAST}; {requeued}.\nresume with: {resume_command(out_dir, overrides)}",
          file=sys.stderr)
    raise SystemExit(128 + signum)


def resume_if_requeued(cfg: RunConfig, out_dir: Path) -> RunConfig:
    """``ckpt_path=last`` for a requeued SLURM job whose run directory holds a checkpoint; ``cfg`` otherwise."""
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    if cfg.ckpt_path is not None or restarts < 1 or not (Path(out_dir) / "checkpoints" / LAST).is_file():
        return cfg
    log.info("SLURM job restart %d: resuming from %s", restarts, Path(out_dir) / "checkpoints" / LAST)
    return dataclasses.replace(cfg, ckpt_path="last")
