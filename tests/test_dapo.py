"""DAPO loss pieces on hand-computed tensors (numbers in the comments come from the named constants)."""

from __future__ import annotations

import math

import pytest
import torch

from hyperdapo.rl.dapo import (
    dapo_policy_loss,
    dpo_loss,
    dynamic_sampling_mask,
    group_advantages,
    kl_penalty,
    overlong_penalty,
)

EPS_LOW, EPS_HIGH = 0.20, 0.28


def one_token_loss(ratio: float, adv: float):
    """Loss and d loss / d logp for one token with the given ratio (old_logp = 0, logp = log ratio)."""
    logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
    loss, m = dapo_policy_loss(logp, torch.zeros(1, 1), torch.tensor([adv]), torch.ones(1, 1), eps_low=EPS_LOW,
                               eps_high=EPS_HIGH, n_tokens=1.0, n_seqs=1.0)
    loss.backward()
    return loss.item(), logp.grad.item(), m


def test_clipping_positive_advantage():
    # A = +1: ratio 1.5 is clipped at 1 + 0.28 = 1.28 (no gradient); ratio 0.5 is not clipped (max picks -A r)
    loss, grad, m = one_token_loss(1.5, 1.0)
    assert loss == pytest.approx(-1.28) and grad == 0.0 and m["clip_high"] == 1.0
    loss, grad, m = one_token_loss(0.5, 1.0)
    assert loss == pytest.approx(-0.5) and grad == pytest.approx(-0.5)  # d(-r)/dlogp = -r
    assert m["clip_low"] == 0.0 and m["clip_high"] == 0.0


def test_clipping_negative_advantage():
    # A = -1: ratio 0.5 is clipped at 1 - 0.2 = 0.8 (no gradient); ratio 1.5 is not (max picks +r = 1.5)
    loss, grad, m = one_token_loss(0.5, -1.0)
    assert loss == pytest.approx(0.8) and grad == 0.0 and m["clip_low"] == 1.0
    loss, grad, _ = one_token_loss(1.5, -1.0)
    assert loss == pytest.approx(1.5) and grad == pytest.approx(1.5)
    # inside the band nothing is clipped: ratio 1.2 with A = +1 -> -1.2 (1.2 < 1.28, clip-higher keeps it)
    assert one_token_loss(1.2, 1.0)[0] == pytest.approx(-1.2)


def test_token_mean_differs_from_sample_mean():
    # seq 0: 1 token of loss 1 (A=-1, ratio 1); seq 1: 3 tokens of loss 3 each (A=-3, ratio 1)
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 0, 0], [1, 1, 1]])
    adv = torch.tensor([-1.0, -3.0])
    kw = dict(eps_low=EPS_LOW, eps_high=EPS_HIGH, n_tokens=mask.sum(), n_seqs=2.0)
    token, _ = dapo_policy_loss(logp, logp, adv, mask, mode="token-mean", **kw)
    sample, _ = dapo_policy_loss(logp, logp, adv, mask, mode="seq-mean-token-mean", **kw)
    assert token.item() == pytest.approx((1 + 3 * 3) / 4)  # every token weighs the same: 2.5
    assert sample.item() == pytest.approx((1 + 3) / 2)  # every answer weighs the same: 2.0


def test_micro_batches_with_gradient_accumulation_match_the_whole_batch():
    torch.manual_seed(0)
    n, t, v = 6, 5, 7
    model = torch.nn.Linear(v, v)
    x = torch.randn(n, t, v)
    tokens = torch.randint(0, v, (n, t))
    mask = (torch.rand(n, t) > 0.3).float()
    mask[:, 0] = 1
    adv = torch.randn(n)
    old = torch.log_softmax(model(x), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).detach()
    old = old + 0.1 * torch.randn(n, t)

    def run(chunks, n_tokens):
        model.zero_grad()
        total = 0.0
        for rows in chunks:
            logp = torch.log_softmax(model(x[rows]), -1).gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)
            loss, _ = dapo_policy_loss(logp, old[rows], adv[rows], mask[rows], eps_low=EPS_LOW, eps_high=EPS_HIGH,
                                       n_tokens=n_tokens(rows), n_seqs=float(n))
            loss.backward()
            total += loss.item()
        return total, model.weight.grad.clone()

    whole_loss, whole_grad = run([torch.arange(n)], lambda r: mask.sum())
    split = [torch.arange(0, 2), torch.arange(2, 5), torch.arange(5, 6)]
    acc_loss, acc_grad = run(split, lambda r: mask.sum())  # the global token count
    assert acc_loss == pytest.approx(whole_loss, rel=1e-6)
    torch.testing.assert_close(acc_grad, whole_grad)
    local_loss, _ = run(split, lambda r: mask[r].sum())  # a per-micro-batch count would change the loss
    assert local_loss != pytest.approx(whole_loss, rel=1e-3)


def test_filtered_groups_and_zero_advantage_contribute_nothing():
    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 4.0, 6.0]])  # group 0 has no signal
    keep = dynamic_sampling_mask(rewards, min_std=0.5)
    assert keep.tolist() == [False, True]
    adv = group_advantages(rewards)
    assert torch.all(adv[0] == 0)  # a tied group: zero advantage -> zero gradient anyway
    logp = torch.randn(8, 3, requires_grad=True)
    loss, _ = dapo_policy_loss(logp, logp.detach(), adv.flatten(), torch.ones(8, 3), eps_low=EPS_LOW,
                               eps_high=EPS_HIGH, n_tokens=24.0, n_seqs=8.0)
    loss.backward()
    assert torch.all(logp.grad[:4] == 0) and torch.any(logp.grad[4:] != 0)


def test_group_advantages_by_hand_and_against_a_loop():
    rewards = torch.tensor([[0.0, 2.0, 4.0, 6.0]])
    # mean 3, sample std sqrt((9 + 1 + 1 + 9) / 3) = sqrt(20/3)
    expected = (rewards - 3) / math.sqrt(20 / 3)
    torch.testing.assert_close(group_advantages(rewards, eps=0.0), expected)
    r = torch.randn(5, 6)
    loop = torch.stack([(row - row.mean()) / (row.std() + 1e-6) for row in r])
    torch.testing.assert_close(group_advantages(r), loop)
    assert dynamic_sampling_mask(r, 0.9).tolist() == [bool(row.std() >= 0.9) for row in r]


def test_overlong_penalty_at_the_boundaries():
    max_len, cache = 16, 4  # soft zone (12, 16]
    lengths = torch.tensor([12, 13, 16, 17])
    torch.testing.assert_close(overlong_penalty(lengths, max_len, cache), torch.tensor([0.0, -0.25, -1.0, -1.0]))
    assert overlong_penalty(torch.tensor([16, 17]), 16, 0).tolist() == [0.0, -1.0]


def test_kl_penalty_zero_at_reference():
    logp = torch.randn(3, 4)
    assert kl_penalty(logp, logp, torch.ones(3, 4), 12.0).item() == 0.0
    assert kl_penalty(logp, logp + 0.5, torch.ones(3, 4), 12.0).item() > 0


def test_dpo_loss_by_hand():
    # policy == reference: margin 0, loss log 2
    z = torch.zeros(3)
    loss, m = dpo_loss(z, z, z, z, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and m["pref_accuracy"] == 0.0
    # chosen up by 2 nats, rejected down by 1 -> margin 0.1 * 3 = 0.3; loss = log(1 + e^-0.3)
    loss, m = dpo_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.zeros(1), torch.zeros(1), beta=0.1)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.3)))
    assert m["pref_accuracy"] == 1.0 and m["reward_margin"].item() == pytest.approx(0.3)
