"""Paper trading in replay on the shared Hyperliquid hour (book only): the running log and the summary table."""

from __future__ import annotations

import json

import pytest

from hyperdapo.paper.__main__ import main as paper_main
from hyperdapo.paper.__main__ import split_args
from tests.policy_helpers import train_tiny_policy


@pytest.mark.shared_data
def test_replay_on_the_hyperliquid_hour_writes_log_and_summary(hl_sample, tmp_path):
    policy_dir = train_tiny_policy(tmp_path)
    out = tmp_path / "paper"
    argv = [f"policy={policy_dir}", "experiment=hl_sample", "every_s=60", f"out={out}",
            f"data.archive_files=[{hl_sample}]", f"data.cache_dir={tmp_path}/cache"]
    assert paper_main(argv) == 0
    rows = [json.loads(line) for line in (out / "paper_log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == summary["decisions"] >= 10
    assert [r["ts_us"] for r in rows] == sorted(r["ts_us"] for r in rows)
    assert all(r["answer"].startswith(r["side"] + " LIMIT") for r in rows)
    assert {"market", "twap", "analytic"} <= set(rows[0]["baselines_is_bps"])
    llm = summary["metrics"]["llm"]
    assert llm["Decisions"] == len(rows)
    assert llm["IS [bps]"] == pytest.approx(sum(r["is_bps"] for r in rows) / len(rows))
    assert llm["Fill rate [%]"] == pytest.approx(100 * sum(r["filled"] for r in rows) / len(rows))
    table = (out / "tables" / "paper_summary.md").read_text()
    assert "book-only fills" in table and "| **llm** |" in table and "| twap |" in table and "Fill rate" in table


def test_policy_is_required_and_keys_split_from_overrides(capsys):
    assert split_args(["policy=p", "every_s=5", "experiment=hl_sample"]) == ({"policy": "p", "every_s": "5"},
                                                                             ["experiment=hl_sample"])
    assert paper_main(["experiment=hl_sample"]) == 2
    assert "policy=<dir> is required" in capsys.readouterr().err
