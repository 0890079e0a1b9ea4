"""Real multi-process runs: Lightning DDP with 2 CPU processes (gloo), a Hydra multirun sweep, and the
submitit launcher (submitit_local)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hyperdapo.models.config import ModelConfig
from hyperdapo.models.policy import load_policy
from tests.pipeline_helpers import REPO, fast

pytestmark = pytest.mark.slow


def train(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    base = [*fast(tmp_path), "algo=sft", "trainer.max_steps=4", "algo.sft_batch_size=8", "logger=csv"]
    train(*base, "hardware=cpu", "run_name=one", f"hydra.run.dir={tmp_path}/runs/one")
    train(*base, "hardware=cpu_ddp", "run_name=two", f"hydra.run.dir={tmp_path}/runs/two")
    one, _ = load_policy(ModelConfig(init_from=str(tmp_path / "models/BTC/one")))
    two, _ = load_policy(ModelConfig(init_from=str(tmp_path / "models/BTC/two")))
    for (name, p), q in zip(one.state_dict().items(), two.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]  # no per-rank run dirs
    summary = json.loads((tmp_path / "models/BTC/two/summary.json").read_text())
    assert summary["steps"] == 4
    assert (tmp_path / "runs/two/metrics.csv").read_text().count("\n") >= 4  # rank 0 logged every step


def test_multirun_two_assets_by_two_ablation_values(tmp_path):
    sweep = tmp_path / "sweep"
    train("-m", "asset=BTC,ETH", "algo.eps_high=0.2,0.28", *fast(tmp_path), "algo=dapo", "algo.sft_warmup_steps=2",
          "trainer.max_steps=3", "algo.dynamic_sampling=false", f"hydra.sweep.dir={sweep}", timeout=900)
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    assert sorted((s["asset"], s["steps"]) for s in summaries) == [("BTC", 3), ("BTC", 3), ("ETH", 3), ("ETH", 3)]
    assert len(list((tmp_path / "models").glob("*/*/summary.json"))) == 4  # every job registered its policy


def test_submitit_local_launcher_and_a_second_sweep_without_run_name(tmp_path):
    """Two sweeps of the same job, no run_name: each registers its own policy (issue 20: the second was refused,
    both defaulting to ``sft-0_BTC_sft``)."""
    for sweep in ("sweep-a", "sweep-b"):
        train("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *fast(tmp_path), "algo=sft",
              "trainer.max_steps=2", f"hydra.sweep.dir={tmp_path / sweep}", timeout=900)
        assert len(list((tmp_path / sweep).glob("*/summary.json"))) == 1
    entries = sorted(p.parent.name for p in (tmp_path / "models" / "BTC").glob("*/summary.json"))
    assert entries == ["sft-sweep-a_0_BTC_sft", "sft-sweep-b_0_BTC_sft"]
