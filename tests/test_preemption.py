"""Preemption of a real training process (``train.py`` in a subprocess, CPU): a signal mid-run checkpoints at a
step boundary, exits with 128 + the signal's number and prints the command that resumes; the resumed run equals an
uninterrupted one bitwise (weights and every ``metrics.csv`` row). On SLURM (faked:
SLURM variables and an ``scontrol`` on PATH that logs its arguments) SIGUSR1 requeues the job, and the requeued job
(``SLURM_RESTART_COUNT=1``, the same command) resumes by itself."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hyperdapo.models.policy import ModelConfig, load_policy
from hyperdapo.pipeline.preemption import requeue, resume_if_requeued, slurm_job_id
from hyperdapo.pipeline.run_files import checkpoint_step
from hyperdapo.pipeline.train_run import run_training
from tests.pipeline_helpers import REPO, fast, run_config

MAX_STEPS = 6  # SFT steps (fast): the signal arrives after the checkpoint of step 2 (RL resume: test_pipeline.py)


def overrides(tmp: Path, run_name: str) -> list[str]:
    return fast(tmp, "algo=sft", f"trainer.max_steps={MAX_STEPS}", f"run_name={run_name}",
                f"hydra.run.dir={tmp / run_name}")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: the same command, not signalled (a subprocess too: the in-process run is not bitwise equal)."""
    tmp = tmp_path_factory.mktemp("preempt")
    assert train_process(overrides(tmp, "full"), tmp / "full.log").wait(timeout=300) == 0
    return tmp


def train_process(args: list[str], log: Path, **env: str) -> subprocess.Popen:
    """``train.py args`` in a subprocess, its output in ``log`` (a pipe could fill and block it); no SLURM
    variables but those given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=environ | env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def signal_mid_run(proc: subprocess.Popen, run_dir: Path, sig: signal.Signals) -> int:
    """Send ``sig`` once the run has written its step-2 checkpoint; returns the exit code."""
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "step-000002.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before step 2"
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def assert_same_as_uninterrupted(tmp: Path, run_name: str) -> None:
    a, _ = load_policy(ModelConfig(init_from=str(tmp / "models" / "BTC" / "full")))
    b, _ = load_policy(ModelConfig(init_from=str(tmp / "models" / "BTC" / run_name)))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    # Lightning's epoch column counts a resumed fit as a new epoch; batches are drawn by training step, not epoch
    expected, got = (pd.read_csv(tmp / name / "metrics.csv").drop(columns="epoch") for name in ("full", run_name))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)  # no row lost, none twice (SFT: no timings)


@pytest.mark.slow  # three train.py processes (~100 s on the loaded 2-core machine)
def test_sigterm_checkpoints_exits_and_the_printed_command_resumes_exactly(uninterrupted):
    tmp = uninterrupted
    run_dir, log = tmp / "sigterm", tmp / "sigterm.log"
    code = signal_mid_run(train_process(overrides(tmp, "sigterm"), log), run_dir, signal.SIGTERM)
    out = log.read_text()
    assert code == 128 + signal.SIGTERM, out
    assert "Traceback" not in out and "not requeued (not a SLURM job)" in out
    stopped_at = checkpoint_step(run_dir / "checkpoints" / "last.ckpt")
    assert 2 <= stopped_at < MAX_STEPS and f"stopped after training step {stopped_at};" in out
    assert pd.read_csv(run_dir / "metrics.csv").step.max() == stopped_at - 1  # rows of the steps done, no more
    assert not (tmp / "models" / "BTC" / "sigterm").exists()  # an interrupted run registers nothing

    resume = shlex.split(out.split("resume with: ")[1].splitlines()[0])
    assert resume[:2] == ["python", "train.py"] and resume[-2:] == ["ckpt_path=last", f"hydra.run.dir={run_dir}"]
    assert train_process(resume[2:], tmp / "resumed.log").wait(timeout=300) == 0, (tmp / "resumed.log").read_text()
    assert_same_as_uninterrupted(tmp, "sigterm")


@pytest.mark.slow  # three train.py processes (~100 s on the loaded 2-core machine)
def test_sigusr1_on_slurm_requeues_and_the_requeued_job_resumes_by_itself(uninterrupted):
    tmp = uninterrupted
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "train"}
    args = overrides(tmp, "slurm")  # a SLURM script's run directory is fixed (README: Running on a cluster)
    code = signal_mid_run(train_process(args, tmp / "slurm.log", **slurm), tmp / "slurm", signal.SIGUSR1)
    out = (tmp / "slurm.log").read_text()
    assert code == 128 + signal.SIGUSR1 and "requeued SLURM job 4242" in out, out
    assert (tmp / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert not list((tmp / "slurm").glob("**/hpc_ckpt_*.ckpt"))  # Lightning's mid-step SLURM checkpoint: unused

    requeued = train_process(args, tmp / "requeued.log", **slurm, SLURM_RESTART_COUNT="1")
    assert requeued.wait(timeout=300) == 0, (tmp / "requeued.log").read_text()
    assert "resuming from" in (tmp / "requeued.log").read_text()
    assert_same_as_uninterrupted(tmp, "slurm")


@pytest.mark.slow  # two trainings (~35 s on the loaded 2-core machine)
def test_a_stop_between_two_validations_adds_no_validation_row(tmp_path):
    """Lightning validates when a fit stops early: at step 3 of a run that validates every 2 steps that added a
    validation row the uninterrupted run does not have (metrics.csv kept it, the resumed run did not redo it)."""
    base = fast(tmp_path, "algo=sft", "trainer.max_steps=4", "trainer.val_every_n_steps=2")
    run_training(run_config([*base, "run_name=full"]), tmp_path / "full")
    run_training(run_config([*base, "trainer.stop_after_steps=3"]), tmp_path / "cut")
    assert pd.read_csv(tmp_path / "cut" / "metrics.csv")["val/reward_mean"].notna().sum() == 1  # step 2's only
    run_training(run_config([*base, "ckpt_path=last", "run_name=cut"]), tmp_path / "cut")
    expected, got = (pd.read_csv(tmp_path / name / "metrics.csv").drop(columns="epoch") for name in ("full", "cut"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_requeue_hands_the_signal_to_the_handler_installed_before_the_fit():
    """Under submitit its SIGUSR2 handler (installed before the fit) requeues the job: it gets the signal."""
    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        assert requeue(signal.SIGUSR2) == "handed SIGUSR2 to the job's own handler" and received == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_slurm_job_ids_and_the_resume_of_a_requeued_job(tmp_path, monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(key, raising=False)
    assert slurm_job_id() is None and requeue(signal.SIGUSR1) == "not requeued (not a SLURM job)"
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    assert requeue(signal.SIGTERM) == "not requeued (SIGTERM is not a requeue signal)"  # scancel, or SLURM requeues
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert slurm_job_id() == "7_3"  # scontrol requeue takes an array task as <array job>_<task>

    cfg = run_config(fast(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").touch()
    assert resume_if_requeued(cfg, tmp_path).ckpt_path is None  # a first start trains afresh
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert resume_if_requeued(cfg, tmp_path).ckpt_path == "last"
    assert resume_if_requeued(cfg, tmp_path / "elsewhere").ckpt_path is None  # no checkpoint there: afresh
