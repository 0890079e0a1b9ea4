"""Too little data for the decision settings: a clear error that names the keys and gives settings derived from the
data's span that work (issue 21 item 2, issue 20 item 4)."""

from __future__ import annotations

import re

import pytest

from hyperdapo.features.config import DecisionConfig
from hyperdapo.features.decision_set import MIN_PER_SPLIT, Split, split_counts, suggest_decisions
from hyperdapo.pipeline.train_run import build_task
from tests.pipeline_helpers import run_config

HOUR_US = 3_600_000_000


def test_suggested_settings_fill_every_split_and_never_lengthen_a_window():
    cfg = DecisionConfig()  # made for days: a 1-h span gets no validation or test decision
    assert min(split_counts(0, HOUR_US, cfg).values()) == 0
    short = suggest_decisions(0, HOUR_US, cfg)
    counts = split_counts(0, HOUR_US, short)
    assert min(counts.values()) >= MIN_PER_SPLIT
    for key in ("every_s", "horizon_s", "adverse_horizon_s", "embargo_s", "warmup_s"):
        assert getattr(short, key) <= getattr(cfg, key), key
    assert short.embargo_s >= short.horizon_s + short.adverse_horizon_s  # still a valid embargo
    assert (short.train_frac, short.val_frac) == (cfg.train_frac, cfg.val_frac)
    assert suggest_decisions(0, 60_000_000, cfg) is None  # one minute: no setting fills three splits


def test_zero_decisions_from_files_is_the_split_error_with_working_settings(hl_sample, tmp_path):
    common = ["data=files", f"data.files.book=[{hl_sample}]", f"data.cache_dir={tmp_path}/cache"]
    with pytest.raises(ValueError, match="the train split holds 0 decisions") as err:
        build_task(run_config([*common, "decisions.warmup_s=3500"]))
    message = str(err.value)
    assert "decisions.warmup_s=3500" in message and "For this 1.00-h span" in message
    suggested = re.findall(r"decisions\.\w+=[\d.]+", message.split("For this")[1])
    assert len(suggested) == 7
    task = build_task(run_config([*common, *suggested]))
    assert all(len(task.split_index(s)) >= MIN_PER_SPLIT for s in Split)
