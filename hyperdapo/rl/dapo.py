"""DAPO (Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
arXiv 2503.14476) as pure tensor functions; GRPO and DPO are the same functions with other arguments.

Shapes: B prompts, G answers per prompt, N = B*G sequences, T answer tokens.

    A_i      = (r_i - mean(r_group)) / (std(r_group) + eps)                       group advantage
    ratio_t  = exp(logp_t - old_logp_t)                                            per token
    L_t      = max(-A ratio_t, -A clip(ratio_t, 1 - eps_low, 1 + eps_high))       decoupled clip
    loss     = sum over every valid token of the batch of L_t / (number of those tokens)   token-level

plus dynamic sampling (groups whose rewards barely differ carry no gradient and are replaced) and the soft
overlong punishment. No KL term by default; :func:`kl_penalty` is there for ``kl_beta > 0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6, scale: float | None = None) -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages ``(r - mean_g) / (std_g + eps)``; std is the sample std
    (Bessel-corrected, ``torch.std`` default), as in verl's GRPO/DAPO outcome advantage. With ``scale`` the
    group std is replaced by that constant (Dr. GRPO, Liu et al. 2025): every group keeps its reward scale,
    so a heavy-tailed reward is optimised in the mean rather than group by group."""
    mean = rewards.mean(dim=1, keepdim=True)
    if scale is not None:
        return (rewards - mean) / scale
    std = rewards.std(dim=1, keepdim=True)
    return (rewards - mean) / (std + eps)


def dynamic_sampling_mask(rewards: torch.Tensor, min_std: float) -> torch.Tensor:
    """(B, G) -> (B,) bool: keep groups whose reward std is at least ``min_std``. Rewards here are
    continuous (bps), so "all answers equally good" is a threshold, not an exact tie (DAPO Sec. 3.2)."""
    return rewards.std(dim=1) >= min_std


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache_len: int) -> torch.Tensor:
    """Soft overlong punishment (DAPO eq. 13), (N,) lengths -> (N,) penalties in [-1, 0]:
    0 if L <= L_max - L_cache; (L_max - L_cache - L) / L_cache inside the cache; -1 beyond L_max."""
    lengths = lengths.float()
    start = max_len - cache_len
    if cache_len == 0:
        return torch.where(lengths > max_len, -1.0, 0.0)
    return torch.where(lengths <= start, 0.0, torch.clamp((start - lengths) / cache_len, min=-1.0))


def aggregate(loss_tok: torch.Tensor, mask: torch.Tensor, mode: str, n_tokens: torch.Tensor | float,
              n_seqs: torch.Tensor | float) -> torch.Tensor:
    """Reduce (N, T) token losses to a scalar.

    ``token-mean`` (DAPO): sum over valid tokens / ``n_tokens``, the token count of the WHOLE batch (all
    micro-batches and ranks), so splitting a batch never changes the loss. ``seq-mean-token-mean`` (GRPO):
    each sequence's token mean, summed and divided by ``n_seqs``, the batch's sequence count.
    """
    if mode == "token-mean":
        return (loss_tok * mask).sum() / n_tokens
    if mode == "seq-mean-token-mean":
        per_seq = (loss_tok * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / n_seqs
    raise ValueError(f"algo.loss_agg={mode!r}: use token-mean or seq-mean-token-mean")


def dapo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, *,
                     eps_low: float, eps_high: float, n_tokens, n_seqs, mode: str = "token-mean"):
    """Clipped surrogate with decoupled bounds. logp, old_logp, mask: (N, T); adv: (N,).
    Returns (loss, metrics); metrics are detached: clip shares (of valid tokens), approx KL k3 between the
    sampling and the current policy, mean ratio."""
    ratio = torch.exp(logp - old_logp)  # (N, T)
    a = adv.unsqueeze(-1)  # (N, 1)
    pg1 = -a * ratio
    pg2 = -a * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    loss = aggregate(torch.maximum(pg1, pg2), mask, mode, n_tokens, n_seqs)
    with torch.no_grad():
        valid = mask.sum().clamp(min=1)
        log_ratio = logp - old_logp
        metrics = {
            "clip_low": (((a < 0) & (ratio < 1 - eps_low)).float() * mask).sum() / valid,
            "clip_high": (((a > 0) & (ratio > 1 + eps_high)).float() * mask).sum() / valid,
            "approx_kl": ((torch.exp(log_ratio) - 1 - log_ratio) * mask).sum() / valid,  # k3 estimator
            "ratio": (ratio * mask).sum() / valid,
        }
    return loss, metrics


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, n_tokens) -> torch.Tensor:
    """k3 estimate of KL(policy || reference) per token, token-mean over the batch (``n_tokens``)."""
    d = ref_logp - logp
    return ((torch.exp(d) - d - 1) * mask).sum() / n_tokens


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1):
    """DPO (Rafailov et al. 2023) on (B,) sequence log-probs: -log sigmoid(beta * (dchosen - drejected)).
    Metrics: preference accuracy (implicit reward of chosen > rejected) and the mean reward margin."""
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))  # (B,)
    loss = -F.logsigmoid(margin).mean()
    return loss, {"pref_accuracy": (margin > 0).float().mean().detach(), "reward_margin": margin.mean().detach()}


def entropy_bonus(entropy: torch.Tensor, mask: torch.Tensor, *, n_tokens: torch.Tensor | float) -> torch.Tensor:
    """Token-mean entropy (nats) of the answers, (N, T) per-token entropies (with autograd) and mask -> scalar; the
    RL loss subtracts ``entropy_coef`` times it, so that flat rewards do not collapse the sampler."""
    return (entropy * mask).sum() / n_tokens


def sft_loss(logp_all: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor, *, n_tokens: torch.Tensor | float,
             label_smoothing: float = 0.0) -> torch.Tensor:
    """Token-level cross-entropy of the target answers with optional label smoothing (Szegedy et al. 2016):

        L = sum_t mask_t [(1 - eps) (-log p(y_t)) + eps * mean_v (-log p(v))] / n_tokens

    ``logp_all`` (N, T, V) log-probs, ``target_ids`` and ``mask`` (N, T); ``n_tokens`` the global token count."""
    nll = -logp_all.gather(-1, target_ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
    if label_smoothing:
        nll = (1 - label_smoothing) * nll - label_smoothing * logp_all.mean(dim=-1)
    return (nll * mask).sum() / n_tokens
