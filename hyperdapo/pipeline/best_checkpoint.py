"""Checkpoint choice on validation: the registered policy is the one with the best validation reward, not the last.

:class:`BestValidation` watches ``val/reward_mean`` (bps, greedy answers on the first ``trainer.val_decisions``
validation decisions) after every validation and keeps the trainable weights of the best one in
``<run>/checkpoints/best.pt`` (written atomically, with its training step and score), so that a resumed run goes on
comparing against the best of its first part. ``trainer.register=best`` (the default) loads those weights before
the policy is saved to the registry; ``trainer.register=last`` keeps the last weights. A tie goes to the later
validation (greedy answers often tie while the sampling distribution still improves). Steps of an RL run's SFT
warm-up (``algo.sft_warmup_steps``) are not candidates: an RL run registers an RL policy.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from hyperdapo.atomic import atomic_path

BEST = "best.pt"
MONITOR = "val/reward_mean"


class BestValidation(L.Callback):
    """Keep the trainable weights of the best validation so far in ``<dirpath>/best.pt`` (see the module doc)."""

    def __init__(self, dirpath: Path, min_step: int = 0, resume: bool = False):
        self.path, self.min_step = Path(dirpath) / BEST, min_step
        self.best = read_best(self.path) if resume and self.path.exists() else None  # {"step", "score", "state"}

    def on_validation_end(self, trainer, module) -> None:
        score = trainer.callback_metrics.get(MONITOR)
        step = int(module.train_batches)
        if score is None or step <= self.min_step or not trainer.is_global_zero:
            return
        if self.best is None or float(score) >= self.best["score"]:  # a tie goes to the later, longer-trained weights
            state = {n: p.detach().cpu().clone() for n, p in module.model.named_parameters() if p.requires_grad}
            self.best = {"step": step, "score": float(score), "state": state}
            with atomic_path(self.path) as tmp:
                torch.save(self.best, tmp)


def read_best(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_best(model: torch.nn.Module, best: dict) -> None:
    """Put the best validation's trainable weights into ``model``; raises ValueError when they do not fit it."""
    params = dict(model.named_parameters())
    missing = sorted(set(best["state"]) - set(params))
    if missing:
        raise ValueError(f"{BEST} holds weights this model lacks (e.g. {missing[0]}): written by another model")
    with torch.no_grad():
        for name, value in best["state"].items():
            params[name].copy_(value.to(params[name].device))
