"""What a run leaves on disk and what it refuses: atomic writes under a full disk, checkpoint names and cadence in
training steps, resume errors that lose nothing, registry entries that are never silently replaced, and policy
checks made before an evaluation computes anything."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys

import pandas as pd
import pytest
import torch

from hyperdapo.atomic import atomic_path, write_text_atomic
from hyperdapo.pipeline.evaluate_run import run_evaluation
from hyperdapo.pipeline.run_files import AtomicCheckpointIO, MetricsCSV
from hyperdapo.pipeline.train_run import check_registry_entry, policy_dir_of, run_training
from tests.pipeline_helpers import REPO, fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    write_text_atomic(target, "old")
    with pytest.raises(OSError, match="No space"), atomic_path(target) as tmp:
        tmp.write_text("half a fi")  # a partial write, then the disk is full
        _disk_full()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_checkpoint_io_under_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"counters": {"train_batches": 2}}, path)

    def partial_then_full(obj, f, *args, **kwargs):
        f.write(b"\x80\x02truncated")
        _disk_full()

    monkeypatch.setattr(torch, "save", partial_then_full)
    with pytest.raises(OSError, match="No space"):
        io.save_checkpoint({"counters": {"train_batches": 4}}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["counters"]["train_batches"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """An RL run (2 optimiser steps per training step) interrupted after 2 of 4 training steps."""
    tmp = tmp_path_factory.mktemp("cut")
    base = fast(tmp, "algo=dapo", "algo.sft_warmup_steps=1", "trainer.max_steps=4", "algo.dynamic_sampling=false",
                "trainer.ckpt_every_n_steps=1", "run_name=cut")
    summary = run_training(run_config([*base, "trainer.stop_after_steps=3"]), tmp / "run")
    return tmp, base, summary


def test_checkpoints_are_named_and_spaced_in_training_steps(interrupted):
    tmp, _, summary = interrupted
    assert summary["steps"] == 3 and summary["optimizer_steps"] == 1 + 2 * 2  # 1 SFT + 2 RL steps x 2 minibatches
    names = sorted(p.name for p in (tmp / "run" / "checkpoints").iterdir())
    # best.pt: the best validation's weights (hyperdapo.pipeline.best_checkpoint), beside the step checkpoints
    assert names == ["best.pt", "last.ckpt", "step-000001.ckpt", "step-000002.ckpt", "step-000003.ckpt"]
    assert "=" not in "".join(names)  # Hydra's override grammar takes ckpt_path=<these> unquoted
    assert pd.read_csv(tmp / "run" / "metrics.csv")["step"].max() == 2  # steps 0, 1, 2 logged


def test_resume_errors_name_the_key_and_lose_no_history(interrupted, tmp_path):
    tmp, base, _ = interrupted
    metrics = (tmp / "run" / "metrics.csv").read_text()
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: no last\.ckpt in .*typo"):
        run_training(run_config([*base, "ckpt_path=last"]), tmp / "typo")  # mistyped run directory
    assert not (tmp / "typo").exists() or not any((tmp / "typo").iterdir())
    with pytest.raises(ValueError, match="written by a run with another model"):  # a checkpoint of another model
        run_training(run_config([*base, "ckpt_path=last", "model.tiny.hidden_size=64"]), tmp / "run")
    assert (tmp / "run" / "metrics.csv").read_text() == metrics  # the failed resume deleted nothing
    with pytest.raises(ValueError, match=r"trainer\.max_steps=3"):
        run_training(run_config([*base, "ckpt_path=last", "trainer.max_steps=3"]), tmp / "run")


def test_a_run_name_is_never_silently_reused(interrupted):
    tmp, base, _ = interrupted
    entry = tmp / "models" / "BTC" / "taken"
    entry.mkdir(parents=True)
    (entry / "summary.json").write_text(json.dumps({"run_dir": "outputs/runs/BTC/sft/earlier"}))
    with pytest.raises(FileExistsError, match=r"run_name=taken: .* outputs/runs/BTC/sft/earlier.*overwrite=true"):
        run_training(run_config([*base, "run_name=taken"]), tmp / "other")


def test_the_default_dapo_run_has_dapo_steps():
    with pytest.raises(ValueError, match=r"algo\.sft_warmup_steps=100 >= trainer\.max_steps=60"):
        run_config(["trainer.max_steps=60"])


@pytest.mark.parametrize(("setup", "match"), [
    ("empty", r"evaluate\.policy=latest: no trained policy"),
    ("run_dir", r"it is a training run's directory; its policy is /somewhere/else"),
    ("other_asset", r"was trained on ETH, not asset=BTC; pass evaluate\.allow_other_asset=true"),
])
def test_evaluation_checks_the_policy_before_computing_anything(tmp_path, monkeypatch, setup, match):
    from hyperdapo.pipeline import evaluate_run

    policy = tmp_path / "policy"
    policy.mkdir()
    if setup == "run_dir":
        (policy / "summary.json").write_text(json.dumps({"asset": "BTC", "policy_dir": "/somewhere/else"}))
    else:
        (policy / "config.json").write_text("{}")
        (policy / "summary.json").write_text(json.dumps({"asset": "ETH"}))
    monkeypatch.setattr(evaluate_run, "build_task", lambda cfg: pytest.fail("the market was built before the check"))
    choice = "latest" if setup == "empty" else str(policy)
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        run_evaluation(run_config(fast(tmp_path, f"evaluate.policy={choice}"), "evaluate"), tmp_path / "eval")


def test_each_rank_places_its_policy_on_its_own_device(monkeypatch):
    from hyperdapo.models.policy import policy_device

    assert policy_device("cpu") == torch.device("cpu")
    assert policy_device("gpu", local_rank=1) == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "3")  # what Lightning's DDP launcher and torchrun set for each process
    assert policy_device("gpu") == torch.device("cuda", 3)


def test_atomic_writes_and_metrics_csv_get_the_umask_permissions(tmp_path):
    """Like open(): 0666 minus the umask (0644 under 022), not mkstemp's private 0600."""
    old = os.umask(0o022)
    try:
        text = write_text_atomic(tmp_path / "summary.json", "{}")
        with atomic_path(tmp_path / "last.ckpt") as tmp:
            tmp.write_bytes(b"x")
        csv_log = MetricsCSV(tmp_path)
        csv_log.log_metrics({"train/loss": 1.5}, step=1)
        csv_log.save()
        os.umask(0o077)
        private = write_text_atomic(tmp_path / "private.txt", "")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (text, tmp_path / "last.ckpt", csv_log.path, private)}
    assert modes == {"summary.json": 0o644, "last.ckpt": 0o644, "metrics.csv": 0o644, "private.txt": 0o600}


CLAIM_SCRIPT = """import sys
from pathlib import Path
from hyperdapo.pipeline.train_run import check_registry_entry, policy_dir_of
from tests.pipeline_helpers import fast, run_config
tmp = Path(sys.argv[1])
cfg = run_config(fast(tmp, "run_name=same"))
check_registry_entry(cfg, policy_dir_of(cfg, tmp / "run"))
print("claimed", flush=True)
sys.stdin.read()  # hold the claim until the test closes stdin
"""


def claim_in_another_process(tmp) -> subprocess.Popen:
    """A process that starts a training of run_name=same (its registry check) and holds it until stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", CLAIM_SCRIPT, str(tmp)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "claimed\n", proc.communicate()[1][-2000:]
    return proc


def test_two_trainings_of_one_run_name_at_once_the_second_is_refused(tmp_path):
    cfg = run_config(fast(tmp_path, "run_name=same", "algo=sft", "trainer.max_steps=2"))
    first = claim_in_another_process(tmp_path)
    try:
        with pytest.raises(FileExistsError, match=rf"run_name=same: another training \(process {first.pid}\)"):
            run_training(cfg, tmp_path / "second")
    finally:
        first.communicate("")
    assert not (tmp_path / "second").exists()
    entry = policy_dir_of(cfg, tmp_path / "run")
    check_registry_entry(cfg, entry)  # the first has ended: this run may take the name ...
    check_registry_entry(cfg, entry)  # ... and its last check, before it saves, lets the name go
    claim_in_another_process(tmp_path).communicate("")
