"""Acceptance on the real hour of Hyperliquid BTC l2Book data in ../shared (skipped when absent)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from hyperdapo.data.readers import read_market_file


def test_sample_facts(hl_sample):
    r = read_market_file(hl_sample)
    b = r.table
    assert len(b) == 5587 and r.crossed == 0
    assert b.ts_us[0] == 1704110399915 * 1000 and b.ts_us[-1] == 1704113999268 * 1000
    assert (np.diff(b.ts_us) >= 0).all()
    assert b.n_levels == 20 and not np.isnan(b.bid_px).any() and not np.isnan(b.ask_px).any()
    assert b.mid.min() == 42651.5 and b.mid.max() == 42832.5


def test_ingest_cli_prints_5587(hl_sample, tmp_path):
    out = subprocess.run([sys.executable, "-m", "hyperdapo.data", "ingest", str(hl_sample), "--cache-dir",
                          str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert "5587" in out and "20 a side" in out and "blank_best 0, crossed 0, duplicate 0" in out
