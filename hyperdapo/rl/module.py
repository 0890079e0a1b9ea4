"""The LightningModule: a thin loop that samples, scores and calls the pure losses of :mod:`hyperdapo.rl`.

One training step = one optimisation batch:
- ``dapo`` / ``grpo``: sample G answers for each of B prompts (dynamic sampling keeps drawing prompt batches
  until B informative groups are kept), score them in the fill simulator, compute group advantages, then
  ``mu`` passes x ``minibatches`` optimiser steps of the clipped surrogate. Gradients are accumulated over
  micro-batches with the global token count, so micro-batching never changes the loss.
- ``sft``: cross-entropy on the chosen answers; ``dpo``: the DPO loss on (chosen, rejected) pairs.
Validation: greedy answers on the validation prompts (in the val loader's batches of 32), scored by the same
simulator and reward.
Metrics: ``train/...`` and ``val/...`` (reward in bps); see :meth:`PolicyModule._rl_metrics` for the RL step's. With the
W&B logger, a table of sample answers every ``samples_every_n_steps`` RL steps (:meth:`PolicyModule._log_samples`).
"""

from __future__ import annotations

import copy
import math
import time

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import WandbLogger

from hyperdapo.execution.config import SequentialConfig
from hyperdapo.rl.config import AlgoConfig, AlgoName, OnStarvation, OptimConfig
from hyperdapo.rl.dapo import (
    dapo_policy_loss,
    dpo_loss,
    dynamic_sampling_mask,
    entropy_bonus,
    group_advantages,
    kl_penalty,
    overlong_penalty,
    sft_loss,
)
from hyperdapo.rl.lr_schedule import warmup_cosine
from hyperdapo.rl.multiturn import run_trajectories
from hyperdapo.rl.rollout import Rollout, completion_logits, encode_prompts, sample, token_logprobs

# the W&B sample table: the step's first 16 answers (prompt-major: whole groups, two at G = 8, so a group's reward
# spread shows), each prompt shortened to its last 160 characters (its end holds the decision: side, book, flow)
SAMPLE_ROWS, PROMPT_TAIL_CHARS = 16, 160


class StarvationError(ValueError):
    """Dynamic sampling found too few informative groups: the settings do not fit the data (a user error: the entry
    points print it as ``error: ...`` and exit 2)."""


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
    ``total_optimizer_steps`` is the length of the learning-rate schedule (see :func:`optimizer_steps`);
    ``sequential``: train and validate on the sequential task, one answer per step of a parent order (a group = G
    trajectories of one parent, one advantage per trajectory; :mod:`hyperdapo.rl.multiturn`); None: one-shot;
    ``samples_every_n_steps``: RL steps between two W&B tables of sample answers (0: none; W&B logger only).
    """

    def __init__(self, model, tokenizer, task, algo: AlgoConfig, optim: OptimConfig, total_optimizer_steps: int,
                 seed: int, offline=None, samples_every_n_steps: int = 0, sequential: SequentialConfig | None = None):
        super().__init__()
        self.sequential = sequential  # multi-turn: G trajectories per parent order (hyperdapo.rl.multiturn)
        self.samples_every_n_steps = samples_every_n_steps
        self.model, self.tokenizer, self.task, self.offline = model, tokenizer, task, offline
        self.algo, self.optim, self.total_optimizer_steps, self.seed = algo, optim, total_optimizer_steps, seed
        self.automatic_optimization = False
        # counters saved in checkpoints, so that a resumed run draws exactly the batches an uninterrupted one would
        self.train_batches = 0  # training steps done (one SFT/DPO batch or one RL rollout batch each)
        self.rollout_step = 0  # RL generation batches drawn (dynamic sampling may draw several per step)
        self.tokens_total = 0  # prompt + answer tokens of the RL steps so far, all ranks (train/tokens_total)
        self._step_t0 = 0.0  # perf_counter at the start of the current training step
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

    def _optimizer_step(self) -> torch.Tensor:
        """Clip, step, zero, schedule; returns the gradient norm before clipping (``optim.grad_clip`` <= 0: no clip).
        Under DDP every rank holds the all-reduced gradients, so every rank clips by the same norm (as Lightning's
        ``clip_gradients``, which does not return the norm)."""
        opt, sched = self.optimizers(), self.lr_schedulers()
        params = [p for group in opt.param_groups for p in group["params"]]
        max_norm = self.optim.grad_clip if self.optim.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        return norm.detach()

    def _ref_logprobs(self, *tensors) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return token_logprobs(self.ref_model, *tensors, with_entropy=False)[0]
            with self.model.disable_adapter():
                return token_logprobs(self.model, *tensors, with_entropy=False)[0]

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch, batch_idx):
        self._step_t0 = time.perf_counter()  # step_seconds and tokens_per_s time the whole step (see _rl_metrics)
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
        """Dynamic sampling: generate groups until B informative ones are kept (DAPO Sec. 3.2). ``stats`` holds
        every generated answer's (not only the kept ones') reward parts, length, validity and truncation."""
        a = self.algo
        kept_rolls, kept_rewards = [], []
        stats = ({k: [] for k in ("market", "overlong", "valid", "lengths", "truncated", "zero_std", "distinct",
                                  "turns")}
                 | {"kept": 0, "temperature": self.rollout_temperature()})
        for n_gen in range(1, a.max_gen_batches + 1):
            rank, world = self.global_rank, _world_size()
            torch.manual_seed((self.seed * 1_000_003 + self.rollout_step) * 64 + rank)  # resumable sampling
            idx = self.task.sample_train_prompts(self.rollout_step, a.prompts_per_batch, self.seed)[rank::world]
            self.rollout_step += 1
            roll, market, valid, _ = self._generate(idx, stats["temperature"])
            market = torch.as_tensor(market, dtype=torch.float32)  # (B, G) bps
            overlong = torch.zeros_like(market)  # (B, G) bps: soft overlong punishment, in [-1, 0] x its scale
            if a.overlong_shaping:
                pen = overlong_penalty(roll.lengths, a.max_new_tokens, a.overlong_cache_len).cpu().float()  # (N,)
                per_traj = torch.zeros(market.numel()).index_add_(0, roll.traj, pen) / torch.bincount(
                    roll.traj, minlength=market.numel()).clamp(min=1)  # a trajectory's mean over its turns
                overlong = a.overlong_penalty_bps * per_traj.view_as(market)
            rewards = market + overlong
            informative = dynamic_sampling_mask(rewards, a.min_reward_std)  # (B,)
            keep = informative if a.dynamic_sampling else torch.ones_like(informative)
            for key, value in (("market", market), ("overlong", overlong), ("valid", torch.as_tensor(valid)),
                               ("lengths", roll.lengths.cpu()), ("truncated", roll.truncated.cpu()),
                               ("zero_std", ~informative), ("turns", torch.bincount(roll.traj).float()),
                               ("distinct", distinct_per_group(roll.trajectory_texts(), a.group_size))):
                stats[key].append(value.flatten().float())
            stats["kept"] += int(keep.sum())
            rows = torch.arange(len(idx) * a.group_size).view(len(idx), a.group_size)[keep].flatten()
            kept_rolls.append(roll.select_trajectories(rows))
            kept_rewards.append(rewards[keep])
            stats["gen_batches"] = n_gen
            if sum(len(r) for r in kept_rewards) >= len(idx):  # this rank's share of B
                break
        else:
            n_kept, n_seen = sum(len(r) for r in kept_rewards), len(stats["zero_std"]) * len(idx)
            if a.on_starvation is OnStarvation.ERROR:
                raise StarvationError(
                    f"dynamic sampling kept {n_kept} of {n_seen} groups after algo.max_gen_batches={a.max_gen_batches} "
                    f"generation batches (need algo.prompts_per_batch={a.prompts_per_batch} with reward std >= "
                    f"algo.min_reward_std={a.min_reward_std} bps): raise algo.max_gen_batches or algo.temperature, add "
                    "algo.entropy_coef, lower algo.min_reward_std, set algo.on_starvation=continue (train on the "
                    "groups kept) or algo.dynamic_sampling=false")
        rewards = torch.cat(kept_rewards)[: len(idx)]  # (B / world, G), fewer rows when starved
        roll = Rollout.cat(kept_rolls).select_trajectories(torch.arange(rewards.numel()))
        return roll, rewards, {k: torch.cat(v) if isinstance(v, list) else v for k, v in stats.items()}

    def _generate(self, idx: np.ndarray, temperature: float, greedy: bool = False
                  ) -> tuple[Rollout, np.ndarray, np.ndarray, np.ndarray]:
        """G answers (one if ``greedy``) per decision of ``idx`` (B,): the rollout, and (B, G) the reward (bps), the
        validity and the offset answered (bps; sequential: the first REPLACE's; NaN if none or invalid). One-shot: one
        answer each, scored by the task. Sequential: one trajectory each, an answer per step."""
        a = self.algo
        if self.sequential is not None:
            t = run_trajectories(self.model, self.tokenizer, self.task, idx, self.sequential, group_size=a.group_size,
                                 max_new_tokens=a.max_new_tokens, temperature=temperature, top_p=a.top_p, greedy=greedy)
            return t.roll, t.rewards, t.valid, t.first_offset_bps
        roll = sample(self.model, self.tokenizer, self.task.prompts(idx), group_size=a.group_size,
                      max_new_tokens=a.max_new_tokens, temperature=temperature, top_p=a.top_p, greedy=greedy)
        scored = self.task.score(idx, roll.texts, 1 if greedy else a.group_size)
        return roll, scored.rewards, scored.valid, scored.offsets_bps

    def rollout_temperature(self) -> float:
        """The sampling temperature of this RL step: ``algo.temperature``, or linear from it to
        ``algo.temperature_end`` over the run's RL steps."""
        a = self.algo
        if a.temperature_end is None:
            return a.temperature
        rl_steps = max((self.total_optimizer_steps - a.sft_warmup_steps) // (a.mu * a.minibatches), 1)
        frac = min(max(self.train_batches - a.sft_warmup_steps, 0) / max(rl_steps - 1, 1), 1.0)
        return a.temperature + frac * (a.temperature_end - a.temperature)

    def _rl_step(self) -> None:
        roll, rewards, stats = self._collect()  # (N,) rows, rewards (B, G)
        if rewards.numel() == 0:  # starved with algo.on_starvation=continue and nothing kept: no update
            self._log_train(self._rl_metrics(roll, rewards, stats, [], []))
            return
        metrics, grad_norms = self._policy_update(roll, rewards)
        self._log_train(self._rl_metrics(roll, rewards, stats, metrics, grad_norms))
        if self.samples_every_n_steps and self.train_batches % self.samples_every_n_steps == 0:
            self._log_samples(roll, rewards)  # after the step's clock stops: not part of step_seconds

    def _policy_update(self, roll: Rollout, rewards: torch.Tensor,
                       reuse_on_policy: bool = True) -> tuple[list[dict], list[torch.Tensor]]:
        """``mu`` passes x ``minibatches`` optimiser steps of the clipped surrogate on one rollout batch; returns the
        micro-batches' metrics and the optimiser steps' pre-clip gradient norms.

        The first mini-batch of the first pass is on-policy (no update yet), so its old log-probs are its own
        log-probs, detached (as TRL): with ``reuse_on_policy`` only the rows of the other mini-batches get a no-grad
        old-log-prob forward, before the first update. ``reuse_on_policy=False`` computes them for every row (the
        same loss and gradients, bitwise: ``tests/test_throughput.py``)."""
        a = self.algo
        adv = group_advantages(rewards, scale=a.adv_scale_bps).flatten()[roll.traj]  # (N,): a trajectory's, every turn
        mask = roll.completion_mask.float()  # (N, T)
        if a.mask_truncated:
            mask = mask * (~roll.truncated).float().unsqueeze(-1)
        tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
        groups = torch.randperm(rewards.shape[0], generator=torch.Generator().manual_seed(self.rollout_step))
        minibatches = [roll.rows_of((g.unsqueeze(1) * a.group_size + torch.arange(a.group_size)).flatten())
                       for g in groups.tensor_split(a.minibatches) if len(g)]  # rows of whole groups; fewer if starved
        old_logp = self._old_logprobs(tensors, minibatches[1:] if reuse_on_policy else minibatches)  # (N, T)
        metrics, grad_norms = [], []
        for n_pass in range(a.mu):
            for k, rows in enumerate(minibatches):
                on_policy = reuse_on_policy and n_pass == 0 and k == 0
                metrics += self._minibatch_backward(tensors, rows, old_logp, adv, mask, on_policy)
                grad_norms.append(self._optimizer_step())
        return metrics, grad_norms

    @torch.no_grad()
    def _old_logprobs(self, tensors: tuple, minibatches: list[torch.Tensor]) -> torch.Tensor:
        """Log-probs (N, T) of the sampling policy on the rows of ``minibatches``, in the micro-batches of the
        update (NaN on the other rows, which :meth:`_minibatch_backward` fills on-policy)."""
        old_logp = torch.full(tensors[2].shape, float("nan"), device=tensors[2].device)
        for rows in minibatches:
            for micro in _chunks(len(rows), self.algo.micro_batch_size):
                r = rows[micro]
                old_logp[r] = token_logprobs(self.model, *(t[r] for t in tensors), with_entropy=False)[0]
        return old_logp

    def _minibatch_backward(self, tensors: tuple, rows: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                            mask: torch.Tensor, on_policy: bool) -> list[dict]:
        """Accumulate the gradient of one mini-batch (``rows``) over micro-batches; ``on_policy`` writes the
        detached log-probs into ``old_logp`` first (ratio exactly 1)."""
        a = self.algo
        n_tokens = _global_sum(mask[rows].sum())  # global token count of this mini-batch
        n_seqs = _global_sum(torch.tensor(float(len(rows))))
        metrics = []
        for micro in _chunks(len(rows), a.micro_batch_size):
            r = rows[micro]
            logp, entropy = token_logprobs(self.model, *(t[r] for t in tensors), entropy_grad=a.entropy_coef > 0)
            if on_policy:
                old_logp[r] = logp.detach()
            loss, m = dapo_policy_loss(logp, old_logp[r], adv[r], mask[r], eps_low=a.eps_low, eps_high=a.eps_high,
                                       n_tokens=n_tokens, n_seqs=n_seqs, mode=a.loss_agg.value)
            if a.entropy_coef > 0:
                loss = loss - a.entropy_coef * entropy_bonus(entropy, mask[r], n_tokens=n_tokens)
                entropy = entropy.detach()
            if a.kl_beta > 0:
                ref_logp = self._ref_logprobs(*(t[r] for t in tensors))
                loss = loss + a.kl_beta * kl_penalty(logp, ref_logp, mask[r], n_tokens=n_tokens)
            # DDP averages gradients over ranks; the loss is already a global mean, so undo the average
            self.manual_backward(loss * _world_size())
            m["entropy"] = (entropy * mask[r]).sum() / mask[r].sum().clamp(min=1)
            m["loss"] = loss.detach()
            metrics.append(m)
        return metrics

    def _rl_metrics(self, roll: Rollout, rewards: torch.Tensor, stats: dict, metrics: list[dict],
                    grad_norms: list[torch.Tensor]) -> dict:
        """The RL step's ``train/...`` metrics. Loss terms: means over micro-batches; ``grad_norm``: mean pre-clip
        norm of the optimiser steps. Answers (every generated one, also groups dynamic sampling dropped):
        ``reward_mean`` = ``reward_market_mean`` (simulator reward, invalid answers' penalty included) +
        ``reward_overlong_mean`` (overlong shaping), ``valid_rate``, ``truncated_share`` (no <|im_end|> within
        max_new_tokens), ``overlong_share`` (share the overlong shaping penalises: overlong reward < 0),
        ``answer_len`` (mean tokens incl. <|im_end|>), ``answer_len_std`` (their population std, tokens) and
        ``answer_len_min``/``_max``. Groups: ``zero_std_group_share`` (reward std < ``algo.min_reward_std`` bps: no
        signal; measured whether or not dynamic sampling drops them), ``kept_group_share``, ``gen_batches``.
        ``kept_groups``: the groups trained on (B unless starved with ``algo.on_starvation=continue``);
        ``distinct_answers``: distinct answer texts per generated group (mean, 1 to G); ``entropy``: token-mean entropy
        (nats) of the trained answers; ``temperature``: the rollout temperature (``algo.temperature_end`` schedule).
        Throughput: ``tokens_total`` (prompt + answer tokens of the sequences trained on, all ranks, cumulative over
        the run's RL steps, resumed from checkpoints), ``step_seconds`` (wall clock from the start of
        ``training_step`` to this call: generation, scoring, every forward and backward, the optimiser steps) and
        ``tokens_per_s`` (this step's tokens / ``step_seconds``)."""
        n_tok = int(_global_sum(roll.completion_mask.sum() + roll.prompt_mask.sum()))
        self.tokens_total += n_tok
        log = {f"train/{k}": torch.stack([m[k] for m in metrics]).float().mean() for k in (metrics or [{}])[0]}
        if grad_norms:
            log["train/grad_norm"] = torch.stack(grad_norms).float().mean()
        lengths = stats["lengths"]
        log.update({
            "train/kept_groups": float(rewards.shape[0]),
            "train/distinct_answers": stats["distinct"].mean().item(),
            "train/temperature": stats["temperature"],
            "train/reward_mean": (stats["market"] + stats["overlong"]).mean().item(),
            "train/reward_market_mean": stats["market"].mean().item(),
            "train/reward_overlong_mean": stats["overlong"].mean().item(),
            "train/reward_std": rewards.std().item() if rewards.numel() > 1 else math.nan,
            "train/kept_reward_mean": rewards.mean().item() if rewards.numel() else math.nan,
            "train/valid_rate": stats["valid"].mean().item(),
            "train/truncated_share": stats["truncated"].mean().item(),
            "train/overlong_share": (stats["overlong"] < 0).float().mean().item(),
            "train/answer_len": lengths.mean().item(),
            "train/answer_len_std": lengths.std(correction=0).item(),
            "train/answer_len_min": lengths.min().item(),
            "train/answer_len_max": lengths.max().item(),
            "train/zero_std_group_share": stats["zero_std"].mean().item(),
            "train/kept_group_share": stats["kept"] / len(stats["zero_std"]),
            "train/gen_batches": float(stats["gen_batches"]),
            "train/tokens_total": float(self.tokens_total),
            "train/lr": self.lr_schedulers().get_last_lr()[0],
        })
        if self.sequential is not None:
            log["train/turns_per_trajectory"] = stats["turns"].mean().item()
        seconds = time.perf_counter() - self._step_t0
        log.update({"train/step_seconds": seconds, "train/tokens_per_s": n_tok / seconds})
        return log

    def _log_samples(self, roll: Rollout, rewards: torch.Tensor) -> None:
        """The W&B table ``train/samples`` of this step's first ``SAMPLE_ROWS`` answers (this rank's, rank 0 logs):
        step (training step), group (prompt of the batch), prompt (its last ``PROMPT_TAIL_CHARS`` characters, special
        tokens dropped), answer (decoded, as scored), reward_bps (market + overlong, the reward trained on; sequential:
        its trajectory's)."""
        loggers = [lg for lg in self.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        n = min(SAMPLE_ROWS, len(roll.texts))
        prompts = [self.tokenizer.decode(ids[mask.bool()], skip_special_tokens=True)
                   for ids, mask in zip(roll.prompt_ids[:n], roll.prompt_mask[:n], strict=True)]
        data = [[self.train_batches, traj // self.algo.group_size,
                 prompt if len(prompt) <= PROMPT_TAIL_CHARS else "..." + prompt[-PROMPT_TAIL_CHARS:],
                 roll.texts[row], rewards.flatten()[traj].item()]
                for row, (prompt, traj) in enumerate(zip(prompts, roll.traj[:n].tolist(), strict=True))]
        for lg in loggers:
            lg.log_table("train/samples", columns=["step", "group", "prompt", "answer", "reward_bps"], data=data,
                         step=self.global_step)

    def _log_train(self, metrics: dict) -> None:
        """Every training metric is logged per step with the same arguments (SFT warm-up and RL steps mix)."""
        self.log_dict(metrics, on_step=True, on_epoch=False, prog_bar=False, batch_size=1)

    def _sft_step(self, batch: dict) -> None:
        tensors = self._answer_tensors(batch["prompt"], batch["answer"])
        logp_all = torch.log_softmax(completion_logits(self.model, *tensors).float(), dim=-1)  # (N, T, V)
        mask = tensors[3].float()
        loss = sft_loss(logp_all, tensors[2], mask, n_tokens=_global_sum(mask.sum()),  # token mean, global batch
                        label_smoothing=self.algo.label_smoothing)
        self.manual_backward(loss * _world_size())  # DDP averages gradients over ranks; the loss is a global mean
        grad_norm = self._optimizer_step()
        self._log_train({"train/loss": loss.detach(), "train/grad_norm": grad_norm,
                         "train/lr": self.lr_schedulers().get_last_lr()[0]})

    def _dpo_step(self, batch: dict) -> None:
        logps = {}
        for key in ("chosen", "rejected"):
            logp, mask = self._answer_logprobs(batch["prompt"], batch[key])
            ref = self._ref_logprobs(*self._answer_tensors(batch["prompt"], batch[key]))
            logps[key] = ((logp * mask).sum(-1), (ref * mask).sum(-1))  # (B,) sequence log-probs
        loss, m = dpo_loss(logps["chosen"][0], logps["rejected"][0], logps["chosen"][1], logps["rejected"][1],
                           beta=self.algo.dpo_beta)
        self.manual_backward(loss)
        grad_norm = self._optimizer_step()
        self._log_train({"train/loss": loss.detach(), "train/grad_norm": grad_norm,
                         "train/lr": self.lr_schedulers().get_last_lr()[0],
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
        """Greedy answers for one validation batch: the val loader yields ``val_batch_size`` (32) decisions at a
        time (:class:`hyperdapo.rl.data.ExecutionDataModule`), so generation memory is bounded by 32 rows x
        (prompt + ``max_new_tokens``) whatever ``trainer.val_decisions`` is."""
        idx = batch["index"].cpu().numpy()  # global decision indices of the validation split
        _, rewards, valid, offsets = self._generate(idx, 1.0, greedy=True)
        self._val.append((rewards.ravel(), valid.ravel(), offsets.ravel()))

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
        checkpoint["counters"] = {"train_batches": self.train_batches, "rollout_step": self.rollout_step,
                                  "tokens_total": self.tokens_total}

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
        self.tokens_total = checkpoint["counters"].get("tokens_total", 0)  # checkpoints before it was counted: 0


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


def distinct_per_group(texts: list[str], group_size: int) -> torch.Tensor:
    """(B,) the number of distinct answer texts in each group of ``group_size`` consecutive answers."""
    return torch.tensor([len(set(texts[g:g + group_size])) for g in range(0, len(texts), group_size)])


def _chunks(n: int, size: int) -> list[torch.Tensor]:
    return list(torch.arange(n).split(size))
