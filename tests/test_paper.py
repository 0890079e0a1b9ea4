"""Paper trading in replay on the shared Hyperliquid hour (book only), and live on a loopback websocket replaying
it: the running log and the summary table."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from contextlib import contextmanager, suppress

import lz4.frame
import numpy as np
import pandas as pd
import pytest
import websockets
from websockets.asyncio.server import serve

from hyperdapo.evaluation.stats import significant_win
from hyperdapo.paper.__main__ import main as paper_main
from hyperdapo.paper.__main__ import split_args
from hyperdapo.paper.live import paper_trade_live, subscriptions
from hyperdapo.paper.replay import DIFF
from tests.pipeline_helpers import fast
from tests.policy_helpers import train_tiny_policy

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A tiny BTC policy."""
    return train_tiny_policy(tmp_path_factory.mktemp("paper"))


@pytest.mark.shared_data
def test_replay_on_the_hyperliquid_hour_writes_log_and_summary(hl_sample, policy_dir, tmp_path, capsys):
    out = tmp_path / "paper"
    argv = [f"policy={policy_dir}", "experiment=hl_sample", "every_s=60", f"out={out}",
            f"data.archive_files=[{hl_sample}]", f"data.cache_dir={tmp_path}/cache"]
    assert paper_main(argv) == 2  # trained on the synthetic market: a transfer (data source, fills), refused
    assert "data source synthetic vs hyperliquid_archive; fills trades vs book-only" in capsys.readouterr().err
    assert paper_main([*argv, "evaluate.allow_transfer=true"]) == 0
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
    assert "book-only fills" in table and llm_row(summary) in table and "| twap |" in table and "Fill rate" in table
    # Diff as in the backtest tables: the policy minus the other, negative = the policy is cheaper
    diffs = pd.read_csv(out / "tables" / "paper_summary.csv").set_index("Strategy")[DIFF]
    for name in ("market", "twap", "analytic"):
        expected = np.mean([r["is_bps"] - r["baselines_is_bps"][name] for r in rows])
        assert diffs[name] == pytest.approx(expected) == pytest.approx(summary["tests"][name]["mean_diff_bps"])
    assert "IS(llm) - IS(row)" in table
    assert "llm: synthetic hyperliquid -> hyperliquid_archive hyperliquid (data source synthetic -> " \
           "hyperliquid_archive; fills trades -> book-only) (book-only fills: a resting order fills" in table


def test_policy_is_required_and_keys_split_from_overrides(capsys):
    assert split_args(["policy=p", "every_s=5", "experiment=hl_sample"]) == ({"policy": "p", "every_s": "5"},
                                                                             ["experiment=hl_sample"])
    assert paper_main(["experiment=hl_sample"]) == 2
    assert "policy=<dir> is required" in capsys.readouterr().err


def hl_messages(path, n_books: int = 200) -> list[dict]:
    """The first ``n_books`` l2Book messages of the recorded Hyperliquid hour (its lines' ``raw``), with a synthetic
    trades message (one buy, one sell at the touch) after every 10th book."""
    lines = lz4.frame.decompress(path.read_bytes()).decode().splitlines()[:n_books]
    books = [json.loads(line)["raw"] for line in lines]
    out = []
    for k, msg in enumerate(books):
        out.append(msg)
        if k % 10 == 9:
            data = msg["data"]
            bid, ask = data["levels"][0][0]["px"], data["levels"][1][0]["px"]
            out.append({"channel": "trades", "data": [
                {"coin": "BTC", "side": "B", "px": ask, "sz": "0.5", "time": data["time"], "hash": "0x0", "tid": k},
                {"coin": "BTC", "side": "A", "px": bid, "sz": "0.5", "time": data["time"], "hash": "0x1", "tid": -k}]})
    return out


@contextmanager
def loopback_websocket(messages: list[dict]):
    """A websocket server on 127.0.0.1 (ephemeral port; its own thread) that waits for the two subscriptions, sends
    ``messages`` as fast as it can and closes; yields (port, the subscriptions it received)."""
    started, box, subs = threading.Event(), {}, []

    async def handler(ws) -> None:
        for _ in range(2):
            subs.append(json.loads(await ws.recv()))
        with suppress(websockets.ConnectionClosed):
            for msg in messages:
                await ws.send(json.dumps(msg))

    async def run() -> None:
        box["stop"] = asyncio.get_running_loop().create_future()
        async with serve(handler, "127.0.0.1", 0) as server:
            box["port"] = server.sockets[0].getsockname()[1]
            box["loop"] = asyncio.get_running_loop()
            started.set()
            await box["stop"]

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield box["port"], subs
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set_result, None)
        thread.join(10)


@pytest.mark.shared_data
def test_live_on_a_loopback_websocket_writes_log_and_summary(hl_sample, policy_dir, tmp_path):
    out = tmp_path / "live"
    with loopback_websocket(hl_messages(hl_sample)) as (port, subs):
        argv = [f"policy={policy_dir}", "mode=live", f"url=ws://127.0.0.1:{port}", "max_decisions=4",
                "duration_s=120", "every_s=10", "decisions.horizon_s=20", "decisions.adverse_horizon_s=5", f"out={out}"]
        assert paper_main(argv) == 0
    assert subs == subscriptions("BTC")
    rows = [json.loads(line) for line in (out / "paper_log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == summary["decisions"] == 4
    assert [r["ts_us"] for r in rows] == sorted(r["ts_us"] for r in rows)
    assert all(b - a >= 10_000_000 for a, b in itertools.pairwise(r["ts_us"] for r in rows))
    assert all(r["answer"].startswith(r["side"] + " LIMIT") and 40_000 < r["mid_usd"] < 45_000 for r in rows)
    assert {"market", "twap", "oracle"} <= set(rows[0]["baselines_is_bps"])
    llm = summary["metrics"]["llm"]
    assert llm["IS [bps]"] == pytest.approx(sum(r["is_bps"] for r in rows) / len(rows))
    table = (out / "tables" / "paper_summary.md").read_text()
    assert "Paper trading (live" in table and "fills by trades" in table and llm_row(summary) in table


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_a_policy_of_another_asset_is_refused_unless_allowed(policy_dir, tmp_path, capsys, mode):
    argv = [f"policy={policy_dir}", f"mode={mode}", "max_decisions=2", "url=ws://127.0.0.1:9", f"out={tmp_path}/p",
            *fast(tmp_path), "asset=ETH"]
    assert paper_main(argv) == 2
    err = capsys.readouterr().err
    assert "trained on BTC, not asset=ETH" in err and "evaluate.allow_other_asset=true" in err
    assert not (tmp_path / "p").exists()


def test_live_needs_a_bound_and_a_known_mode(capsys):
    assert paper_main(["policy=p", "mode=dream"]) == 2
    assert "mode=dream" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_decisions"):
        paper_trade_live(None, None, "unused")


def llm_row(summary: dict) -> str:
    """The policy's row as the table shows it: bold only when it is significantly cheaper than every baseline."""
    wins = all(significant_win(t) for t in summary["tests"].values())
    return "| **llm** |" if wins else "| llm |"


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_a_policy_of_another_venue_is_refused_naming_each_field_unless_allowed(policy_dir, tmp_path, capsys, mode):
    """The tiny policy (synthetic market, venue=hyperliquid) on the synthetic market with venue=binance_futures:
    refused by evaluate.py's transfer check naming each field, before any market is built."""
    argv = [f"policy={policy_dir}", f"mode={mode}", "max_decisions=2", "url=ws://127.0.0.1:9", f"out={tmp_path}/p",
            *fast(tmp_path), "venue=binance_futures"]
    assert paper_main(argv) == 2
    err = capsys.readouterr().err
    assert f"policy={policy_dir} was trained on synthetic hyperliquid, not on the paper-trading market's synthetic " \
           "binance_futures" in err
    assert "venue hyperliquid vs binance_futures" in err and "lot 0.00001 BTC vs 0.001 BTC" in err
    assert "tick 5 significant figures, decimals <= 1, USD vs 0.1 USD" in err and "evaluate.allow_transfer=true" in err
    assert not (tmp_path / "p").exists()


def test_with_the_flag_a_transfer_is_paper_traded_and_its_caption_says_so(policy_dir, tmp_path):
    out = tmp_path / "p"
    argv = [f"policy={policy_dir}", f"out={out}", *fast(tmp_path), "venue=binance_futures",
            "evaluate.allow_transfer=true", "every_s=600"]
    assert paper_main(argv) == 0
    caption = json.loads((out / "summary.json").read_text())["caption"]
    assert ("Transfer rows (trained on another market, scored on this one): llm: synthetic hyperliquid -> synthetic "
            "binance_futures (venue hyperliquid -> binance_futures;") in caption
    assert caption in (out / "tables" / "paper_summary.caption.txt").read_text()
