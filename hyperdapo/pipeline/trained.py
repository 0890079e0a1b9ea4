"""A registered policy as the applications use it (``hyperdapo.serve``, ``hyperdapo.paper``, ``hyperdapo.export``):
its run config, the model on a device, and one call that turns decisions into orders.

The prompt is the one training wrote (:func:`hyperdapo.prompts.render.build_messages` with the run's
``prompt:`` config, through the policy's chat template, plus the prefilled ``<SIDE> LIMIT``), the answer is
greedy (:func:`hyperdapo.rl.rollout.sample`, as the backtest's :func:`~hyperdapo.pipeline.evaluate_run.greedy_answers`)
and it is read by the training parser (:func:`hyperdapo.prompts.answer.parse_answer`), so an order here is the
order the backtest would have scored. Prices in USD, offsets in side-relative bps (negative = passive).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from hyperdapo import CONF_DIR
from hyperdapo.data.schema import Side
from hyperdapo.data.venues import Instrument
from hyperdapo.features.config import Objective
from hyperdapo.models.policy import load_policy
from hyperdapo.pipeline.config import RunConfig, to_run_config
from hyperdapo.pipeline.evaluate_run import find_policy
from hyperdapo.prompts.answer import parse_answer
from hyperdapo.prompts.render import build_messages, render_prompt
from hyperdapo.rl.rollout import sample

log = logging.getLogger(__name__)
REQUIRED_FEATURES = ("mid_usd", "best_bid_usd", "best_ask_usd")  # the prompt prints them and the order is priced on mid


@dataclass(frozen=True)
class DecisionInput:
    """One decision as an application states it. ``features`` is one row of the feature table
    (:func:`hyperdapo.features.compute.compute_features`: raw values and ``<name>_z``); a feature it lacks is
    unavailable (the prompt says "n/a"), except :data:`REQUIRED_FEATURES`."""

    features: Mapping[str, float]
    side: Side
    qty: float  # coins
    objective: Objective
    horizon_s: float


@dataclass(frozen=True)
class Order:
    """The policy's order for one decision; ``limit_px`` (USD) and ``offset_bps`` are None when invalid."""

    valid: bool
    reason: str  # RejectReason value, "none" when valid
    limit_px: float | None
    offset_bps: float | None
    mid_usd: float  # the arrival mid the offset is measured from
    answer: str  # the full answer text (prefill included)


def missing_features(features: Mapping[str, float]) -> list[str]:
    """The :data:`REQUIRED_FEATURES` absent from ``features`` or not finite positive prices."""
    return [k for k in REQUIRED_FEATURES if not (k in features and math.isfinite(features[k]) and features[k] > 0)]


@dataclass
class TrainedPolicy:
    """A registered policy loaded for inference."""

    path: Path
    cfg: RunConfig  # the run config the policy was trained with (its config.yaml)
    model: torch.nn.Module
    tokenizer: object
    load_s: float  # wall time of loading the model and tokenizer, s

    @property
    def asset(self) -> str:
        return self.cfg.asset.name

    def prompt(self, d: DecisionInput) -> str:
        """The rendered prompt of ``d``, ready for generation."""
        return decision_prompt(self.cfg, self.tokenizer, d)

    def decide(self, decisions: Sequence[DecisionInput]) -> list[Order]:
        """Orders for ``decisions`` from one greedy generate call (the batch is left-padded)."""
        if not decisions:
            return []
        bad = {i: missing_features(d.features) for i, d in enumerate(decisions) if missing_features(d.features)}
        if bad:
            names = sorted({k for v in bad.values() for k in v})
            raise ValueError(f"decisions {sorted(bad)} lack the features {names}")
        roll = sample(self.model, self.tokenizer, [self.prompt(d) for d in decisions], group_size=1,
                      max_new_tokens=self.cfg.algo.max_new_tokens, temperature=1.0, greedy=True)
        return [self.parse(d, text) for d, text in zip(decisions, roll.texts, strict=True)]

    def parse(self, d: DecisionInput, completion: str) -> Order:
        """The order of a generated ``completion`` (the text after the prompt) for decision ``d``."""
        answer = answer_prefix(self.cfg, d.side) + completion
        mid = float(d.features["mid_usd"])
        p = parse_answer(answer, side=d.side, mid_usd=mid, instrument=Instrument(self.cfg.venue, self.cfg.asset),
                         band_bps=self.cfg.prompt.band_bps)
        return Order(p.valid, p.reason.value, p.limit_px if p.valid else None, p.offset_bps if p.valid else None,
                     mid, answer)


def answer_prefix(cfg: RunConfig, side: Side) -> str:
    """The start of the answer the prompt already holds, as in :meth:`ExecutionTask.answer_prefix`."""
    return f"{side.name} LIMIT" if cfg.prompt.prefill_side else ""


def decision_prompt(cfg: RunConfig, tokenizer, d: DecisionInput) -> str:
    """The prompt of decision ``d`` for a policy trained with ``cfg``, through ``tokenizer``'s chat template and
    followed by the answer prefix, ready for generation."""
    features = defaultdict(lambda: math.nan, d.features)
    messages = build_messages(cfg.asset.name, features, d.side, d.qty, d.horizon_s, d.objective, cfg.prompt)
    return render_prompt(tokenizer, messages) + answer_prefix(cfg, d.side)


def run_config_of(policy_dir: Path | str) -> RunConfig:
    """The run config a policy was trained with, from its ``config.yaml`` (checked by the run schema; a config
    written by an earlier version is read through :func:`migrate_pre_venue` and :func:`migrate_fill_horizons`)."""
    path = Path(policy_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"policy={policy_dir}: no config.yaml; expected a policy directory written by "
                                "train.py (outputs/models/<ASSET>/<run_name>)")
    raw = migrate_fill_horizons(migrate_pre_venue(OmegaConf.load(path), path))
    return to_run_config(OmegaConf.merge(OmegaConf.structured(RunConfig), raw))


PRE_VENUE_KEYS = ("latency_ms", "taker_fee_bps", "maker_fee_bps")  # execution.* keys before the venue group


def migrate_pre_venue(raw: DictConfig, path: Path) -> DictConfig:
    """A run config written before the ``venue`` group (no ``venue:`` key) as today's schema reads it: the venue is
    Hyperliquid (the only one then) with the latency and fees the simulator used, ``execution.{latency_ms,
    taker_fee_bps, maker_fee_bps}``; ``asset.{taker,maker}_fee_bps`` are dropped (the simulator never read them).
    A config with a ``venue:`` key is returned unchanged."""
    if "venue" in raw:
        return raw
    raw = raw.copy()
    venue = OmegaConf.load(CONF_DIR / "venue" / "hyperliquid.yaml")
    execution = raw.get("execution") or {}
    for key in PRE_VENUE_KEYS:
        if key in execution:
            venue[key] = execution[key]
            del raw.execution[key]
    for key in ("taker_fee_bps", "maker_fee_bps"):
        raw.get("asset", {}).pop(key, None)
    raw.venue = venue
    log.warning("%s predates the venue group: read as venue=hyperliquid with the run's fees and latency (maker %s / "
                "taker %s bps, %s ms)", path, venue.maker_fee_bps, venue.taker_fee_bps, venue.latency_ms)
    return raw


def migrate_fill_horizons(raw: DictConfig) -> DictConfig:
    """A run config written when the simulator had its own copy of the reward window (``execution.horizon_s``,
    ``execution.adverse_horizon_s``, then kept equal to ``decisions.*`` by a check) without that copy: the window is
    the decisions'. A config without those keys is returned unchanged."""
    execution = raw.get("execution") or {}
    if not any(k in execution for k in ("horizon_s", "adverse_horizon_s")):
        return raw
    raw = raw.copy()
    for key in ("horizon_s", "adverse_horizon_s"):
        raw.execution.pop(key, None)
    return raw


def checked_policy(policy_dir: Path | str) -> tuple[Path, RunConfig]:
    """The policy directory and its run config, checked as ``evaluate.policy`` is (a training run's directory or a
    directory without a model fails naming it)."""
    cfg = run_config_of(policy_dir)
    return find_policy(replace(cfg, evaluate=replace(cfg.evaluate, policy=str(policy_dir)))), cfg


def load_trained(policy_dir: Path | str, device: torch.device | str = "cpu") -> TrainedPolicy:
    """Load a registered policy (see :func:`checked_policy`) for inference on ``device``."""
    path, cfg = checked_policy(policy_dir)
    if cfg.prompt.n_few_shot:
        raise ValueError(f"policy={policy_dir}: prompt.n_few_shot={cfg.prompt.n_few_shot}: its prompts hold worked "
                         "examples of the training split, which an application cannot rebuild; use a zero-shot policy")
    t0 = time.perf_counter()
    model, tokenizer = load_policy(replace(cfg.model, init_from=str(path)), device=device)
    model.eval()
    load_s = time.perf_counter() - t0
    log.info("policy %s (%s) loaded in %.2f s on %s", path, cfg.asset.name, load_s, device)
    return TrainedPolicy(path, cfg, model, tokenizer, load_s)


def default_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
