"""An ensemble of asset specialists (``policy=ensemble members=<dir>,<dir>,...``): every member answers the same
decision and the order is the median offset (bps) of the valid answers.

Why the median: one specialist's outlier (an answer far off the others, e.g. a specialist of another asset
misreading this one's scale) cannot move it past the middle answer, where a mean would follow the outlier; and it
is an offset between valid offsets, so the order priced from it on the venue's tick grid is a valid order. The
first member's asset and venue are the traded ones: every member is asked with prompts naming that asset and its
answer is read on that asset's tick grid. The ensemble's answer is the canonical text of the median offset
(:func:`hyperdapo.prompts.answer.format_answer`), read back by the first member's parser, so the order and the
answer the backtest would score agree. No valid member answer: the first member's invalid order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from hyperdapo.pipeline.config import RunConfig
from hyperdapo.pipeline.evaluate_run import median_offset
from hyperdapo.pipeline.trained import DecisionInput, Order, TrainedPolicy, answer_prefix, load_trained
from hyperdapo.prompts.answer import format_answer

ENSEMBLE = "ensemble"


@dataclass
class EnsemblePolicy:
    """Members asked on the first member's asset; used where a :class:`TrainedPolicy` is (``decide``)."""

    members: list[TrainedPolicy]

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"policy=ensemble needs at least two members, got {len(self.members)}")
        lead = self.members[0].cfg
        self.members = [replace(m, cfg=replace(m.cfg, asset=lead.asset, venue=lead.venue)) for m in self.members]

    @property
    def cfg(self) -> RunConfig:
        return self.members[0].cfg

    @property
    def asset(self) -> str:
        return self.cfg.asset.name

    @property
    def path(self) -> Path:
        return Path(f"{ENSEMBLE}({'+'.join(m.path.name for m in self.members)})")

    @property
    def model(self) -> torch.nn.Module:
        return self.members[0].model

    @property
    def load_s(self) -> float:
        return sum(m.load_s for m in self.members)

    def decide(self, decisions: Sequence[DecisionInput]) -> list[Order]:
        """Each decision's median order over the members' answers (one generate call per member)."""
        answers = [m.decide(decisions) for m in self.members]
        return [self.combine(d, [a[i] for a in answers]) for i, d in enumerate(decisions)]

    def combine(self, d: DecisionInput, orders: Sequence[Order]) -> Order:
        """The median-offset order of the members' ``orders`` for decision ``d``."""
        median = median_offset([o.offset_bps if o.valid else float("nan") for o in orders])
        if median is None:
            return orders[0]
        answer = format_answer(d.side, median)
        return self.members[0].parse(d, answer[len(answer_prefix(self.cfg, d.side)):])


def load_ensemble(member_dirs: Sequence[str], device: torch.device | str = "cpu") -> EnsemblePolicy:
    """Load every member (see :func:`load_trained`) into one ensemble."""
    return EnsemblePolicy([load_trained(p, device) for p in member_dirs])


def load_any(policy: str, members: str, device: torch.device | str = "cpu") -> TrainedPolicy | EnsemblePolicy:
    """``policy=<dir>``, or ``policy=ensemble`` with ``members`` (comma-separated policy directories)."""
    if policy == ENSEMBLE:
        return load_ensemble([m for m in members.split(",") if m], device)
    if members:
        raise ValueError(f"members={members} is only read with policy={ENSEMBLE}")
    return load_trained(policy, device)
