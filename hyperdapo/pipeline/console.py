"""Known third-party console noise, silenced in one place (light: imports nothing heavy, so the entry points
apply it before the pipeline is imported).

:func:`quiet_third_party` drops a fixed list of third-party messages, each matched by its own text, that say
nothing a user of this project can act on; every other warning and log line still shows. The entry points and
the pipeline runs apply it (it is idempotent). The training progress bar is :mod:`hyperdapo.pipeline.progress`.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category): third-party warnings that are expected here
NOISE_WARNINGS = (
    # torch deprecates LeafSpec; Lightning's pytree helper still builds one on every batch
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # the training loader is a step ticker and every batch a pure function of (seed, step) (hyperdapo.rl.data),
    # so a checkpoint taken mid-"epoch" resumes exactly
    (r"You're resuming from a checkpoint that ended before the epoch ended and your dataloader is not resumable",
     Warning),
    # checkpoints are written by StepCheckpoints after the optimiser step, on purpose
    (r"Using ModelCheckpoint with manual optimization", Warning),
    # metrics.csv is our own logger, which keeps the earlier rows of a resumed run
    (r"Experiment logs directory .* exists and is not empty", Warning),
    # peft asks transformers a deprecated question on every LoRA load; nothing of ours to change
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning),
)
NOISE_LOG_PREFIXES = {  # logger name -> message prefixes dropped from it
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",),
    "lightning.pytorch.utilities.rank_zero": ("💡 Tip:",),
    "lightning.fabric.utilities.rank_zero": ("💡 Tip:",),
    # Lightning's own checkpoint loading note; our checkpoints hold plain tensors (hyperdapo.pipeline.run_files)
    "lightning.pytorch.trainer.connectors.checkpoint_connector": ("`weights_only` was not set",),
}


class _DropPrefixes(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_third_party() -> None:
    """Install the warning and log filters above (idempotent)."""
    for pattern, category in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    # Lightning's package logger has its own console handler; imported after Hydra has configured logging (the
    # entry points import it lazily), its records would also reach Hydra's root handler and print twice
    logging.getLogger("lightning").propagate = False
    for name, prefixes in NOISE_LOG_PREFIXES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in logger.filters):
            logger.addFilter(_DropPrefixes(prefixes))
