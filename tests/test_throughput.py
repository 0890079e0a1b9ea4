"""Issue 15: the RL step's throughput and logs, measured against outside clocks and recorded rollouts; the skipped
old-log-prob forward (bitwise the same update); prompt keys/values computed once per group in sampling and in the
training forward (the same log-probs, loss and gradients as the full forward); bounded validation."""

from __future__ import annotations

import copy
import dataclasses
import json
import time

import lightning as L
import numpy as np
import pytest
import torch

from hyperdapo.models.config import TinyArch
from hyperdapo.models.policy import ModelConfig, load_policy
from hyperdapo.pipeline.train_run import build_task, fit_policy, run_training, tokenizer_corpus
from hyperdapo.rl import module as module_lib
from hyperdapo.rl.config import AlgoConfig, OptimConfig
from hyperdapo.rl.dapo import dapo_policy_loss, overlong_penalty
from hyperdapo.rl.module import PolicyModule
from hyperdapo.rl.rollout import encode_prompts, positions, sample, token_logprobs
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

STEPS, VAL_DECISIONS, GRAD_CLIP = 6, 40, 1e-6
MAX_NEW_TOKENS = 24


class StepClock(L.Callback):
    """Outside wall clock of each training step (batch start -> batch end) and the metrics it logged."""

    def __init__(self):
        self.t0, self.seconds, self.logged = 0.0, [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.seconds.append(time.perf_counter() - self.t0)
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real DAPO fit (tiny model, 8 prompts x 8 answers) that records every rollout and validation generation.
    Scoring is rigged so that even groups have one reward for every answer (zero std) and odd groups 0, 1, 2, 3."""
    tmp = tmp_path_factory.mktemp("throughput")
    overrides = fast(tmp, "algo=dapo", "algo.sft_warmup_steps=0", "algo.dynamic_sampling=false",
                     f"trainer.max_steps={STEPS}", "trainer.val_every_n_steps=3", "trainer.ckpt_every_n_steps=100",
                     f"trainer.val_decisions={VAL_DECISIONS}", f"optim.grad_clip={GRAD_CLIP}", "logger=none",
                     # the benchmark's step (B=8 x G=8, the default tiny model): Lightning's own few ms per batch,
                     # outside the step, stay small next to it
                     "algo.prompts_per_batch=8", "algo.group_size=8", "model.tiny.hidden_size=128",
                     "model.tiny.intermediate_size=384")
    # decisions every 10 s (not 30): the validation split must hold more than VAL_DECISIONS
    cfg = run_config([o for o in overrides if not o.startswith("decisions.every_s=")] + ["decisions.every_s=10"])
    task = build_task(cfg)
    model, tokenizer = load_policy(cfg.model, corpus=tokenizer_corpus(task))
    rolls, val_sizes = [], []

    def rigged(scored):  # (B, G) = the answer's place in its group; every second group all 1.0 (no signal)
        rewards = np.tile(np.arange(scored.rewards.shape[1], dtype=float), (len(scored.rewards), 1))
        rewards[::2] = 1.0
        return rewards

    def recording_sample(*args, **kwargs):
        roll = sample(*args, **kwargs)
        (val_sizes if kwargs.get("greedy") else rolls).append(len(roll.texts))
        if not kwargs.get("greedy"):
            rolls[-1] = roll
        return roll

    task = dataclasses.replace(task, reward_of=rigged)
    clock = StepClock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module_lib, "sample", recording_sample)
        fit_policy(cfg, task, model, tokenizer, tmp / "run", time.perf_counter(), extra_callbacks=[clock])
    return cfg, clock, rolls, val_sizes


def test_tokens_per_s_agrees_with_an_outside_clock(run):
    _, clock, _, _ = run
    totals = np.array([m["train/tokens_total"] for m in clock.logged])
    tokens = np.diff(totals, prepend=0.0)  # this step's tokens, from the cumulative count
    rates = np.array([m["train/tokens_per_s"] for m in clock.logged])
    inside_s = np.array([m["train/step_seconds"] for m in clock.logged])
    np.testing.assert_allclose(tokens / rates, inside_s, rtol=1e-5)  # tokens / step_seconds (logs are float32)
    outside_s = np.array(clock.seconds)
    # steps 2.. (the first one warms up); the logged rate must be the whole step's, within 10 %
    logged = tokens[1:].sum() / inside_s[1:].sum()
    outside = tokens[1:].sum() / outside_s[1:].sum()
    assert logged == pytest.approx(outside, rel=0.10), (inside_s, outside_s)
    assert (inside_s <= outside_s).all()


def test_rl_logs_match_the_recorded_rollouts(run):
    cfg, clock, rolls, _ = run
    a = cfg.algo
    assert len(rolls) == len(clock.logged) == STEPS  # dynamic sampling off: one rollout batch per step
    total = 0
    for roll, m in zip(rolls, clock.logged, strict=True):
        lengths = roll.lengths.float()
        total += int(roll.prompt_mask.sum() + roll.completion_mask.sum())
        overlong = a.overlong_penalty_bps * overlong_penalty(lengths, a.max_new_tokens, a.overlong_cache_len)  # (N,)
        market = torch.arange(a.group_size, dtype=torch.float32).repeat(a.prompts_per_batch, 1)  # (B, G) rigged
        market[::2] = 1.0
        zero_std = ((market + overlong.view_as(market)).std(dim=1) < a.min_reward_std).float().mean().item()
        expected = {
            "train/truncated_share": roll.truncated.float().mean().item(),
            "train/answer_len_min": lengths.min().item(), "train/answer_len": lengths.mean().item(),
            "train/answer_len_max": lengths.max().item(), "train/answer_len_std": lengths.std(correction=0).item(),
            "train/overlong_share": (overlong < 0).float().mean().item(),
            "train/zero_std_group_share": zero_std, "train/kept_group_share": 1.0,  # with dynamic sampling off
            "train/reward_market_mean": market.mean().item(), "train/reward_overlong_mean": overlong.mean().item(),
            "train/reward_mean": market.mean().item() + overlong.mean().item(), "train/tokens_total": float(total),
        }
        for key, value in expected.items():
            assert m[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
        assert m["train/grad_norm"] > 1e3 * GRAD_CLIP  # the norm before clipping, not after
        assert 0 < m["train/step_seconds"] and np.isfinite(m["train/entropy"])
    assert max(m["train/zero_std_group_share"] for m in clock.logged) > 0  # counted although none is dropped
    # not degenerate: some answers end inside the overlong cache (penalised, not truncated), lengths spread
    assert any(m["train/overlong_share"] > m["train/truncated_share"] for m in clock.logged)
    assert min(m["train/answer_len_std"] for m in clock.logged) > 0


def test_tokens_total_continues_after_a_resume(tmp_path):
    base = fast(tmp_path, "algo=dapo", "algo.sft_warmup_steps=1", "trainer.max_steps=3", "algo.dynamic_sampling=false",
                "logger=none")
    full = run_training(run_config([*base, "run_name=full"]), tmp_path / "full")
    cut = run_training(run_config([*base, "trainer.stop_after_steps=2"]), tmp_path / "cut")
    resumed = run_training(run_config([*base, "ckpt_path=last", "run_name=resumed"]), tmp_path / "cut")
    assert 0 < cut["final"]["train/tokens_total"] < resumed["final"]["train/tokens_total"]
    assert resumed["final"]["train/tokens_total"] == full["final"]["train/tokens_total"]


def test_validation_generates_in_batches_of_at_most_32(run):
    _, _, _, val_sizes = run
    assert val_sizes == [32, VAL_DECISIONS - 32] * 2  # two validations (steps 3 and 6) of 40 decisions


# ------------------------------------------------------------------------------ old log-probs, prompt cache
@pytest.fixture(scope="module")
def policy():
    prompts = [f"<|im_start|>user\nBTC {side} book {lean} | imb {i / 10:+.1f}<|im_end|>\n<|im_start|>assistant\n"
               f"{side} LIMIT" for i, (side, lean) in enumerate([("BUY", "against"), ("SELL", "with"),
                                                                 ("BUY", "with flow"), ("SELL", "against flow")])]
    corpus = prompts * 20 + [f"{s} LIMIT {o:.1f} bps" for s in ("BUY", "SELL") for o in range(-20, 21)]
    model, tokenizer = load_policy(ModelConfig(tiny=TinyArch(hidden_size=32, intermediate_size=64, vocab_size=300)),
                                   corpus=corpus)
    return model.train(), tokenizer, prompts


class Recorder:
    """Stands in for the Trainer: backward, and an SGD step that records the gradients it applied."""

    def __init__(self, module: PolicyModule):
        self.module, self.grads = module, []

    def backward(self, loss):
        loss.backward()

    def step(self):
        params = [p for p in self.module.model.parameters() if p.requires_grad]
        self.grads.append([p.grad.clone() for p in params])
        with torch.no_grad():
            for p in params:
                p -= 0.5 * p.grad
                p.grad = None
        return torch.tensor(0.0)


def _update(model, tokenizer, roll, rewards, algo, reuse_on_policy):
    module = PolicyModule(copy.deepcopy(model), tokenizer, None, algo, OptimConfig(), 10, seed=0)
    rec = Recorder(module)
    module.manual_backward, module._optimizer_step = rec.backward, rec.step
    rows_no_grad = []
    real = module_lib.token_logprobs

    def counting(model, *tensors, **kw):
        if not torch.is_grad_enabled():
            rows_no_grad.append(len(tensors[0]))
        return real(model, *tensors, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module_lib, "token_logprobs", counting)
        metrics, _ = module._policy_update(roll, rewards, reuse_on_policy=reuse_on_policy)
    return metrics, rec.grads, list(module.model.parameters()), sum(rows_no_grad)


@pytest.mark.parametrize("mu, micro", [(1, 64), (1, 3), (2, 5)])
def test_skipping_the_on_policy_old_logprob_forward_changes_nothing_bitwise(policy, mu, micro):
    model, tokenizer, prompts = policy
    algo = AlgoConfig(prompts_per_batch=4, group_size=4, mu=mu, minibatches=2, micro_batch_size=micro)
    torch.manual_seed(0)
    roll = sample(model, tokenizer, prompts, group_size=4, max_new_tokens=8, temperature=1.0)
    rewards = torch.randn(4, 4)
    fast_m, fast_g, fast_p, fast_rows = _update(model, tokenizer, roll, rewards, algo, reuse_on_policy=True)
    full_m, full_g, full_p, full_rows = _update(model, tokenizer, roll, rewards, algo, reuse_on_policy=False)
    assert fast_rows == 8 and full_rows == 16  # old log-probs only for the second mini-batch's 2 groups x 4 rows
    assert len(fast_g) == len(full_g) == mu * 2
    for a, b in zip(fast_m, full_m, strict=True):
        assert torch.equal(a["loss"], b["loss"]) and torch.equal(a["ratio"], b["ratio"])
    for step_a, step_b in zip(fast_g, full_g, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(step_a, step_b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(fast_p, full_p, strict=True))
    assert fast_m[0]["ratio"] == 1.0  # on-policy: old log-probs are the log-probs


@pytest.mark.parametrize("greedy, temperature, top_p", [(False, 1.0, 1.0), (False, 0.7, 0.9), (True, 1.0, 1.0)])
def test_sampling_draws_what_generate_draws(policy, greedy, temperature, top_p):
    model, tokenizer, prompts = policy
    ids, mask = encode_prompts(tokenizer, prompts, "cpu")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    n = 1 if greedy else 4
    torch.manual_seed(3)
    model.eval()
    ref = model.generate(input_ids=ids, attention_mask=mask, do_sample=not greedy, num_return_sequences=n,
                         max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                         **({} if greedy else {"temperature": temperature, "top_p": top_p, "top_k": 0}))
    ref = ref[:, ids.shape[1]:]  # (N, T')
    model.train()
    torch.manual_seed(3)
    roll = sample(model, tokenizer, prompts, group_size=4, max_new_tokens=MAX_NEW_TOKENS, temperature=temperature,
                  top_p=top_p, greedy=greedy)
    assert model.training  # restored
    assert torch.equal(ref.masked_fill(roll.completion_mask == 0, tokenizer.pad_token_id), roll.completion_ids)
    assert greedy or 0 < roll.truncated.sum() < len(roll.texts)  # rows that ended (then pads) beside rows at the cap


def test_entropy_is_a_metric_outside_autograd(policy):
    model, tokenizer, prompts = policy
    roll = sample(model, tokenizer, prompts, group_size=2, max_new_tokens=4, temperature=1.0)
    tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
    logp, entropy = token_logprobs(model, *tensors)
    assert logp.requires_grad and not entropy.requires_grad and (entropy >= 0).all()
    logp_only, none = token_logprobs(model, *tensors, with_entropy=False)
    assert none is None and torch.equal(logp_only, logp)


# ------------------------------------------------------------------------------ shared-prompt training forward
def full_forward_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
    """The oracle: one forward of the whole (N, P+T) sequences, log-probs (N, T) of the completion tokens."""
    ids, att = torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1)
    logits = model(input_ids=ids, attention_mask=att, position_ids=positions(att)).logits  # (N, P+T, V)
    logits = logits[:, prompt_ids.shape[1] - 1:-1].float()  # (N, T, V): the columns that predict the completion
    return torch.log_softmax(logits, -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def embedded_shapes(model, fn) -> list[tuple[int, int]]:
    """The (rows, columns) of every token batch ``fn`` embeds: which forwards it ran."""
    shapes = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    try:
        fn()
    finally:
        hook.remove()
    return shapes


def dapo_loss_and_grads(model, logp_fn, tensors, old_logp, adv):
    """The DAPO loss of ``logp_fn``'s log-probs and its gradient on every weight."""
    mask = tensors[3].float()
    logp = logp_fn(model, *tensors)
    loss, _ = dapo_policy_loss(logp, old_logp, adv, mask, eps_low=0.2, eps_high=0.28, n_tokens=mask.sum(),
                               n_seqs=float(len(adv)))
    return logp, loss, torch.autograd.grad(loss, list(model.parameters()))


def test_shared_prompt_forward_equals_the_full_forward(policy):
    model, tokenizer, prompts = policy
    torch.manual_seed(5)
    roll = sample(model, tokenizer, prompts, group_size=4, max_new_tokens=8, temperature=1.0)  # N = 4 x 4
    tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
    n, p_len, t_len = len(roll.texts), roll.prompt_ids.shape[1], roll.completion_ids.shape[1]
    assert len(set(roll.prompt_mask.sum(-1).tolist())) > 1  # left padding: prompts of different lengths
    assert embedded_shapes(model, lambda: token_logprobs(model, *tensors)) == [(4, p_len), (n, t_len)]
    torch.manual_seed(6)
    with torch.no_grad():  # a sampling policy 0.3 nats away, so that both clip bounds act
        old_logp = full_forward_logprobs(model, *tensors) + 0.3 * torch.randn(n, t_len)
    adv = torch.randn(n)
    logp, loss, grads = dapo_loss_and_grads(model, lambda *a: token_logprobs(*a)[0], tensors, old_logp, adv)
    ref_logp, ref_loss, ref_grads = dapo_loss_and_grads(model, full_forward_logprobs, tensors, old_logp, adv)
    mask = roll.completion_mask.bool()
    # float32 on the CPU, the two forwards differ by rounding only; measured: log-probs 4.8e-7, loss 3e-8, gradients
    # 2.8e-8 (6e-7 of the largest). Every weight's gradient agrees, so the prompt's forward is in the graph
    torch.testing.assert_close(logp[mask], ref_logp[mask], rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=1e-6)
    for g, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_falls_back_to_the_full_forward(policy):
    model, tokenizer, prompts = policy
    model = copy.deepcopy(model)
    model.gradient_checkpointing_enable()  # checkpointed layers drop past_key_values: sharing would be wrong
    model.train()
    torch.manual_seed(5)
    roll = sample(model, tokenizer, prompts, group_size=4, max_new_tokens=8, temperature=1.0)
    tensors = (roll.prompt_ids, roll.prompt_mask, roll.completion_ids, roll.completion_mask)
    shapes = embedded_shapes(model, lambda: token_logprobs(model, *tensors))
    assert shapes == [(len(roll.texts), roll.prompt_ids.shape[1] + roll.completion_ids.shape[1])]
    logp, _ = token_logprobs(model, *tensors)
    mask = roll.completion_mask.bool()
    torch.testing.assert_close(logp[mask], full_forward_logprobs(model, *tensors)[mask], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ W&B sample table (issue 12 item 6)
def test_wandb_offline_training_logs_a_table_of_sample_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = run_config(fast(tmp_path, "algo=dapo", "algo.sft_warmup_steps=0", "algo.dynamic_sampling=false",
                          "algo.overlong_shaping=false", "trainer.max_steps=3", "trainer.val_every_n_steps=100",
                          "algo.prompts_per_batch=4", "algo.group_size=4", "logger=wandb",
                          "logger.samples_every_n_steps=2"))
    task = build_task(cfg)
    model, tokenizer = load_policy(cfg.model, corpus=tokenizer_corpus(task))
    rolls = []

    def rigged(scored):  # rewards (B, G) = 10 * group + answer, in bps
        b, g = scored.rewards.shape
        return 10.0 * np.arange(b)[:, None] + np.arange(g)

    def recording_sample(*args, **kwargs):
        rolls.append(sample(*args, **kwargs))
        return rolls[-1]

    task = dataclasses.replace(task, reward_of=rigged)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module_lib, "sample", recording_sample)
        fit_policy(cfg, task, model, tokenizer, tmp_path / "run", time.perf_counter())
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    tables = sorted((run_dir / "files" / "media" / "table" / "train").glob("samples_*.table.json"),
                    key=lambda p: int(p.name.split("_")[1]))
    assert len(tables) == 2  # training steps 0 and 2 of 3
    for step, path in zip((0, 2), tables, strict=True):
        logged = json.loads(path.read_text())
        assert logged["columns"] == ["step", "group", "prompt", "answer", "reward_bps"]
        roll = rolls[step]
        n = min(module_lib.SAMPLE_ROWS, len(roll.texts))  # 16: all 4 groups x 4 answers
        assert [r[0] for r in logged["data"]] == [step] * n
        assert [r[1] for r in logged["data"]] == [row // 4 for row in range(n)]
        assert [r[3] for r in logged["data"]] == roll.texts[:n]
        assert [r[4] for r in logged["data"]] == [10.0 * (row // 4) + row % 4 for row in range(n)]
        for row, r in enumerate(logged["data"]):
            prompt = tokenizer.decode(roll.prompt_ids[row][roll.prompt_mask[row].bool()], skip_special_tokens=True)
            assert len(r[2]) <= module_lib.PROMPT_TAIL_CHARS + 3 and prompt.endswith(r[2].removeprefix("..."))
