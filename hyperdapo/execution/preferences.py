"""Offline datasets from the simulator: preference pairs (DPO), chosen answers (SFT) and the offset table.

For each decision of a split, every candidate offset (default -50, -30, -15, -5, 0, +5 bps, side-relative:
negative = passive) is simulated; chosen = the best reward, rejected = the worst; decisions whose best and
worst rewards tie are skipped (no preference). Rows are saved with the prompt messages (JSON), the two
answers in the answer grammar, their rewards (bps) and metadata (asset, ts_us, mid_usd, side, objective).
:func:`with_teacher_labels` replaces the ex-post labels by a teacher policy's answers (``algo.label_teacher``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hyperdapo.atomic import atomic_path
from hyperdapo.execution.task import FEW_SHOT_OFFSETS_BPS as DEFAULT_OFFSETS_BPS
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import Split


def offset_rewards(task: ExecutionTask, idx: np.ndarray, offsets_bps=DEFAULT_OFFSETS_BPS) -> np.ndarray:
    """Reward (bps) of each candidate offset for decisions ``idx``: shape (len(idx), len(offsets_bps))."""
    grid = np.broadcast_to(np.asarray(offsets_bps, dtype=np.float64), (len(idx), len(offsets_bps)))
    rewards, _ = task.score_offsets(idx, grid)
    return rewards


def preference_pairs(task: ExecutionTask, split: Split | str, offsets_bps=DEFAULT_OFFSETS_BPS,
                     tie_bps: float = 0.0) -> pd.DataFrame:
    """One row per decision of ``split`` with a strict preference (ties skipped). ``targets``: the answers of every
    offset whose reward is within ``tie_bps`` (bps) of the best, best first (the soft labels of SFT)."""
    idx = task.split_index(split)
    offsets = np.asarray(offsets_bps, dtype=np.float64)
    rewards = offset_rewards(task, idx, offsets)  # (D, K)
    best, worst = rewards.argmax(axis=1), rewards.argmin(axis=1)
    rows = np.arange(len(idx))
    keep = rewards[rows, best] > rewards[rows, worst]
    d = task.decisions
    return pd.DataFrame({
        "index": idx[keep],
        "prompt": [json.dumps(task.messages[i]) for i in idx[keep]],
        "chosen": [task.answer_of_offset(i, offsets[k]) for i, k in zip(idx[keep], best[keep], strict=True)],
        "rejected": [task.answer_of_offset(i, offsets[k]) for i, k in zip(idx[keep], worst[keep], strict=True)],
        "targets": [[task.answer_of_offset(i, offsets[k]) for k in np.argsort(-r, kind="stable")
                     if r[k] >= r.max() - tie_bps] for i, r in zip(idx[keep], rewards[keep], strict=True)],
        "chosen_reward": rewards[rows, best][keep],
        "rejected_reward": rewards[rows, worst][keep],
        "asset": d.asset,
        "ts_us": d.ts_us[idx][keep],
        "mid_usd": task.mid_usd[idx][keep],
        "side": d.side[idx][keep],
        "objective": d.objective[idx][keep],
    })


def with_teacher_labels(task: ExecutionTask, pairs: pd.DataFrame, offsets_bps: np.ndarray) -> pd.DataFrame:
    """``pairs`` with a teacher's answers as the SFT labels: ``chosen`` and the one ``targets`` entry are the answer
    of ``offsets_bps`` (one per row, side-relative bps), ``chosen_reward`` its reward (bps); ``rejected`` stays the
    worst candidate (DPO's pairs keep their loser)."""
    idx = pairs["index"].to_numpy()
    offsets = np.asarray(offsets_bps, dtype=np.float64).reshape(len(idx))
    answers = [task.answer_of_offset(i, o) for i, o in zip(idx, offsets, strict=True)]
    rewards, _ = task.score_offsets(idx, offsets[:, None])
    return pairs.assign(chosen=answers, targets=[[a] for a in answers], chosen_reward=rewards[:, 0])


def save_table(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as parquet atomically (temp file in the same directory, then rename)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def offset_table(task: ExecutionTask, split: Split | str, offsets_bps) -> pd.DataFrame:
    """Mean reward (bps) of each fixed offset on ``split`` and of the per-decision ex-post best offset
    (the oracle: an upper bound, never a strategy), with the standard error of each mean."""
    idx = task.split_index(split)
    rewards = offset_rewards(task, idx, offsets_bps)  # (D, K)
    oracle = rewards.max(axis=1)
    names = [f"fixed {o:+.1f} bps" for o in offsets_bps] + ["oracle (ex-post best)"]
    cols = [*rewards.T, oracle]
    return pd.DataFrame({
        "strategy": names,
        "mean_reward_bps": [c.mean() for c in cols],
        "se_bps": [c.std(ddof=1) / np.sqrt(len(c)) for c in cols],
        "decisions": len(idx),
    })
