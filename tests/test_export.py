"""Exported policy folders: they load with plain transformers and give the service's greedy answers."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hyperdapo.export.__main__ import main as export_main
from hyperdapo.export.bundle import model_card
from hyperdapo.pipeline.trained import load_trained
from tests.pipeline_helpers import run_config
from tests.policy_helpers import decision_inputs, train_tiny_policy

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    return train_tiny_policy(tmp_path_factory.mktemp("export"))


def test_exported_folder_loads_with_transformers_and_answers_the_same(policy_dir, tmp_path):
    out = tmp_path / "bundle"
    assert export_main([str(policy_dir), str(out)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # as mkdir makes it, not mkdtemp's private 0700
    assert {"config.json", "model.safetensors", "tokenizer.json", "config.yaml", "summary.json", "README.md"} <= {
        p.name for p in out.iterdir()}
    policy = load_trained(policy_dir)
    decisions = decision_inputs(6)
    expected = [o.answer for o in policy.decide(decisions)]
    tokenizer = AutoTokenizer.from_pretrained(out)  # plain transformers, as the model card shows
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    got = []
    for d in decisions:
        prompt = policy.prompt(d)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**ids, do_sample=False, max_new_tokens=policy.cfg.algo.max_new_tokens,
                                 eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        got.append(f"{d.side.name} LIMIT" + tokenizer.decode(gen[0, ids["input_ids"].shape[1]:],
                                                             skip_special_tokens=True))
    assert got == expected
    card = (out / "README.md").read_text()
    summary = json.loads((policy_dir / "summary.json").read_text())
    assert "synthetic market" in card and "0.2 day(s) from 2024-01-01" in card
    assert f"{summary['steps']} training steps" in card and "val/reward_mean" in card
    assert f"python -m hyperdapo.export {policy_dir} {out}" in card
    assert "prompt = '<|im_start|>user\\nBTC BUY" in card  # the example prompt, rendered by the chat template
    assert "AutoModelForCausalLM.from_pretrained(folder)" in card


def test_export_refuses_an_existing_folder_or_a_run_directory(policy_dir, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    assert export_main([str(policy_dir), str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    run_dir = json.loads((policy_dir / "summary.json").read_text())["run_dir"]
    assert export_main([run_dir, str(tmp_path / "new")]) == 2
    assert "training run's directory" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_export_refuses_a_damaged_policy_naming_the_file(policy_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(policy_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    out = tmp_path / "bundle"
    assert export_main([str(broken), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(weights) in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["broken"]


def test_model_card_names_the_run_venue_and_data_not_hyperliquid():
    cfg = run_config(["venue=binance_futures", "data=tardis", "data.tardis.exchange=binance-futures",
                      "data.tardis.symbols=[BTCUSDT]"])
    card = model_card(cfg, {"steps": 2, "policy_dir": "outputs/models/BTC/bn"}, "<prompt>", False, "export")
    assert "Hyperliquid" not in card and "hyperliquid" not in card
    assert "BTC perpetual on binance_futures" in card and "maker 2 / taker 5 bps" in card
    assert "Tardis.dev binance-futures BTCUSDT" in card
