"""Policy models: offline tokenizers, the tiny Qwen2, and the real 4-bit nf4 + LoRA path on a tiny checkpoint."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from hyperdapo.models.config import LoraSpec, ModelConfig, TinyArch
from hyperdapo.models.policy import load_policy, save_policy, trainable_parameters
from hyperdapo.models.tokenizers import qwen_vocab_tokenizer

CORPUS = ["BTC mid $117,000.5, spread 0.9 bps, imbalance +0.20 (bid-heavy).", "BUY LIMIT -5.0 bps",
          "SELL LIMIT -15.0 bps", "ETH mid $3,700.25, 5-min volatility 3.1 bps (calm)."] * 20
ARCH = TinyArch(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128, vocab_size=400)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    model, tok = load_policy(ModelConfig(tiny=ARCH), corpus=CORPUS)
    return save_policy(model, tok, tmp_path_factory.mktemp("tiny")), model, tok


def test_tiny_tokenizer_chat_template_and_round_trip(tiny_dir):
    path, model, tok = tiny_dir
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(tok("BUY LIMIT -12.5 bps")["input_ids"]) == "BUY LIMIT -12.5 bps"
    assert tok.tokenize("-12.5")[-3:] == ["2", ".", "5"]  # digits one by one
    loaded, tok2 = load_policy(ModelConfig(tiny=ARCH, init_from=str(path)))
    ids = tok("BUY LIMIT -5.0 bps", return_tensors="pt")["input_ids"]
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert tok2.get_vocab() == tok.get_vocab()


def test_generate_with_a_seed_is_reproducible(tiny_dir):
    _, model, tok = tiny_dir
    prompt = tok.apply_chat_template([{"role": "user", "content": "BTC"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        outs.append(model.generate(**prompt, do_sample=True, max_new_tokens=6, pad_token_id=tok.pad_token_id))
    assert torch.equal(outs[0], outs[1]) and outs[0].shape[1] > prompt["input_ids"].shape[1]


@pytest.mark.slow
def test_qwen_vocab_from_the_shipped_tiktoken_file(tmp_path):
    pytest.importorskip("dashscope", reason="the qwen_vocab extra (dashscope ships qwen.tiktoken) is not installed")
    tok = qwen_vocab_tokenizer(tmp_path)
    assert tok("Hello, world!")["input_ids"] == [9707, 11, 1879, 0]
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [151643, 151644, 151645]
    assert len(tok) == 151_665
    assert (tmp_path / "qwen2_5_tokenizer.json").exists()  # cached for the next run


def test_4bit_nf4_lora_path_on_a_tiny_checkpoint(tiny_dir):
    path, _, _ = tiny_dir
    lora = LoraSpec(r=8, alpha=16, dropout=0.0)
    model, tok = load_policy(ModelConfig(name=str(path), quantize="nf4", lora=lora, dtype="float32", tiny=ARCH))
    base = model.base_model.model.model.layers[0]
    for proj in (base.self_attn.q_proj.base_layer, base.self_attn.k_proj, base.mlp.up_proj):
        assert isinstance(proj, bnb.nn.Linear4bit)
        assert not any(p.requires_grad for p in proj.parameters())
    # LoRA parameter count by hand: q_proj 64 -> 64, v_proj 64 -> 2 kv heads x 16 = 32; r = 8; 2 layers
    expected = 2 * ((8 * 64 + 64 * 8) + (8 * 64 + 32 * 8))
    n_train, n_total, share = trainable_parameters(model)
    assert n_train == expected and share == pytest.approx(expected / n_total)
    ids = tok(["BUY LIMIT -5.0 bps", "SELL LIMIT -15.0 bps"], return_tensors="pt", padding=True)["input_ids"]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(6):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        lora_b = base.self_attn.q_proj.lora_B["default"].weight
        assert lora_b.grad is not None and lora_b.grad.abs().sum() > 0
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("kw", "key"), [({"quantize": "int3"}, "model.quantize"),
                                         ({"quantize": "nf4"}, "model.lora"),
                                         ({"tiny": TinyArch(hidden_size=65)}, "model.tiny")])
def test_invalid_model_config_names_the_key(kw, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ModelConfig(**kw)
