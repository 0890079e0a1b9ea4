"""The 4-bit path of the design card on the CPU: real bitsandbytes nf4 + peft LoRA on tiny checkpoints saved to
disk, through train.py's own pipeline (Hydra config, Lightning Trainer, registry).

- resume: interrupt a 4-bit LoRA run, resume it, and get the uninterrupted run's weights and metrics; the
  checkpoint holds the adapters, optimiser state and counters only (not the quantised base);
- DAPO with the design card's preset (model=qwen2_5_7b: full prose prompt, the real Qwen2.5 vocabulary) pointed
  at a tiny local checkpoint: generation (eval mode) then gradient steps, several times;
- RL log-probs: LoRA dropout is off in RL phases, so on-policy ratios are exactly 1.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from hyperdapo.models.config import LoraSpec, ModelConfig, TinyArch
from hyperdapo.models.policy import load_policy, save_policy
from hyperdapo.pipeline.train_run import run_training
from hyperdapo.rl.config import AlgoConfig, OptimConfig
from hyperdapo.rl.module import PolicyModule
from hyperdapo.rl.rollout import token_logprobs
from tests.pipeline_helpers import fast, run_config

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

QUANT = ["model=qwen2_5_7b", "model.dtype=float32", "model.gradient_checkpointing=false", "model.lora.r=4",
         "model.lora.alpha=8"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny Qwen2 checkpoint with a BPE tokenizer trained on the compact prompts (an SFT run's policy)."""
    tmp = tmp_path_factory.mktemp("base")
    summary = run_training(run_config(fast(tmp, "algo=sft", "trainer.max_steps=2", "run_name=base")), tmp / "run")
    return tmp, summary["policy_dir"]


def test_4bit_lora_run_resumes_exactly_and_checkpoints_hold_the_adapters_only(tiny_checkpoint, tmp_path):
    tmp, base = tiny_checkpoint
    common = fast(tmp_path, *QUANT, f"model.name={base}", "prompt.style=compact", "algo=dapo",
                  "algo.sft_warmup_steps=1", "trainer.max_steps=4", "algo.dynamic_sampling=false")
    full = run_training(run_config([*common, "run_name=full"]), tmp_path / "full")
    cut = run_training(run_config([*common, "run_name=resumed", "trainer.stop_after_steps=2"]), tmp_path / "cut")
    assert cut["steps"] == 2 and "policy_dir" not in cut
    ckpt_file = tmp_path / "cut" / "checkpoints" / "step-000002.ckpt"
    ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])  # no absmax / quant_map / base
    n_adapter = sum(v.numel() for v in ckpt["state_dict"].values())
    # weights + AdamW's two moments in float32, plus counters and Lightning's bookkeeping
    assert ckpt_file.stat().st_size < 3 * 4 * n_adapter + 64_000
    resumed = run_training(run_config([*common, "run_name=resumed", "ckpt_path=last"]), tmp_path / "cut")
    assert resumed["steps"] == 4 and resumed["optimizer_steps"] == full["optimizer_steps"]
    a, b = (torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
            for d in ("full", "cut"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    m_full, m_res = (pd.read_csv(tmp_path / d / "metrics.csv") for d in ("full", "cut"))
    keys = ["step", "train/loss", "train/reward_mean", "val/reward_mean"]
    pd.testing.assert_frame_equal(m_full[keys], m_res[keys])  # history kept, nothing logged twice


def test_dapo_with_the_design_card_preset_runs_on_a_tiny_4bit_qwen_vocab_checkpoint(tmp_path):
    pytest.importorskip("dashscope", reason="the qwen_vocab extra (dashscope ships qwen.tiktoken) is not installed")
    arch = TinyArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    model, tok = load_policy(ModelConfig(name="tiny_qwen_vocab", tiny=arch, tokenizer_cache_dir=str(tmp_path / "tok")))
    assert len(tok) == 151_665  # the real Qwen2.5 vocabulary
    base = save_policy(model, tok, tmp_path / "tiny-qwen")
    cfg = run_config(fast(tmp_path, "model=qwen2_5_7b", f"model.name={base}", "algo=dapo", "algo.sft_warmup_steps=0",
                          "trainer.max_steps=3", "algo.dynamic_sampling=false", "algo.prompts_per_batch=2",
                          "trainer.val_every_n_steps=2", "trainer.val_decisions=2",
                          "model.gradient_checkpointing=false"))
    assert (cfg.prompt.style, cfg.model.quantize, cfg.model.dtype) == ("full", "nf4", "bfloat16")
    summary = run_training(cfg, tmp_path / "run")
    assert summary["steps"] == 3 and summary["optimizer_steps"] == 3 * cfg.algo.mu * cfg.algo.minibatches
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["train/reward_mean"].notna().sum() == 3 and metrics["val/reward_mean"].notna().any()
    assert (tmp_path / "models" / "BTC" / summary["policy_dir"].split("/")[-1] / "adapter_config.json").exists()


def test_rl_disables_dropout_so_on_policy_ratios_are_exactly_one(tiny_checkpoint):
    _, base = tiny_checkpoint
    model, tok = load_policy(ModelConfig(name=base, lora=LoraSpec(r=4, alpha=8, dropout=0.5)))
    ids = tok(["BTC BUY book with flow", "BTC SELL book against flow"], return_tensors="pt", padding=True)
    comp = tok(["LIMIT -5.0 bps<|im_end|>", "LIMIT 0.0 bps<|im_end|>"], return_tensors="pt", padding=True)
    tensors = (ids["input_ids"], ids["attention_mask"], comp["input_ids"], comp["attention_mask"])
    torch.manual_seed(0)
    for name, w in model.named_parameters():
        if "lora_B" in name:  # as after some training (LoRA's B starts at zero, which hides dropout)
            torch.nn.init.normal_(w, std=0.5)
    model.train()
    noisy = [token_logprobs(model, *tensors)[0] for _ in range(2)]
    assert not torch.equal(noisy[0], noisy[1])  # dropout 0.5 in train mode: two forwards differ
    PolicyModule(model, tok, task=None, algo=AlgoConfig(name="dapo"), optim=OptimConfig(), total_optimizer_steps=1,
                 seed=0)
    model.train()
    with torch.no_grad():
        old_logp = token_logprobs(model, *tensors)[0]
    logp = token_logprobs(model, *tensors)[0]
    assert torch.equal(torch.exp(logp - old_logp).detach(), torch.ones_like(logp))


def test_logprobs_through_logits_to_keep_equal_the_full_forward(tiny_checkpoint):
    _, base = tiny_checkpoint
    model, tok = load_policy(ModelConfig(init_from=base))
    ids = tok(["BTC BUY book with flow calm", "BTC SELL"], return_tensors="pt", padding=True)
    comp = tok(["LIMIT -5.0 bps<|im_end|>", "LIMIT 0.0 bps<|im_end|>"], return_tensors="pt", padding=True)
    logp, _ = token_logprobs(model, ids["input_ids"], ids["attention_mask"], comp["input_ids"], comp["attention_mask"])
    x = torch.cat([ids["input_ids"], comp["input_ids"]], 1)
    att = torch.cat([ids["attention_mask"], comp["attention_mask"]], 1)
    logits = model(input_ids=x, attention_mask=att, position_ids=(att.cumsum(-1) - 1).clamp(min=0)).logits
    p = ids["input_ids"].shape[1]
    ref = torch.log_softmax(logits[:, p - 1:-1].float(), -1).gather(-1, comp["input_ids"].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logp, ref)
