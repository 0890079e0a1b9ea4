"""The LightningDataModule: which decisions and offline pairs each step sees.

Every training step's batch is a pure function of (seed, step), never of the data loader's position, so a
run resumed from a checkpoint draws exactly the batches an uninterrupted run would. The training loader is
therefore a "step ticker" (it yields the step number); the module asks :class:`OfflineBatches` for the
SFT or DPO batch of that step, and the task for the RL prompts of that rollout batch. Validation iterates
over a fixed list of validation decisions (the first ``val_decisions`` of the split, in time order).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import DecisionConfig
from hyperdapo.features.decision_set import Split, too_few_decisions


class OfflineBatches:
    """Seeded batches of the preference table: ``prompt`` (rendered), ``chosen`` and ``rejected`` (DPO), and the SFT
    ``answer``: ``chosen``, or one of the row's ``targets`` drawn uniformly when several offsets tie for the best
    (soft labels, ``algo.label_tie_bps``; a stream of its own, so the rows drawn do not change)."""

    def __init__(self, task: ExecutionTask, pairs: pd.DataFrame, batch_size: int, seed: int):
        if pairs.empty:
            raise ValueError("the training split produced no preference pairs (every candidate offset tied); "
                             "use more data (data.synthetic.n_days) or other decisions.* settings")
        self.task, self.pairs, self.batch_size, self.seed = task, pairs.reset_index(drop=True), batch_size, seed

    def __call__(self, step: int) -> dict[str, list[str]]:
        rng = np.random.default_rng([self.seed, 7, step])
        rows = self.pairs.iloc[rng.choice(len(self.pairs), self.batch_size, replace=len(self.pairs) < self.batch_size)]
        index = rows["index"].to_numpy()
        chosen = [self.task.completion(i, a) for i, a in zip(index, rows["chosen"], strict=True)]
        rejected = [self.task.completion(i, a) for i, a in zip(index, rows["rejected"], strict=True)]
        answer = chosen
        if "targets" in rows and (rows["targets"].map(len) > 1).any():
            pick = np.random.default_rng([self.seed, 11, step])
            answer = [self.task.completion(i, t[pick.integers(len(t))])
                      for i, t in zip(index, rows["targets"], strict=True)]
        return {"prompt": self.task.prompts(index), "answer": answer, "chosen": chosen, "rejected": rejected}


class ExecutionDataModule(L.LightningDataModule):
    """Step ticker for training, validation decisions in fixed batches."""

    def __init__(self, task: ExecutionTask, max_steps: int, val_decisions: int, decision_cfg: DecisionConfig,
                 val_batch_size: int = 32):
        super().__init__()
        self.task, self.max_steps = task, max_steps
        self.val_index = task.split_index(Split.VAL)[:val_decisions]
        self.val_batch_size = val_batch_size
        if len(self.val_index) == 0:
            raise ValueError(too_few_decisions(Split.VAL, 0, decision_cfg))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(range(self.max_steps), batch_size=1, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([{"index": int(i)} for i in self.val_index], batch_size=self.val_batch_size,
                          shuffle=False, collate_fn=lambda rows: {"index": torch.tensor([r["index"] for r in rows])})

