"""Tokenizers built offline: nothing is fetched from a model hub.

- :func:`train_bpe_tokenizer`: a small byte-level BPE trained in-process on the prompt corpus, digits split
  one by one (as Qwen2 does), with the ChatML special tokens and a Qwen-style chat template.
- :func:`qwen_vocab_tokenizer`: the real Qwen2.5 vocabulary rebuilt from the ``qwen.tiktoken`` file that the
  ``dashscope`` package ships (151,643 byte-level BPE ranks + Qwen2.5's 22 special tokens), converted with
  transformers' own TikTokenConverter and cached on disk as ``tokenizer.json`` (atomic write).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from hyperdapo.atomic import atomic_path

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN25_SPECIALS = [  # ids 151643 .. 151664, in order (Qwen2.5 tokenizer_config.json added_tokens_decoder)
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_RANKS = 151_643


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, bos_token=None)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def train_bpe_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``corpus`` (deterministic for a given corpus), with ChatML specials."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHATML_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return _wrap(tok)


def qwen_tiktoken_file() -> Path:
    """The ``qwen.tiktoken`` rank file shipped by ``dashscope`` (the ``qwen_vocab`` extra)."""
    try:
        import dashscope
    except ImportError:
        raise FileNotFoundError("model=tiny_qwen_vocab needs the qwen.tiktoken file of the `dashscope` package: "
                                "pip install -e '.[qwen_vocab]'") from None
    path = Path(dashscope.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed dashscope package")
    return path


def qwen_vocab_tokenizer(cache_dir: Path | str) -> PreTrainedTokenizerFast:
    """The Qwen2.5 tokenizer rebuilt offline; the conversion (tens of seconds) is cached in ``cache_dir``."""
    cached = Path(cache_dir) / "qwen2_5_tokenizer.json"
    if not cached.exists():
        from transformers.convert_slow_tokenizer import TikTokenConverter

        tok = TikTokenConverter(vocab_file=str(qwen_tiktoken_file()), pattern=QWEN2_PATTERN).converted()
        if tok.get_vocab_size() != QWEN_RANKS:
            raise ValueError(f"qwen.tiktoken holds {tok.get_vocab_size()} ranks, expected {QWEN_RANKS}")
        tok.add_special_tokens(QWEN25_SPECIALS)
        with atomic_path(cached) as tmp:
            tok.save(str(tmp))
    return _wrap(Tokenizer.from_file(str(cached)))
