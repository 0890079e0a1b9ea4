"""Sampling answers from the policy and scoring their tokens: the tensors every RL loss consumes.

Shapes: B prompts, G samples per prompt, N = B*G sequences, T completion tokens, P prompt tokens.
Prompts are left-padded so that every completion starts at the same column; a completion's mask covers its
tokens up to and including the first end-of-turn token (``<|im_end|>``) and nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, TopPLogitsWarper


@dataclass
class Rollout:
    """Sampled completions flattened to N rows: G for each of B prompts (prompt-major), or the turns of B*G
    multi-turn trajectories (:mod:`hyperdapo.rl.multiturn`). ``traj`` (N,) is each row's trajectory, 0..B*G-1, the
    unit that gets one reward and one advantage; a one-shot row is its own trajectory (``traj`` = 0..N-1)."""

    prompt_ids: torch.Tensor  # (N, P) left-padded
    prompt_mask: torch.Tensor  # (N, P)
    completion_ids: torch.Tensor  # (N, T) right-padded
    completion_mask: torch.Tensor  # (N, T) 1 on answer tokens up to and including <|im_end|>
    truncated: torch.Tensor  # (N,) bool: no end-of-turn token within max_new_tokens
    texts: list[str]  # (N,) decoded answers
    traj: torch.Tensor | None = None  # (N,) trajectory of each row; None: 0..N-1

    def __post_init__(self) -> None:
        if self.traj is None:
            self.traj = torch.arange(len(self.texts))

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)  # (N,)

    @property
    def n_traj(self) -> int:
        return int(self.traj.max()) + 1 if len(self) else 0

    def select(self, rows: torch.Tensor) -> Rollout:
        """The rows ``rows`` (an index tensor), trajectory ids unchanged."""
        return Rollout(
            self.prompt_ids[rows], self.prompt_mask[rows], self.completion_ids[rows], self.completion_mask[rows],
            self.truncated[rows], [self.texts[i] for i in rows.tolist()], self.traj[rows],
        )

    def rows_of(self, traj_ids: torch.Tensor) -> torch.Tensor:
        """The rows of trajectories ``traj_ids`` (distinct), trajectory by trajectory in that order, each one's turns
        in time order (for one-shot rows: ``traj_ids`` itself)."""
        pos = torch.full((max(self.n_traj, 1),), -1, dtype=torch.long)
        pos[traj_ids] = torch.arange(len(traj_ids))
        of_row = pos[self.traj]
        rows = torch.nonzero(of_row >= 0).flatten()
        return rows[torch.argsort(of_row[rows], stable=True)]

    def select_trajectories(self, traj_ids: torch.Tensor) -> Rollout:
        """The trajectories ``traj_ids`` (e.g. the groups kept by dynamic sampling), renumbered 0..K-1 in that order."""
        rows = self.rows_of(traj_ids)
        out = self.select(rows)
        pos = torch.full((max(self.n_traj, 1),), -1, dtype=torch.long)
        pos[traj_ids] = torch.arange(len(traj_ids))
        out.traj = pos[self.traj[rows]]
        return out

    def trajectory_texts(self) -> list[str]:
        """(n_traj,) each trajectory's answers joined by `` | `` (a one-shot row's answer)."""
        texts = [[] for _ in range(self.n_traj)]
        for t, text in zip(self.traj.tolist(), self.texts, strict=True):
            texts[t].append(text)
        return [" | ".join(t) for t in texts]

    @classmethod
    def cat(cls, rolls: list[Rollout]) -> Rollout:
        """Concatenate rollouts (prompts padded on the left, completions on the right), each one's trajectories
        numbered after the previous ones'."""
        p_len = max(r.prompt_ids.shape[1] for r in rolls)
        t_len = max(r.completion_ids.shape[1] for r in rolls)
        pad = lambda x, n, left: torch.nn.functional.pad(x, (n - x.shape[1], 0) if left else (0, n - x.shape[1]))  # noqa: E731
        offsets = torch.tensor([0] + [r.n_traj for r in rolls]).cumsum(0)
        return cls(
            torch.cat([pad(r.prompt_ids, p_len, True) for r in rolls]),
            torch.cat([pad(r.prompt_mask, p_len, True) for r in rolls]),
            torch.cat([pad(r.completion_ids, t_len, False) for r in rolls]),
            torch.cat([pad(r.completion_mask, t_len, False) for r in rolls]),
            torch.cat([r.truncated for r in rolls]),
            [t for r in rolls for t in r.texts],
            torch.cat([r.traj + off for r, off in zip(rolls, offsets.tolist(), strict=False)]),
        )


def encode_prompts(tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and attention mask, (B, P)."""
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def completion_mask_from_ids(completion_ids: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask (N, T) over tokens up to and including the first ``eos_id``; truncated (N,) where none."""
    is_eos = completion_ids == eos_id  # (N, T)
    seen_before = torch.cumsum(is_eos.int(), dim=-1) - is_eos.int()  # eos tokens strictly before each column
    mask = (seen_before == 0).long()
    return mask, ~is_eos.any(-1)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (N, L) of left-padded rows: 0 at each row's first token (pads get 0 too, as in ``generate``)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def prompt_cache(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                 rows: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]:
    """Keys and values of U distinct left-padded prompts (U, P), computed once each and gathered for N sequences
    (``rows`` (N,): each sequence's prompt in 0..U-1), and the logits (N, V) of each sequence's last prompt column
    (the prediction of its first answer token). A group's G answers share one prompt, most of a sequence's columns:
    running it once instead of G times is what makes sampling and scoring cheap. Differentiable: under autograd the
    gather sends each prompt the gradients of all the sequences that read it."""
    cache = DynamicCache()
    logits = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions(prompt_mask),
                   past_key_values=cache, use_cache=True, logits_to_keep=1).logits  # (U, 1, V)
    cache.batch_select_indices(rows)  # (N, kv heads, P, head_dim) per layer
    return cache, logits[rows, -1]


def next_token(logits: torch.Tensor, *, greedy: bool, temperature: float, top_p: float) -> torch.Tensor:
    """(N, V) float32 logits -> (N,) token ids: the argmax if ``greedy``, else one draw from softmax(logits /
    temperature) cut to the top-p nucleus. This is ``generate``'s processing (temperature, then top-p) and its
    ``torch.multinomial`` call, so a seeded draw is the one ``generate`` makes."""
    if greedy:
        return logits.argmax(-1)
    scores = logits / temperature
    if top_p < 1.0:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], *, group_size: int, max_new_tokens: int, temperature: float,
           top_p: float = 1.0, greedy: bool = False) -> Rollout:
    """Sample ``group_size`` answers per prompt (or one greedy answer if ``greedy``).

    Each prompt runs once (:func:`prompt_cache`), then every step feeds the N rows' last tokens, one column, until
    every row has written ``<|im_end|>`` or ``max_new_tokens`` columns; ended rows get pad tokens. The same tokens
    as ``model.generate`` (``tests/test_throughput.py``) without its per-token bookkeeping, which at the tiny
    model's size costs more than the model."""
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device)  # (B, P)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows = torch.arange(len(prompts), device=device).repeat_interleave(1 if greedy else group_size)  # (N,)
    was_training = model.training
    model.eval()
    cache, logits = prompt_cache(model, prompt_ids, prompt_mask, rows)  # logits (N, V): the first answer token's
    attention = prompt_mask[rows]  # (N, P + t) after t answer tokens
    position = positions(attention)[:, -1:]  # (N, 1) of the last column fed
    ended = torch.zeros(len(rows), dtype=torch.bool, device=device)
    tokens = []
    for t in range(max_new_tokens):
        if t > 0:
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            position = position + 1
            logits = model(input_ids=tokens[-1].unsqueeze(1), attention_mask=attention, position_ids=position,
                           past_key_values=cache, use_cache=True).logits[:, -1]  # (N, V)
        token = next_token(logits.float(), greedy=greedy, temperature=temperature, top_p=top_p)
        tokens.append(token.masked_fill(ended, tokenizer.pad_token_id))  # (N,)
        ended |= tokens[-1] == eos_id
        if ended.all():
            break
    model.train(was_training)
    completion_ids = torch.stack(tokens, dim=1)  # (N, T')
    completion_mask, truncated = completion_mask_from_ids(completion_ids, eos_id)
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return Rollout(prompt_ids[rows], prompt_mask[rows], completion_ids, completion_mask, truncated, texts)


def completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
    """Logits (N, T, V) of the completion tokens: column j predicts completion token j from the prompt and the
    completion tokens before it (the full sequence's columns P-1 .. P+T-2).

    Rows that share a prompt (a group's G answers) run it once: :func:`prompt_cache` on the U distinct prompts, then
    the N completions against the gathered keys and values, at their positions after their own prompt. The same
    function as one (N, P+T) forward, within float rounding, gradients included (``tests/test_throughput.py``), on
    about (U*P + N*T) / (N*(P+T)) of the columns. The plain forward runs when no prompt repeats, and under gradient
    checkpointing (checkpointed transformers layers drop ``past_key_values``). Only the T (+1) completion columns go
    through the LM head, not the prompt's (a 151k-word vocabulary makes the prompt's logits the step's largest tensor).
    """
    p_len, t_len = prompt_ids.shape[1], completion_ids.shape[1]
    attention = torch.cat([prompt_mask, completion_mask], dim=1)  # (N, P+T)
    distinct, rows = torch.unique(torch.cat([prompt_ids, prompt_mask], dim=1), dim=0, return_inverse=True)  # (U, 2P)
    checkpointed = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    if len(distinct) == len(rows) or checkpointed:
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (N, P+T)
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions(attention),
                       logits_to_keep=t_len + 1).logits  # (N, T+1, V): columns P-1 .. P+T-1
        return logits[:, :-1, :]
    cache, first = prompt_cache(model, distinct[:, :p_len], distinct[:, p_len:], rows)  # first: (N, V) column P-1
    rest = model(input_ids=completion_ids, attention_mask=attention, position_ids=positions(attention)[:, p_len:],
                 past_key_values=cache, use_cache=True).logits  # (N, T, V): columns P .. P+T-1
    return torch.cat([first.unsqueeze(1), rest[:, :-1, :]], dim=1)


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask, with_entropy: bool = True,
                   entropy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each completion token under ``model`` and the per-token entropy (None unless ``with_entropy``),
    both (N, T), from :func:`completion_logits`. The entropy is a metric computed without autograd unless
    ``entropy_grad`` (the entropy bonus differentiates it)."""
    logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask).float()  # (N, T, V)
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)  # (N, T)
    if not with_entropy:
        return logp, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(logp_all.exp() * logp_all).sum(-1)  # (N, T) nats
    return logp, entropy
