"""Learning tests through the real pipeline (task, sampler, DAPO loss, Lightning Trainer):

1. SFT teaches a tiny model the answer grammar on the synthetic market (valid answers on held-out decisions).
2. DAPO learns what the reward pays for: with the simulator's reward replaced by a known one (10 bps for the
   answer -15 bps, 0 otherwise), the share of that answer on held-out decisions rises significantly.
3. On the market's own reward (``experiment=demo``: two synthetic BTC days, a 120-s horizon), SFT then DAPO
   raises the held-out expected reward over the SFT start significantly, and the DAPO policy's answers follow
   the book (the same measurement as experiments/learning_curve.py).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from hyperdapo.models.config import ModelConfig
from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.compare import sft_then_dapo
from hyperdapo.pipeline.train_run import build_task, fit_policy, run_training
from hyperdapo.rl.rollout import sample
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

TARGET_BPS = -15.0


def _defaults(tmp):
    return [o for o in fast(tmp) if not o.startswith(("model.tiny", "trainer.val_every"))]


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("learn")
    overrides = [*_defaults(tmp), "algo=sft", "trainer.max_steps=120", "optim.lr=3e-3",
                 "trainer.val_every_n_steps=120", "algo.sft_batch_size=32", "run_name=sft"]
    summary = run_training(run_config(overrides), tmp / "sft")
    return tmp, summary


def share_of_target(task, model, tokenizer, idx, samples: int = 4) -> tuple[int, int]:
    torch.manual_seed(123)
    roll = sample(model, tokenizer, task.prompts(idx), group_size=samples, max_new_tokens=16, temperature=1.0)
    scored = task.score(idx, roll.texts, samples)
    hits = np.isclose(scored.offsets_bps, TARGET_BPS, atol=0.2)
    return int(hits.sum()), hits.size


def test_sft_teaches_the_answer_grammar(sft):
    _, summary = sft
    assert summary["final"]["val/valid_rate"] >= 0.9


def test_dapo_learns_what_the_reward_pays_for(sft):
    tmp, summary = sft
    cfg = run_config([*_defaults(tmp), "algo=dapo", "algo.sft_warmup_steps=0", "trainer.max_steps=25",
                      "trainer.val_every_n_steps=1000", "optim.lr=3e-4", "algo.max_gen_batches=50",
                      "algo.prompts_per_batch=8", "algo.group_size=8",
                      f"model.init_from={summary['policy_dir']}", "run_name=toy"])
    task = build_task(cfg)
    model, tokenizer = load_policy(ModelConfig(init_from=summary["policy_dir"]))
    task = task.rendered(tokenizer)
    held_out = task.split_index("val")
    before = share_of_target(task, model, tokenizer, held_out)

    def pays_for_the_target(s):  # 10 bps for the target offset, 0 for another, the penalty for an invalid answer
        return np.where(s.valid, np.where(np.isclose(s.offsets_bps, TARGET_BPS, atol=0.2), 10.0, 0.0),
                        task.reward_cfg.invalid_penalty)

    task = replace(task, reward_of=pays_for_the_target)
    fit_policy(cfg, task, model, tokenizer, tmp / "toy", time.perf_counter())
    after = share_of_target(task, model, tokenizer, held_out)
    table = [[after[0], after[1] - after[0]], [before[0], before[1] - before[0]]]
    p = stats.fisher_exact(table, alternative="greater").pvalue
    print(f"\nshare of {TARGET_BPS} bps answers on held-out decisions: before {before[0]}/{before[1]}, "
          f"after {after[0]}/{after[1]}, Fisher p = {p:.2e}")
    assert after[0] / after[1] > before[0] / before[1] + 0.2 and p < 1e-3


def test_dapo_beats_its_sft_start_on_the_market_reward(tmp_path):
    overrides = ["experiment=demo", f"data.raw_dir={tmp_path}/raw", f"data.cache_dir={tmp_path}/cache",
                 "trainer.val_every_n_steps=1000", "seed=0"]
    result = sft_then_dapo(overrides, tmp_path, sft_steps=400, dapo_steps=500, lr=1e-4)
    sampled, greedy = result["sampled"], result["greedy"]  # sampled: expected reward, 8 answers per decision
    print(f"\nheld-out expected reward (n={sampled['n']}): SFT {sampled['before_mean_bps']:.3f} bps, DAPO "
          f"{sampled['after_mean_bps']:.3f} bps, diff {sampled['diff_mean_bps']:+.3f} +- {sampled['diff_se_bps']:.3f} "
          f"(t p={sampled['t_p']:.1e}, Wilcoxon p={sampled['wilcoxon_p']:.1e}); DAPO greedy offsets: "
          f"{greedy['after_distinct_offsets']} distinct, Spearman(side x imbalance, offset) = "
          f"{greedy['after_lean_rho']:+.2f} (p={greedy['after_lean_p']:.1e})")
    assert sampled["diff_mean_bps"] > 0 and sampled["t_p"] < 0.01 and sampled["wilcoxon_p"] < 0.01
    # the answers follow the state: more passive when the book leans with the order, more aggressive against it
    assert greedy["after_distinct_offsets"] >= 2 and greedy["after_lean_rho"] > 0 and greedy["after_lean_p"] < 1e-6
