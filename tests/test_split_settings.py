"""Too little data for the decision settings: a clear error that names the keys and gives settings derived from the
data's span that work (issue 21 item 2, issue 20 item 4); book and trades that barely overlap are a warning."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hyperdapo.data.schema import BookSnapshots, Trades
from hyperdapo.data.sources import shared_span
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


def test_cutting_most_trades_to_the_shared_span_is_a_warning_with_the_share(caplog):
    s = 1_000_000
    ts = np.arange(0, 100, dtype=np.int64) * s
    one = np.ones((100, 1))
    book = BookSnapshots(ts, ts, one * 99.0, one, one * 101.0, one)
    trades = Trades(ts - 95 * s, ts - 95 * s, np.full(100, 100.0), np.ones(100), np.ones(100, dtype=np.int8))
    files = {"book": [Path("book.csv")], "incremental": [], "trades": [Path("trades.csv")]}
    with caplog.at_level(logging.INFO, logger="hyperdapo.data.sources"):
        cut_book, cut_trades = shared_span(book, trades, files)
    assert len(cut_trades) == 5 and len(cut_book) == 5  # trades at 0..4 s, the book's first 5 s
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING
    assert "cut 95 book rows (95.0 %) and 95 trades (95.0 %)" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hyperdapo.data.sources"):
        shared_span(book, replace(trades, ts_us=ts, local_ts_us=ts), files)
    assert caplog.records[-1].levelno == logging.INFO  # nothing cut: an info line
