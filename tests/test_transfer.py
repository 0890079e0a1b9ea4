"""Cross-venue transfer (issue 23 item 5): a policy trained on one market (venue, price tick, lot, data source) and
scored on another is refused, naming the fields, unless ``evaluate.allow_transfer=true``; with it the row says where
the policy was trained and every caption states the transfer. The same market never triggers it.

The policy: a tiny SFT run of 2 steps on the synthetic market with ``venue=hyperliquid`` (BTC: tick 5 significant
figures with at most 6 - szDecimals = 1 decimal, lot 10 ** -5 BTC), scored with ``venue=binance_futures`` (tick
0.1 USD, lot 0.001 BTC) on the same synthetic market."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from hyperdapo.pipeline.evaluate_run import (
    BOOK_ONLY_WORDS,
    evaluated_policies,
    market_of,
    run_evaluation,
    transfer_note,
)
from hyperdapo.pipeline.train_run import run_training
from tests.pipeline_helpers import REPO, fast, run_config

pytestmark = pytest.mark.slow  # trains a policy: `make test-fast` leaves it out

HL_TICK = "5 significant figures, decimals <= 1, USD"  # hyperliquid, BTC (szDecimals 5)
TRAINED_ON = "trained on synthetic hyperliquid"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A 2-step SFT policy ``sft`` trained with venue=hyperliquid on the synthetic market, in a registry under tmp."""
    tmp = tmp_path_factory.mktemp("transfer")
    run_training(run_config(fast(tmp, "algo=sft", "trainer.max_steps=2", "run_name=sft", "logger=none")),
                 tmp / "run_sft")
    return tmp


def policies(tmp, *overrides):
    return evaluated_policies(run_config(fast(tmp, *overrides), "evaluate"))


def test_another_venue_is_refused_naming_the_policy_both_markets_and_the_fields(registry, monkeypatch):
    from hyperdapo.pipeline import evaluate_run

    monkeypatch.setattr(evaluate_run, "build_task", lambda cfg: pytest.fail("the market was built before the check"))
    with pytest.raises(ValueError) as err:
        run_evaluation(run_config(fast(registry, "venue=binance_futures", "evaluate.policies=[sft]"), "evaluate"),
                       registry / "refused")
    message = str(err.value)
    assert f"evaluate.policies={registry / 'models' / 'BTC' / 'sft'} was trained on synthetic hyperliquid" in message
    assert "not on this evaluation's synthetic binance_futures" in message
    assert "venue hyperliquid vs binance_futures" in message
    assert f"tick {HL_TICK} vs 0.1 USD" in message and "lot 0.00001 BTC vs 0.001 BTC" in message
    assert "data source" not in message  # the same synthetic source: only what differs is named
    assert "evaluate.allow_transfer=true" in message


def test_a_changed_tick_or_data_source_on_the_same_venue_is_a_transfer_too(registry):
    with pytest.raises(ValueError, match=rf"\(tick {HL_TICK} vs 4 significant figures, decimals <= 1, USD\)"):
        policies(registry, "venue.tick_sig_figs=4", "evaluate.policies=[sft]")  # hyperliquid by name, another grid
    books = str(registry / "raw" / "synthetic" / "*" / "*book_snapshot_25*")  # the training market's own files
    trades = str(registry / "raw" / "synthetic" / "*" / "*trades*")
    assert glob.glob(books) and glob.glob(trades)
    with pytest.raises(ValueError, match=r"\(data source synthetic vs files\)"):
        policies(registry, "data=files", f"data.files.book=[{books}]", f"data.files.trades=[{trades}]",
                 "evaluate.policies=[sft]")


def test_a_book_only_market_is_a_transfer_its_captions_state_the_book_only_rule(registry):
    """The training market's own book files without its trades (data=files): the data source and the fill rule
    differ, and the transfer sentence of the captions says what book-only fills are."""
    books = str(registry / "raw" / "synthetic" / "*" / "*book_snapshot_25*")
    with pytest.raises(ValueError, match=r"\(data source synthetic vs files; fills trades vs book-only\)"):
        policies(registry, "data=files", f"data.files.book=[{books}]", "evaluate.policies=[sft]")
    cfg = run_config(fast(registry, "data=files", f"data.files.book=[{books}]", "evaluate.allow_transfer=true",
                          "evaluate.policies=[sft]"), "evaluate")
    rows = evaluated_policies(cfg)
    assert [p.row for p in rows] == [f"sft ({TRAINED_ON})"]
    note = transfer_note(cfg, rows)
    move = "synthetic hyperliquid -> files hyperliquid (data source synthetic -> files; fills trades -> book-only)"
    assert move in note
    assert BOOK_ONLY_WORDS in note


def test_the_two_real_venues_differ_in_every_field():
    """Hyperliquid's archive hour (experiment=hl_sample: book only) and the StandX recording (experiment=standx_btc:
    book and trades): venue, tick, lot, data source and fill rule all differ, both ways (configs only, no data)."""
    hl, standx = (market_of(run_config([f"experiment={e}"])) for e in ("hl_sample", "standx_btc"))
    assert hl.differences(standx) == [("venue", "hyperliquid", "standx"), ("tick", HL_TICK, "0.1 USD"),
                                      ("lot", "0.00001 BTC", "0.0001 BTC"), ("data source", "hyperliquid_archive",
                                                                             "files"), ("fills", "book-only", "trades")]
    assert [f for f, _, _ in standx.differences(hl)] == ["venue", "tick", "lot", "data source", "fills"]


def test_the_same_market_is_never_a_transfer(registry):
    for flag in ("false", "true"):
        (p,) = policies(registry, "evaluate.policies=[sft]", f"evaluate.allow_transfer={flag}")
        assert (p.row, p.trained_on) == ("sft", ())
    (p,) = policies(registry, f"evaluate.policy={registry / 'models' / 'BTC' / 'sft'}")
    assert (p.row, p.trained_on) == ("llm", ())


def test_another_asset_keeps_its_own_refusal_and_flag(registry):
    policy = f"evaluate.policy={registry / 'models' / 'BTC' / 'sft'}"
    with pytest.raises(ValueError, match=r"trained on BTC, not asset=ETH; pass evaluate\.allow_other_asset=true"):
        policies(registry, "asset=ETH", policy, "evaluate.allow_transfer=true")
    # ETH on hyperliquid: another lot (10 ** -szDecimals coins) and tick decimals, so a transfer as well
    with pytest.raises(ValueError, match=r"lot 0\.00001 BTC vs 0\.0001 ETH.*evaluate\.allow_transfer=true"):
        policies(registry, "asset=ETH", policy, "evaluate.allow_other_asset=true")


def test_the_policy_a_policy_started_from_is_checked_and_renamed_with_it(registry):
    """A registry entry ``child`` started from ``sft`` (its ``model.init_from``): a copy of sft's weights whose
    config says it was trained with ``venue`` (the lineage the evaluation follows, as train.py writes it)."""
    sft = registry / "models" / "BTC" / "sft"

    def child(name: str, venue: str):
        entry = registry / "models" / "BTC" / name
        shutil.copytree(sft, entry, dirs_exist_ok=True)
        config = OmegaConf.load(sft / "config.yaml")
        config.model.init_from, config.venue = str(sft), OmegaConf.load(REPO / "conf" / "venue" / f"{venue}.yaml")
        OmegaConf.save(config, entry / "config.yaml")
        summary = json.loads((sft / "summary.json").read_text()) | {"policy_dir": str(entry), "run_dir": f"{name}-run"}
        (entry / "summary.json").write_text(json.dumps(summary))

    child("child_hl", "hyperliquid")
    rows = policies(registry, "venue=binance_futures", "evaluate.allow_transfer=true", "evaluate.policies=[child_hl]")
    assert [(p.row, p.parent, p.compared) for p in rows] == [
        (f"child_hl ({TRAINED_ON})", f"sft ({TRAINED_ON})", True), (f"sft ({TRAINED_ON})", None, False)]
    child("child_bn", "binance_futures")  # trained on the evaluation's venue, started from a hyperliquid policy
    with pytest.raises(ValueError, match=rf"child_bn's model\.init_from={sft} was trained on synthetic hyperliquid"):
        policies(registry, "venue=binance_futures", "evaluate.policies=[child_bn]")
    rows = policies(registry, "venue=binance_futures", "evaluate.allow_transfer=true", "evaluate.policies=[child_bn]")
    assert [(p.row, p.parent) for p in rows] == [("child_bn", f"sft ({TRAINED_ON})"), (f"sft ({TRAINED_ON})", None)]


def test_with_the_flag_the_row_and_every_caption_say_transfer(registry):
    out = registry / "transfer"
    result = run_evaluation(run_config(fast(registry, "venue=binance_futures", "evaluate.allow_transfer=true",
                                            "evaluate.policies=[sft]"), "evaluate"), out)
    row = f"sft ({TRAINED_ON})"
    assert result["policies"][row]["trained_on"] == [
        {"venue": "hyperliquid", "source": "synthetic", "tick": HL_TICK, "lot": "0.00001 BTC", "fills": "trades"}]
    quality = pd.read_csv(out / "tables" / "execution_quality.csv")
    assert quality.Strategy.iloc[0] == row  # the policy's row, first, says where it was trained
    move = (f"Transfer rows (trained on another market, scored on this one): {row}: synthetic hyperliquid -> "
            f"synthetic binance_futures (venue hyperliquid -> binance_futures; tick {HL_TICK} -> 0.1 USD; lot "
            "0.00001 BTC -> 0.001 BTC).")
    for stem in ("execution_quality", "execution_detail", "fill_rate", "headline", "execution_by_regime"):
        assert move in (out / "tables" / f"{stem}.caption.txt").read_text(), stem
    assert move in result["caption"] and "BTC on binance_futures" in result["caption"]
    assert f"is_bps_{row}" in pd.read_parquet(out / "decisions.parquet").columns
    assert json.loads((out / "results.json").read_text())["metrics"][row]["IS [bps]"] == pytest.approx(
        result["metrics"][row]["IS [bps]"])


def test_evaluate_py_prints_one_error_line(registry):
    args = [*fast(registry, "venue=binance_futures", "evaluate.policies=[sft]"), f"hydra.run.dir={registry / 'cli'}"]
    proc = subprocess.run([sys.executable, "evaluate.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [s for s in proc.stderr.splitlines() if s.startswith("error: ")]
    assert "was trained on synthetic hyperliquid" in line and "evaluate.allow_transfer=true" in line
