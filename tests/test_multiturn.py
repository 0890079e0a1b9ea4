"""The multi-turn LLM policy of sequential execution (hyperdapo/prompts/turns.py, hyperdapo/rl/multiturn.py): the turn
grammar's decoder; the trajectory loss is the sum of the per-turn token losses with the trajectory's one advantage; a
turn's prompt reads the market up to its step only; the SFT labels replay the teacher's actions; multi-turn SFT ->
DAPO trains end to end through train.py's pipeline, and the one-shot backtest, serving and paper trading refuse the
multi-turn policy."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from hyperdapo.evaluation.sequential_metrics import mean_is_bps, sequential_baselines, sft_teacher, versus_start
from hyperdapo.evaluation.tables import IDENTICAL, display_frame
from hyperdapo.execution.config import SequentialConfig
from hyperdapo.execution.sequential import Act, run_episodes
from hyperdapo.execution.sequential_baselines import PegToBest
from hyperdapo.execution.tape import MemoryTape
from hyperdapo.features.decision_set import Split
from hyperdapo.models.config import TinyArch
from hyperdapo.models.policy import build_tiny_model
from hyperdapo.models.tokenizers import train_bpe_tokenizer
from hyperdapo.pipeline.evaluate_run import find_policy
from hyperdapo.pipeline.train_run import build_task, run_training
from hyperdapo.pipeline.trained import load_trained
from hyperdapo.prompts.answer import RejectReason
from hyperdapo.prompts.turns import TurnKind, format_turn, parse_turn
from hyperdapo.rl.dapo import dapo_policy_loss, group_advantages
from hyperdapo.rl.multiturn import actions_of_answers, answer_of_action, grammar_corpus, turn_dataset, turn_text
from hyperdapo.rl.rollout import Rollout, sample, token_logprobs
from tests.pipeline_helpers import fast, run_config
from tests.test_sequential import after, deep_peg

DT = SequentialConfig(dt_s=20.0)  # 6 steps of the 120-s horizon


# ---------------------------------------------------------------------------------------------- grammar
@pytest.mark.parametrize(("text", "kind", "offset"), [
    ("KEEP", TurnKind.KEEP, math.nan), ("keep\nthe queue is short", TurnKind.KEEP, math.nan),
    ("CROSS", TurnKind.CROSS, math.nan), ("I would cross now", TurnKind.CROSS, math.nan),
    ("REPLACE -2.0 bps", TurnKind.REPLACE, -2.0), ("replace at +1.5bps", TurnKind.REPLACE, 1.5),
    ("Replace: -0.4", TurnKind.REPLACE, -0.4),
])
def test_turn_answers_decode(text, kind, offset):
    a = parse_turn(text)
    assert a.valid and a.reason is RejectReason.NONE and a.kind is kind
    assert (math.isnan(a.offset_bps) and math.isnan(offset)) or a.offset_bps == offset


@pytest.mark.parametrize(("text", "reason"), [
    ("", RejectReason.UNPARSABLE), ("hold", RejectReason.UNPARSABLE), ("REPLACE", RejectReason.UNPARSABLE),
    ("REPLACE bps", RejectReason.UNPARSABLE), ("REPLACE -500 bps", RejectReason.OUTSIDE_BAND),
    (None, RejectReason.UNPARSABLE), ("BUY LIMIT -2.0 bps", RejectReason.UNPARSABLE),
])
def test_bad_turn_answers_are_rejected_with_a_reason_never_raised(text, reason):
    a = parse_turn(text, band_bps=200.0)
    assert not a.valid and a.reason is reason


def test_canonical_answers_round_trip_and_invalid_ones_play_keep():
    texts = [format_turn(TurnKind.KEEP), format_turn(TurnKind.REPLACE, -3.25), format_turn(TurnKind.CROSS), "??"]
    acts, valid = actions_of_answers(texts, band_bps=200.0)
    assert texts[1] == "REPLACE -3.25 bps"  # two decimals: a BTC tick is ~0.1 bps
    assert list(acts.kind) == [Act.KEEP, Act.REPLACE, Act.CROSS, Act.KEEP] and list(valid) == [True, True, True, False]
    assert acts.offset_bps[1] == -3.25


# ---------------------------------------------------------------------------------------------- the loss
def test_the_trajectory_loss_is_the_sum_of_its_turn_losses_with_one_advantage():
    """Two parent orders x G = 2 trajectories with 3, 1, 2 and 2 turns: each turn's tokens get their trajectory's group
    advantage; the token-level loss over all turns equals the sum of each turn's clipped-surrogate token losses over
    the batch's token count, written out by hand, and so do its gradients; a mini-batch of whole groups holds every
    turn of their trajectories."""
    torch.manual_seed(0)
    tok = train_bpe_tokenizer(["BTC BUY book against k1/6 120s | fill 0/0.1", *grammar_corpus()], vocab_size=300)
    model = build_tiny_model(len(tok), TinyArch(hidden_size=32, intermediate_size=64, vocab_size=300),
                             tok.pad_token_id, seed=0)
    prompts = [f"<|im_start|>user\nBTC BUY k{k}/6 {120 - 20 * k}s<|im_end|>\n<|im_start|>assistant\n" for k in range(8)]
    roll = sample(model, tok, prompts, group_size=1, max_new_tokens=6, temperature=1.0)
    roll.traj = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3])  # turns in time order per trajectory (b * G + g)
    rewards = torch.tensor([[1.0, -2.0], [0.5, 3.0]])  # (B, G) bps, one per trajectory
    adv = group_advantages(rewards).flatten()[roll.traj]  # (N,) rows
    for t in range(4):
        assert torch.unique(adv[roll.traj == t]).numel() == 1
    tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
    mask = roll.completion_mask.float()
    with torch.no_grad():
        old = token_logprobs(model, *tensors, with_entropy=False)[0] + 0.3 * torch.randn(mask.shape)  # ratios != 1
    n_tokens = mask.sum()
    logp = token_logprobs(model, *tensors, with_entropy=False)[0]
    loss, _ = dapo_policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28, n_tokens=n_tokens, n_seqs=8)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    by_hand, turn_grads = 0.0, None
    for r in range(len(roll)):  # one turn at a time, its own forward
        lp = token_logprobs(model, *(x[r:r + 1] for x in tensors), with_entropy=False)[0]
        ratio = torch.exp(lp - old[r:r + 1])
        tok_loss = torch.maximum(-adv[r] * ratio, -adv[r] * ratio.clamp(0.8, 1.28))
        turn = (tok_loss * mask[r:r + 1]).sum() / n_tokens
        g = torch.autograd.grad(turn, list(model.parameters()))
        turn_grads = g if turn_grads is None else [a + b for a, b in zip(turn_grads, g, strict=True)]
        by_hand = by_hand + turn.detach()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5, abs=1e-7)
    for a, b in zip(grads, turn_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    rows = roll.rows_of(torch.tensor([2, 3]))  # the second parent's group
    assert rows.tolist() == [4, 5, 6, 7]
    kept = roll.select_trajectories(torch.tensor([2, 3, 0, 1]))
    assert kept.traj.tolist() == [0, 0, 1, 1, 2, 2, 2, 3] and kept.texts[:2] == roll.texts[4:6]


def test_rollouts_concatenate_with_their_trajectories_renumbered():
    a = Rollout(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.ones(2, 2, dtype=torch.long),
                torch.ones(2, 2), torch.zeros(2, dtype=torch.bool), ["KEEP", "CROSS"], torch.tensor([0, 0]))
    b = Rollout(torch.ones(3, 5, dtype=torch.long), torch.ones(3, 5), torch.ones(3, 1, dtype=torch.long),
                torch.ones(3, 1), torch.zeros(3, dtype=torch.bool), ["KEEP"] * 3, torch.tensor([0, 1, 1]))
    c = Rollout.cat([a, b])
    assert c.traj.tolist() == [0, 0, 1, 2, 2] and c.prompt_ids.shape == (5, 5) and c.completion_ids.shape == (5, 2)
    assert c.prompt_mask[0].tolist() == [0, 0, 1, 1, 1] and c.completion_mask[2].tolist() == [1, 0]
    assert c.trajectory_texts() == ["KEEP | CROSS", "KEEP", "KEEP | KEEP"]


def test_policies_against_their_starts_pooled_and_identical():
    """DAPO seed 0 moved from its SFT start, seed 1 did not: seed 1 reads "identical", the pooled row stacks both
    pairs' episodes (its mean difference is the mean over all of them), Bonferroni over the three rows."""
    rng = np.random.default_rng(0)
    sft0, sft1 = rng.normal(2.0, 1.0, 200), rng.normal(2.0, 1.0, 200)
    is_bps = {"sft0": sft0, "dapo0": sft0 - 0.5 + rng.normal(0, 0.1, 200), "sft1": sft1, "dapo1": sft1.copy()}
    table = versus_start(is_bps, {"dapo0": "sft0", "dapo1": "sft1"})
    assert table["Policy"].tolist() == ["dapo0", "dapo1", "pooled"]
    assert table[IDENTICAL].tolist() == [False, True, False]
    pooled = table.set_index("Policy").loc["pooled"]
    assert pooled["n episodes"] == 400
    assert pooled["Diff vs start [bps]"] == pytest.approx((is_bps["dapo0"] - sft0).mean() / 2)
    assert table.loc[0, "p (t, Bonf.)"] < 1e-4  # 3 x a p of ~1e-100
    shown = display_frame(table)
    assert shown.loc[1, "p (t, Bonf.)"] == "identical" and shown.loc[0, "p (t, Bonf.)"] != "identical"


# ---------------------------------------------------------------------------------------------- causality, SFT target
@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return build_task(run_config(fast(tmp_path_factory.mktemp("mt"), "decisions.horizon_s=120", "model=tiny")))


@pytest.mark.slow  # builds the synthetic task
def test_a_turn_prompt_reads_the_market_up_to_its_step_only(task):
    """The market after step k's time is moved: the turn lines of steps <= k are unchanged (the history included)."""
    k, changed = 2, 0
    for i in task.split_index(Split.TRAIN)[20:26]:
        t_k = int(task.decisions.ts_us[i]) + k * DT.dt_us
        moved = replace(task, tape=MemoryTape(after(task.tape.market, t_k)))
        lines = []
        for t in (task, moved):
            _, steps = run_episodes(t, [i], deep_peg, DT)
            lines.append([turn_text(t, s, 0, ["KEEP"] * s.step) for s, _ in steps])
        assert lines[0][:k + 1] == lines[1][:k + 1]
        changed += lines[0][k + 1:] != lines[1][k + 1:]
    assert changed > 0  # the move shows from the next step on


def spoken(policy):
    """``policy`` played through its answers: each action written as a turn answer and decoded back."""
    def play(s):
        a = policy(s)
        return actions_of_answers([answer_of_action(k, o) for k, o in zip(a.kind, a.offset_bps, strict=True)], 200.0)[0]
    return play


@pytest.mark.slow  # builds the synthetic task
def test_the_sft_labels_replay_the_teacher_chosen_on_the_training_split(task):
    """The teacher is the whole-remainder baseline of lowest training mean IS (TWAP and Almgren-Chriss slice the parent
    and are not candidates); its answers, decoded, are its actions (offsets to the answer's 0.01 bps), and played they
    cost what the teacher costs (to 0.01 bps of IS: the orders land on the same ticks)."""
    baselines = sequential_baselines(run_config([]).evaluate.baselines)
    name, teacher, means = sft_teacher(task, baselines, DT)
    assert "twap" not in means and not any(n.startswith("almgren") for n in means)
    train = task.split_index(Split.TRAIN)
    assert means == mean_is_bps(task, train, {n: baselines[n] for n in means}, DT)
    assert means[name] == min(means.values())
    idx = train[:40]
    examples = turn_dataset(task, idx, PegToBest(), DT)
    _, steps = run_episodes(task, idx, PegToBest(), DT)
    expected = [(int(idx[j]), a.kind[j], a.offset_bps[j]) for s, a in steps for j in np.flatnonzero(~s.done)]
    assert len(examples) == len(expected) > len(idx)  # more than one turn per episode
    acts, valid = actions_of_answers([answer for _, _, answer in examples], band_bps=200.0)
    assert valid.all() and [e[0] for e in examples] == [e[0] for e in expected]
    assert list(acts.kind) == [e[1] for e in expected]
    replace_rows = acts.kind == Act.REPLACE
    np.testing.assert_allclose(acts.offset_bps[replace_rows], np.array([e[2] for e in expected])[replace_rows],
                               atol=0.005 + 1e-9)
    played = run_episodes(task, idx, spoken(PegToBest()), DT)[0].outcomes().is_bps
    np.testing.assert_allclose(played, run_episodes(task, idx, PegToBest(), DT)[0].outcomes().is_bps, atol=0.01)
    assert all(m[-1]["role"] == "user" and "hist" in m[-1]["content"] for _, m, _ in examples)


@pytest.mark.slow  # trains: SFT warm-up then multi-turn DAPO (GRPO), ~1 min each
@pytest.mark.parametrize("algo", ["dapo", "grpo"])
def test_multi_turn_rl_trains_through_the_pipeline(tmp_path, algo):
    cfg = run_config(fast(tmp_path, "model=tiny", "decisions.horizon_s=120", "sequential.dt_s=40",
                          "sequential.multi_turn=true", f"algo={algo}", "algo.sft_warmup_steps=2",
                          "trainer.max_steps=4", "algo.max_new_tokens=12", "algo.dynamic_sampling=false",
                          "logger=csv", "run_name=mt"))
    summary = run_training(cfg, tmp_path / "run")
    assert summary["steps"] == 4 and summary["registered"]["checkpoint"] in ("best", "last")
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    rl = m.dropna(subset=["train/turns_per_trajectory"])
    assert len(rl) == 2  # the two DAPO steps, after two SFT steps
    assert (rl["train/turns_per_trajectory"] >= 1).all() and (rl["train/turns_per_trajectory"] <= 3).all()
    assert np.isfinite(m["val/reward_mean"].dropna()).all() and len(m["val/reward_mean"].dropna()) >= 1
    # the one-shot backtest refuses it by name and never picks it as the latest policy
    policy = summary["policy_dir"]
    with pytest.raises(ValueError, match=r"multi-turn policy .*sequential_eval.py --preset <preset> --policies"):
        find_policy(run_config(fast(tmp_path, f"evaluate.policy={policy}")))
    with pytest.raises(FileNotFoundError, match="evaluate.policy=latest: no trained policy"):
        find_policy(run_config(fast(tmp_path, "evaluate.policy=latest")))
    with pytest.raises(ValueError, match="is a multi-turn policy"):
        load_trained(policy)  # serving and paper trading load through the same check
