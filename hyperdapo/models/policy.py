"""Policy models, chosen by ``model=`` (``conf/model/``), all loaded by :func:`load_policy`:

- ``tiny``: a Qwen2-architecture causal LM built from :class:`TinyArch` with a BPE tokenizer trained on the
  prompt corpus (CPU default; full fine-tuning unless ``lora`` is set).
- ``tiny_qwen_vocab``: the same model with the real Qwen2.5 vocabulary (offline, from ``qwen.tiktoken``).
- ``qwen2_5_7b`` / ``qwen2_5_0_5b`` (or any local checkpoint path): ``from_pretrained`` with
  BitsAndBytesConfig 4-bit nf4 + double quantisation, ``prepare_model_for_kbit_training``, LoRA on
  q_proj / v_proj, gradient checkpointing. Tests run this exact path on a tiny checkpoint saved to disk.

A run saves its policy with :func:`save_policy` (``save_pretrained`` of the model, or only the LoRA
adapters, plus the tokenizer); ``init_from`` starts a run from such a directory (e.g. DAPO from SFT).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from hyperdapo.atomic import atomic_dir
from hyperdapo.models.config import DTYPE_NAMES, TINY, TINY_QWEN_VOCAB, ModelConfig, TinyArch
from hyperdapo.models.tokenizers import qwen_vocab_tokenizer, train_bpe_tokenizer

log = logging.getLogger(__name__)
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def build_tiny_model(vocab_size: int, arch: TinyArch, pad_token_id: int, seed: int) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads, max_position_embeddings=arch.max_positions,
        tie_word_embeddings=True, pad_token_id=pad_token_id, use_cache=True,
    )
    return Qwen2ForCausalLM(config)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int, float]:
    """(trainable, total, trainable share). 4-bit weights count as stored elements x 2 (two per byte)."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.dtype == torch.uint8 else 1)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total, trainable / max(total, 1)


def policy_device(accelerator: str, local_rank: int | None = None) -> torch.device:
    """Where this process's policy lives: ``cuda:<local rank>`` on GPUs (each DDP rank its own device; the rank comes
    from ``LOCAL_RANK``, which Lightning and torchrun set), else the CPU."""
    if accelerator not in ("gpu", "cuda"):
        return torch.device("cpu")
    rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    return torch.device("cuda", rank)


def _from_pretrained(path: str, cfg: ModelConfig, device: torch.device):
    kwargs: dict = {"dtype": DTYPES[cfg.dtype]}
    if cfg.quantize == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPES[cfg.dtype])
        kwargs["device_map"] = {"": str(device)}  # 4-bit weights are placed once, on this rank's device
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if cfg.quantize == "nf4":
        _keep_4bit_layout(model)
    return model


def _keep_4bit_layout(model) -> None:
    """bitsandbytes repacks 4-bit weights for a CPU inference kernel the first time a layer runs in eval mode
    without gradients (as generation does); a later training forward then fails in ``matmul_4bit`` ("a view of a
    leaf Variable ... in-place"). Training alternates generation and gradient steps: keep the training layout."""
    import bitsandbytes as bnb

    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False


def load_policy(cfg: ModelConfig, corpus: Iterable[str] | None = None, device: torch.device | str = "cpu"):
    """(model, tokenizer) for ``cfg`` on ``device`` (see :func:`policy_device`); ``corpus`` trains the ``tiny``
    tokenizer (prompts and answers)."""
    device = torch.device(device)
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    init = Path(cfg.init_from) if cfg.init_from else None
    if init is not None and not init.exists():
        raise FileNotFoundError(f"model.init_from={init}: no such directory")
    adapter_init = init is not None and (init / "adapter_config.json").exists()
    if init is not None and not adapter_init:  # a full checkpoint (e.g. the tiny model after SFT)
        tokenizer = AutoTokenizer.from_pretrained(init)
        model = _from_pretrained(str(init), cfg, device)
    elif cfg.name in (TINY, TINY_QWEN_VOCAB):
        if cfg.name == TINY:
            if corpus is None:
                raise ValueError("model=tiny trains its tokenizer on the prompt corpus: pass corpus")
            tokenizer = train_bpe_tokenizer(corpus, cfg.tiny.vocab_size)
        else:
            tokenizer = qwen_vocab_tokenizer(cfg.tokenizer_cache_dir)
        model = build_tiny_model(len(tokenizer), cfg.tiny, tokenizer.pad_token_id, cfg.seed).to(DTYPES[cfg.dtype])
    else:
        tokenizer = AutoTokenizer.from_pretrained(init if adapter_init else cfg.name)
        model = _from_pretrained(cfg.name, cfg, device)  # LoRA adapters of init_from load on top of it below
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.quantize == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if adapter_init:
        model = PeftModel.from_pretrained(model, init, is_trainable=True)
    elif cfg.lora is not None:
        model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                                                 lora_dropout=cfg.lora.dropout,
                                                 target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM"))
    if cfg.quantize != "nf4":
        model = model.to(device)
    n_train, n_total, share = trainable_parameters(model)
    log.info("policy %s: %s trainable of %s parameters (%.3f%%)", cfg.name, f"{n_train:,}", f"{n_total:,}",
             100 * share)
    return model, tokenizer


def save_policy(model, tokenizer, out_dir: Path | str) -> Path:
    """``save_pretrained`` of the policy (only the adapters for a LoRA model) and its tokenizer, atomically: written
    into a temporary sibling directory that replaces ``out_dir`` only when complete
    (:func:`~hyperdapo.atomic.atomic_dir`)."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
