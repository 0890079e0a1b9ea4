"""The LightningModule: a thin loop that samples, scores and calls the pure losses of :mod:`hyperdapo.rl`.

One training step = one optimisation batch:
- ``dapo`` / ``grpo``: sample G answers for each of B prompts (dynamic sampling keeps drawing prompt batches
  until B informative groups are kept), score them in the fill simulator, compute group advantages, then
  ``mu`` passes x ``minibatches`` optimiser steps of the clipped surrogate. Gradients are accumulated over
  micro-batches with the global token count, so micro-batching never changes the loss.
- ``sft``: cross-entropy on the chosen answers; ``dpo``: the DPO loss on (chosen, rejected) pairs.
Validation: greedy answers on the validation prompts, scored by the same simulator and reward.
Metrics: ``train/...`` and ``val/...`` (reward in bps).
"""

from __future__ import annotations

import copy
import time

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from hyperdapo.rl.config import AlgoConfig, AlgoName, OptimConfig
from hyperdapo.rl.dapo import (
    dapo_policy_loss,
    dpo_loss,
    dynamic_sampling_mask,
    group_advantages,
    kl_penalty,
    overlong_penalty,
)
from hyperdapo.rl.lr_schedule import warmup_cosine
from hyperdapo.rl.rollout import Rollout, encode_prompts, sample, token_logprobs


def _global_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over DDP ranks (identity on one process)."""
    if dist.is_available() and dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x)
    return x


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class PolicyModule(L.LightningModule):
    """Trains ``model`` on ``task`` (an :class:`hyperdapo.execution.task.ExecutionTask`) with ``algo``.

    ``offline`` gives the SFT / DPO batch of a step (:class:`hyperdapo.rl.data.OfflineBatches`);
    ``total_optimizer_steps`` is the length of the learning-rate schedule (see :func:`optimizer_steps`).
    """

    def __init__(self, model, tokenizer, task, algo: AlgoConfig, optim: OptimConfig, total_optimizer_steps: int,
                 seed: int, offline=None):
        super().__init__()
        self.model, self.tokenizer, self.task, self.offline = model, tokenizer, task, offline
        self.algo, self.optim, self.total_optimizer_steps, self.seed = algo, optim, total_optimizer_steps, seed
        self.automatic_optimization = False
        # counters saved in checkpoints, so that a resumed run draws exactly the batches an uninterrupted one would
        self.train_batches = 0  # training steps done (one SFT/DPO batch or one RL rollout batch each)
        self.rollout_step = 0  # RL generation batches drawn (dynamic sampling may draw several per step)
        if algo.name in (AlgoName.DAPO, AlgoName.GRPO):
            disable_dropout(model)  # sampling (eval) and training log-probs must be the same function
        self.strict_loading = False  # checkpoints hold the trainable weights only (see on_save_checkpoint)
        needs_ref = algo.name is AlgoName.DPO or algo.kl_beta > 0
        self.ref_model = None
        if needs_ref and not hasattr(model, "disable_adapter"):  # full fine-tuning: a frozen copy is the reference
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)

    # ----------------------------------------------------------------------------------------- optimiser
    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.optim.lr, betas=tuple(self.optim.betas),
                                weight_decay=self.optim.weight_decay)
        o = self.optim
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(
            s, warmup_steps=o.warmup_steps, total_steps=self.total_optimizer_steps, min_lr_ratio=o.min_lr_ratio))
        return [opt], [{"scheduler": sched, "interval": "step"}]

    def _optimizer_step(self) -> None:
        opt, sched = self.optimizers(), self.lr_schedulers()
        self.clip_gradients(opt, gradient_clip_val=self.optim.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()

    def _ref_logprobs(self, *tensors) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return token_logprobs(self.ref_model, *tensors)[0]
            with self.model.disable_adapter():
                return token_logprobs(self.model, *tensors)[0]

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        step, name = self.train_batches, self.algo.name
        if name is AlgoName.SFT or (name in (AlgoName.DAPO, AlgoName.GRPO) and step < self.algo.sft_warmup_steps):
            self._sft_step(self._my_rows(self.offline(step)))
        elif name is AlgoName.DPO:
            self._dpo_step(self._my_rows(self.offline(step)))
        else:
            self._rl_step()
        self.train_batches += 1

    def _my_rows(self, batch: dict) -> dict:
        """This rank's share of an offline batch (every rank draws the same batch of a step, then keeps rows
        rank, rank + world, ...): the global batch is the same for any number of processes."""
        rank, world = self.global_rank, _world_size()
        return {k: v[rank::world] for k, v in batch.items()}

    def _collect(self) -> tuple[Rollout, torch.Tensor, dict]:
        """Dynamic sampling: generate groups until B informative ones are kept (DAPO Sec. 3.2)."""
        a, t0 = self.algo, time.perf_counter()
        kept_rolls, kept_rewards, stats = [], [], {"valid": [], "reward": [], "len": [], "groups": 0, "kept": 0}
        for n_gen in range(1, a.max_gen_batches + 1):
            rank, world = self.global_rank, _world_size()
            torch.manual_seed((self.seed * 1_000_003 + self.rollout_step) * 64 + rank)  # resumable sampling
            idx = self.task.sample_train_prompts(self.rollout_step, a.prompts_per_batch, self.seed)[rank::world]
            self.rollout_step += 1
            roll = sample(self.model, self.tokenizer, self.task.prompts(idx), group_size=a.group_size,
                          max_new_tokens=a.max_new_tokens, temperature=a.temperature, top_p=a.top_p)
            scored = self.task.score(idx, roll.texts, a.group_size)  # rewards (B, G) bps
            rewards = torch.as_tensor(scored.rewards, dtype=torch.float32)
            if a.overlong_shaping:  # soft overlong punishment, in [-1, 0], scaled to bps
                pen = overlong_penalty(roll.lengths, a.max_new_tokens, a.overlong_cache_len)
                rewards = rewards + a.overlong_penalty_bps * pen.view_as(rewards).float()
            stats["valid"].append(scored.valid.mean())
            stats["reward"].append(rewards.mean().item())
            stats["len"].append(roll.lengths.float().mean().item())
            keep = dynamic_sampling_mask(rewards, a.min_reward_std) if a.dynamic_sampling else \
                torch.ones(len(idx), dtype=torch.bool)
            stats["groups"] += len(idx)
            stats["kept"] += int(keep.sum())
            rows = torch.arange(len(idx) * a.group_size).view(len(idx), a.group_size)[keep].flatten()
            kept_rolls.append(roll.select(rows))
            kept_rewards.append(rewards[keep])
            if sum(len(r) for r in kept_rewards) >= len(idx):  # this rank's share of B
                stats["gen_batches"] = n_gen
                break
        else:
            raise RuntimeError(
                f"dynamic sampling kept {sum(len(r) for r in kept_rewards)} of {stats['groups']} groups after "
                f"algo.max_gen_batches={a.max_gen_batches} generation batches (need algo.prompts_per_batch="
                f"{a.prompts_per_batch} with reward std >= algo.min_reward_std={a.min_reward_std} bps): raise "
                "max_gen_batches or temperature, lower min_reward_std, or set algo.dynamic_sampling=false"
            )
        rewards = torch.cat(kept_rewards)[: len(idx)]  # (B / world, G)
        n_rows = rewards.numel()
        roll = _concat_rollouts(kept_rolls).select(torch.arange(n_rows))
        stats["seconds"] = time.perf_counter() - t0
        return roll, rewards, stats

    def _rl_step(self) -> None:
        a = self.algo
        roll, rewards, stats = self._collect()  # (N,) rows, rewards (B, G)
        adv = group_advantages(rewards, scale=a.adv_scale_bps).flatten()  # (N,)
        mask = roll.completion_mask.float()  # (N, T)
        if a.mask_truncated:
            mask = mask * (~roll.truncated).float().unsqueeze(-1)
        tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
        with torch.no_grad():
            old_logp = torch.cat([token_logprobs(self.model, *(t[r] for t in tensors))[0]
                                  for r in _chunks(len(adv), a.micro_batch_size)])  # (N, T)
        t_train, metrics = time.perf_counter(), []
        groups = torch.randperm(rewards.shape[0], generator=torch.Generator().manual_seed(self.rollout_step))
        for _ in range(a.mu):
            for mb_groups in groups.tensor_split(a.minibatches):
                rows = (mb_groups.unsqueeze(1) * a.group_size + torch.arange(a.group_size)).flatten()
                n_tokens = _global_sum(mask[rows].sum())  # global token count of this mini-batch
                n_seqs = _global_sum(torch.tensor(float(len(rows))))
                for micro in _chunks(len(rows), a.micro_batch_size):
                    r = rows[micro]
                    logp, entropy = token_logprobs(self.model, *(t[r] for t in tensors))
                    loss, m = dapo_policy_loss(
                        logp, old_logp[r], adv[r], mask[r], eps_low=a.eps_low, eps_high=a.eps_high,
                        n_tokens=n_tokens, n_seqs=n_seqs, mode=a.loss_agg.value)
                    if a.kl_beta > 0:
                        ref_logp = self._ref_logprobs(*(t[r] for t in tensors))
                        loss = loss + a.kl_beta * kl_penalty(logp, ref_logp, mask[r], n_tokens=n_tokens)
                    # DDP averages gradients over ranks; the loss is already a global mean, so undo the average
                    self.manual_backward(loss * _world_size())
                    m["entropy"] = (entropy.detach() * mask[r]).sum() / mask[r].sum().clamp(min=1)
                    m["loss"] = loss.detach()
                    metrics.append(m)
                self._optimizer_step()
        n_tok = float(mask.sum() + roll.prompt_mask.sum())
        seconds = stats["seconds"] + time.perf_counter() - t_train
        log = {f"train/{k}": torch.stack([m[k] for m in metrics]).float().mean() for k in metrics[0]}
        log.update({
            "train/reward_mean": float(np.mean(stats["reward"])),
            "train/reward_std": rewards.std().item(),
            "train/kept_reward_mean": rewards.mean().item(),
            "train/valid_rate": float(np.mean(stats["valid"])),
            "train/kept_group_share": stats["kept"] / stats["groups"],
            "train/gen_batches": float(stats["gen_batches"]),
            "train/answer_len": float(np.mean(stats["len"])),
            "train/tokens_per_s": n_tok / seconds,
            "train/lr": self.lr_schedulers().get_last_lr()[0],
        })
        self._log_train(log)

    def _log_train(self, metrics: dict) -> None:
        """Every training metric is logged per step with the same arguments (SFT warm-up and RL steps mix)."""
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=1)

    def _sft_step(self, batch: dict) -> None:
        logp, mask = self._answer_logprobs(batch["prompt"], batch["answer"])
        loss = -(logp * mask).sum() / _global_sum(mask.sum())  # token-mean cross-entropy over the global batch
        self.manual_backward(loss * _world_size())  # DDP averages gradients over ranks; the loss is a global mean
        self._optimizer_step()
        self._log_train({"train/loss": loss.detach(), "train/lr": self.lr_schedulers().get_last_lr()[0]})

    def _dpo_step(self, batch: dict) -> None:
        logps = {}
        for key in ("chosen", "rejected"):
            logp, mask = self._answer_logprobs(batch["prompt"], batch[key])
            ref = self._ref_logprobs(*self._answer_tensors(batch["prompt"], batch[key]))
            logps[key] = ((logp * mask).sum(-1), (ref * mask).sum(-1))  # (B,) sequence log-probs
        loss, m = dpo_loss(logps["chosen"][0], logps["rejected"][0], logps["chosen"][1], logps["rejected"][1],
                           beta=self.algo.dpo_beta)
        self.manual_backward(loss)
        self._optimizer_step()
        self._log_train({"train/loss": loss.detach(), "train/lr": self.lr_schedulers().get_last_lr()[0],
                         **{f"train/{k}": v for k, v in m.items()}})

    def _answer_tensors(self, prompts: list[str], answers: list[str]):
        """Teacher-forcing tensors: prompts left-padded, answers + <|im_end|> right-padded."""
        device = self.device
        prompt_ids, prompt_mask = encode_prompts(self.tokenizer, prompts, device)
        self.tokenizer.padding_side = "right"
        enc = self.tokenizer([a + "<|im_end|>" for a in answers], return_tensors="pt", padding=True,
                             add_special_tokens=False)
        return prompt_ids, prompt_mask, enc["input_ids"].to(device), enc["attention_mask"].to(device)

    def _answer_logprobs(self, prompts, answers):
        tensors = self._answer_tensors(prompts, answers)
        logp, _ = token_logprobs(self.model, *tensors)
        return logp, tensors[3].float()

    # ----------------------------------------------------------------------------------------- validation
    def validation_step(self, batch, batch_idx):
        idx = batch["index"].cpu().numpy()  # global decision indices of the validation split
        roll = sample(self.model, self.tokenizer, self.task.prompts(idx), group_size=1,
                      max_new_tokens=self.algo.max_new_tokens, temperature=1.0, greedy=True)
        scored = self.task.score(idx, roll.texts, 1)
        self._val.append((scored.rewards.ravel(), scored.valid.ravel(), scored.offsets_bps.ravel()))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def on_validation_epoch_end(self) -> None:
        rewards, valid, offsets = (np.concatenate(x) for x in zip(*self._val, strict=True))
        self.log_dict({
            "val/reward_mean": float(rewards.mean()),
            "val/valid_rate": float(valid.mean()),
            "val/offset_std_bps": float(np.nanstd(offsets)) if valid.any() else 0.0,
        }, sync_dist=True)

    # ----------------------------------------------------------------------------------------- checkpoints
    def _trainable_keys(self) -> set[str]:
        return {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the trainable weights only (LoRA adapters, or every weight of a fully fine-tuned model): the frozen
        base (e.g. 4-bit Qwen2.5-7B, ~5 GB) is reloaded from ``model.name``, the reference from the start policy."""
        keys = self._trainable_keys()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keys}
        checkpoint["counters"] = {"train_batches": self.train_batches, "rollout_step": self.rollout_step}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state, params = checkpoint["state_dict"], {f"model.{n}": p for n, p in self.model.named_parameters()}
        missing = sorted(self._trainable_keys() - set(state))
        wrong = sorted(k for k in set(state) & set(params) if state[k].shape != params[k].shape)
        if missing or wrong:
            what = (f"lacks {len(missing)} trainable weights of this model (e.g. {missing[0]})" if missing else
                    f"holds {wrong[0]} with shape {tuple(state[wrong[0]].shape)}, this model "
                    f"{tuple(params[wrong[0]].shape)}")
            raise ValueError(f"the checkpoint {what}: it was written by a run with another model or LoRA configuration")
        self.train_batches = checkpoint["counters"]["train_batches"]
        self.rollout_step = checkpoint["counters"]["rollout_step"]


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere (``nn.Dropout`` incl. LoRA's, and attention dropout), as TRL's ``disable_dropout``:
    an RL ratio compares the log-probs of one function, so on-policy ratios are exactly 1."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0


def optimizer_steps(algo: AlgoConfig, train_steps: int) -> int:
    """Optimiser steps of a run of ``train_steps`` training steps: one per SFT/DPO step, ``mu * minibatches``
    per RL step. Lightning counts these as ``global_step`` under manual optimisation."""
    if algo.name in (AlgoName.SFT, AlgoName.DPO):
        return train_steps
    warmup = min(algo.sft_warmup_steps, train_steps)
    return warmup + (train_steps - warmup) * algo.mu * algo.minibatches


def _chunks(n: int, size: int) -> list[torch.Tensor]:
    return list(torch.arange(n).split(size))


def _concat_rollouts(rolls: list[Rollout]) -> Rollout:
    """Concatenate rollouts, padding prompts on the left and completions on the right."""
    p_len = max(r.prompt_ids.shape[1] for r in rolls)
    t_len = max(r.completion_ids.shape[1] for r in rolls)
    pad = lambda x, n, left, value: torch.nn.functional.pad(x, (n - x.shape[1], 0) if left else (0, n - x.shape[1]),  # noqa: E731
                                                          value=value)
    pad_id = 0
    return Rollout(
        torch.cat([pad(r.prompt_ids, p_len, True, pad_id) for r in rolls]),
        torch.cat([pad(r.prompt_mask, p_len, True, 0) for r in rolls]),
        torch.cat([pad(r.completion_ids, t_len, False, pad_id) for r in rolls]),
        torch.cat([pad(r.completion_mask, t_len, False, 0) for r in rolls]),
        torch.cat([r.truncated for r in rolls]),
        [t for r in rolls for t in r.texts],
    )
