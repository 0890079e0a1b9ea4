"""Did DAPO improve on its SFT start? Paired comparison of two trained policies on the same held-out decisions
(same simulator), and the SFT -> DAPO protocol that the learning test and ``experiments/learning_curve.py`` share.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from hyperdapo.execution.task import ExecutionTask
from hyperdapo.models.config import ModelConfig
from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.config import compose_run_config
from hyperdapo.pipeline.evaluate_run import greedy_answers
from hyperdapo.pipeline.train_run import build_task, run_training
from hyperdapo.rl.rollout import sample


def policy_rewards(task: ExecutionTask, model_cfg: ModelConfig, policy_dir: Path | str, idx: np.ndarray,
                   max_new_tokens: int, samples: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reward bps, valid, offset bps) per decision ``idx``: of the greedy answer, or with ``samples`` > 0 the
    mean over that many sampled answers (temperature 1, seeded): the policy's expected reward."""
    model, tokenizer = load_policy(replace(model_cfg, init_from=str(policy_dir)))
    model.eval()
    task = task.rendered(tokenizer)
    if samples == 0:
        scored = task.score(idx, greedy_answers(model, tokenizer, task, idx, max_new_tokens, 64), 1)
        return scored.rewards[:, 0], scored.valid[:, 0], scored.offsets_bps[:, 0]
    torch.manual_seed(seed)
    rewards, valid, offsets = [], [], []
    for chunk in np.array_split(idx, max(1, len(idx) // 16)):
        roll = sample(model, tokenizer, task.prompts(chunk), group_size=samples, max_new_tokens=max_new_tokens,
                      temperature=1.0)
        s = task.score(chunk, roll.texts, samples)
        rewards.append(s.rewards.mean(1))
        valid.append(s.valid.mean(1))
        offsets.append(np.nanmean(np.where(s.valid, s.offsets_bps, np.nan), axis=1))
    return np.concatenate(rewards), np.concatenate(valid), np.concatenate(offsets)


def compare_policies(task: ExecutionTask, model_cfg: ModelConfig, before: Path | str, after: Path | str,
                     split: str, max_new_tokens: int, samples: int = 0) -> dict:
    """Mean rewards of both policies, the paired difference (after - before) and its t-test / Wilcoxon, and
    whether the ``after`` policy's offsets follow the book: Spearman's rho of its offset (bps) against
    :meth:`ExecutionTask.book_lean` (> 0: more aggressive when the book leans against the order)."""
    idx = task.split_index(split)
    r0, v0, o0 = policy_rewards(task, model_cfg, before, idx, max_new_tokens, samples)
    r1, v1, o1 = policy_rewards(task, model_cfg, after, idx, max_new_tokens, samples)
    d = r1 - r0
    same = np.all(d == 0)
    lean = stats.spearmanr(task.book_lean(idx), o1, nan_policy="omit")
    return {
        "n": len(idx), "before_mean_bps": float(r0.mean()), "after_mean_bps": float(r1.mean()),
        "diff_mean_bps": float(d.mean()), "diff_se_bps": float(d.std(ddof=1) / np.sqrt(len(d))),
        "t_p": 1.0 if same else float(stats.ttest_rel(r1, r0).pvalue),
        "wilcoxon_p": 1.0 if same else float(stats.wilcoxon(d).pvalue),
        "before_valid": float(v0.mean()), "after_valid": float(v1.mean()),
        "after_offset_std_bps": float(np.nanstd(o1)),
        "after_distinct_offsets": int(len(np.unique(o1[np.isfinite(o1)].round(1)))),
        "after_lean_rho": float(lean.statistic), "after_lean_p": float(lean.pvalue),
        "before_offset_std_bps": float(np.nanstd(o0)),
    }


def sft_then_dapo(overrides: list[str], out: Path, sft_steps: int = 400, dapo_steps: int = 500,
                  lr: float = 1e-4) -> dict:
    """SFT (lr 3e-3) on the chosen answers, then DAPO from that policy, both on the Hydra ``overrides``; returns
    :func:`compare_policies` on the test split for the expected reward (8 sampled answers per decision,
    ``"sampled"``) and for the greedy answers (``"greedy"``)."""
    common = [*overrides, f"registry_dir={out}/models"]
    sft = run_training(compose_run_config([*common, "algo=sft", f"trainer.max_steps={sft_steps}", "optim.lr=3e-3",
                                           "run_name=sft"]), out / "sft")
    cfg = compose_run_config([*common, "algo=dapo", "algo.sft_warmup_steps=0", "algo.max_gen_batches=32",
                              f"trainer.max_steps={dapo_steps}", f"optim.lr={lr}",
                              f"model.init_from={sft['policy_dir']}", "run_name=dapo"])
    dapo = run_training(cfg, out / "dapo")
    task = build_task(cfg)
    return {mode: compare_policies(task, cfg.model, sft["policy_dir"], dapo["policy_dir"], "test",
                                   cfg.algo.max_new_tokens, samples=samples)
            for mode, samples in (("sampled", 8), ("greedy", 0))}
