"""A tiny trained policy for the tests of the applications (serve, export, paper): 2 SFT steps, ~15 s."""

from __future__ import annotations

from pathlib import Path

from hyperdapo.data.schema import Side
from hyperdapo.features.config import Objective
from hyperdapo.pipeline.train_run import run_training
from hyperdapo.pipeline.trained import DecisionInput
from tests.pipeline_helpers import fast, run_config


def train_tiny_policy(tmp: Path, *overrides: str) -> Path:
    """The registry directory of a tiny SFT policy trained in ``tmp`` on the synthetic market (``overrides``: more
    run overrides, e.g. another seed)."""
    cfg = run_config(fast(tmp, "algo=sft", "trainer.max_steps=2", "run_name=tiny", "logger=none", *overrides))
    return Path(run_training(cfg, tmp / "run")["policy_dir"])


def feature_row(imbalance: float = 0.3, flow_z: float = -1.2, mid_usd: float = 42_000.5) -> dict[str, float]:
    """A feature row as the service receives it (USD, bps, z-scores); absent features are unavailable."""
    return {"mid_usd": mid_usd, "best_bid_usd": mid_usd - 0.5, "best_ask_usd": mid_usd + 0.5, "spread_bps": 0.24,
            "imbalance_top5": imbalance, "volatility_5m_bps": 0.6, "volatility_5m_bps_z": 0.2,
            "momentum_5m_bps": -3.0, "trade_flow_5m_z": flow_z}


def decision_inputs(n: int) -> list[DecisionInput]:
    """``n`` varied decisions (side, objective, book lean, flow)."""
    objectives = list(Objective)
    return [DecisionInput(feature_row(imbalance=-0.6 + 0.15 * k, flow_z=1.5 - 0.4 * k),
                          Side.BUY if k % 2 else Side.SELL, 0.1 + 0.01 * k, objectives[k % len(objectives)], 300.0)
            for k in range(n)]
