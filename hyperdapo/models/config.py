"""The typed configuration of the models stage (``model=``): light, imports neither torch nor transformers.

:mod:`hyperdapo.models.policy` builds and loads the policy a :class:`ModelConfig` describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TINY, TINY_QWEN_VOCAB = "tiny", "tiny_qwen_vocab"
DTYPE_NAMES = ("float32", "bfloat16", "float16")  # weights / compute dtypes (torch.<name>)


@dataclass
class TinyArch:
    """Sizes of the tiny Qwen2 model (heads must divide hidden; kv heads must divide heads)."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    vocab_size: int = 1024  # BPE vocabulary of the `tiny` tokenizer (ignored for tiny_qwen_vocab)
    max_positions: int = 1024


@dataclass
class LoraSpec:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class ModelConfig:
    name: str = TINY  # tiny | tiny_qwen_vocab | a hub id (Qwen/Qwen2.5-7B) | a local checkpoint path
    quantize: str = "none"  # none | nf4
    dtype: str = "float32"  # weights / compute dtype
    lora: LoraSpec | None = None  # None = full fine-tuning
    gradient_checkpointing: bool = False
    init_from: str | None = None  # a directory written by save_policy (e.g. the SFT run's policy)
    tiny: TinyArch = field(default_factory=TinyArch)
    tokenizer_cache_dir: str = "data/cache/tokenizers"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.quantize not in ("none", "nf4"):
            raise ValueError(f"model.quantize={self.quantize!r}: use none or nf4")
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"model.dtype={self.dtype!r}: use one of {list(DTYPE_NAMES)}")
        if self.quantize == "nf4" and self.lora is None:
            raise ValueError("model.lora: a 4-bit (model.quantize=nf4) model trains through LoRA adapters; set lora")
        t = self.tiny
        if t.hidden_size % t.num_heads or t.num_heads % t.num_kv_heads:
            raise ValueError(f"model.tiny: hidden_size={t.hidden_size} must divide by num_heads={t.num_heads} and "
                             f"num_heads by num_kv_heads={t.num_kv_heads}")
        if self.lora is not None and not (self.lora.r >= 1 and 0 <= self.lora.dropout < 1):
            raise ValueError(f"model.lora: r={self.lora.r} must be >= 1 and dropout={self.lora.dropout} in [0, 1)")
