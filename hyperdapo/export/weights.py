"""The integrity of a policy's weight files, checked before an application loads or copies them.

``safetensors`` files start with a JSON header that lists every tensor's byte range; opening one checks the
header and that the data cover exactly those ranges, so a truncated or garbled file fails here, naming itself,
instead of deep inside ``from_pretrained`` with a traceback that names no file. (Flipped bytes inside the data
keep the length and pass: there is no checksum in the format.) ``export``, ``serve`` and ``paper`` call
:func:`check_weights` on every policy directory before using it.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

MODEL_CONFIGS = ("config.json", "adapter_config.json")  # a language-model policy has one of them


def check_weights(policy_dir: Path | str) -> list[Path]:
    """The ``*.safetensors`` files of ``policy_dir``, each opened (header parsed, length checked); a damaged file,
    or a language-model policy (:data:`MODEL_CONFIGS`) without any, is a ValueError naming the file or folder."""
    policy_dir = Path(policy_dir)
    files = sorted(policy_dir.glob("*.safetensors"))
    if not files and any((policy_dir / name).exists() for name in MODEL_CONFIGS):
        raise ValueError(f"{policy_dir}: no *.safetensors weights; the policy folder is incomplete, train or copy "
                         "it again")
    for path in files:
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as exc:
            raise ValueError(f"{path}: damaged weights file ({exc}); it was probably cut short by a failed copy or a "
                             "full disk: copy or train the policy again") from exc
    return files
