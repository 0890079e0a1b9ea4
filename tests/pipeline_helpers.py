"""Compose real Hydra configs for pipeline tests (the same conf/ tree train.py and evaluate.py use)."""

from __future__ import annotations

import struct
from pathlib import Path

from hyperdapo.pipeline.config import compose as compose_cfg
from hyperdapo.pipeline.config import compose_run_config as run_config

REPO = Path(__file__).resolve().parents[1]
__all__ = ["REPO", "compose_cfg", "fast", "run_config"]


def fast(tmp: Path, *extra: str) -> list[str]:
    """A CPU-seconds configuration: 4.8 synthetic hours, decisions every 30 s, a few steps."""
    return [
        "data.synthetic.n_days=0.2", "decisions.every_s=30", f"data.raw_dir={tmp}/raw", f"data.cache_dir={tmp}/cache",
        f"registry_dir={tmp}/models", "trainer.val_decisions=8", "trainer.val_every_n_steps=2",
        "trainer.ckpt_every_n_steps=2", "algo.prompts_per_batch=4", "algo.group_size=4", "algo.sft_batch_size=8",
        "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64", "model.tiny.vocab_size=300",
        "optim.warmup_steps=1", *extra,
    ]


def wandb_records(run_file: Path) -> list:
    """The protobuf records of a W&B transaction log (``run-<id>.wandb``: a 7-byte header, then LevelDB-log
    records in 32 KiB blocks, each ``crc32 (4) | length (2) | type (1)``; types 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    raw, block, pos, part, records = run_file.read_bytes(), 32 * 1024, 7, b"", []
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        part, pos = part + raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(part))
            part = b""
    return records
