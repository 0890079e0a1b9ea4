"""The execution task: scoring answers, splits with an embargo, preference pairs and the oracle table."""

from __future__ import annotations

import numpy as np
import pytest

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import SyntheticConfig
from hyperdapo.data.schema import MarketData
from hyperdapo.data.synthetic import simulate_market
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig
from hyperdapo.execution.preferences import DEFAULT_OFFSETS_BPS, offset_table, preference_pairs
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.config import DecisionConfig, FeatureConfig
from hyperdapo.features.decision_set import Split, split_bounds_us
from hyperdapo.prompts.config import PromptConfig

S = 1_000_000
HYPERLIQUID = load_venue("hyperliquid")


def build(market: MarketData, prompt: PromptConfig) -> ExecutionTask:
    return ExecutionTask.build(load_asset(market.asset), HYPERLIQUID, market, DecisionConfig(), FeatureConfig(),
                               FillConfig(), RewardConfig(), prompt)


@pytest.fixture(scope="module")
def market() -> MarketData:
    return simulate_market(load_asset("btc"), SyntheticConfig(n_days=0.5, seed=1)).market_data()


@pytest.fixture(scope="module")
def task(market) -> ExecutionTask:
    """Full prompts, no answer prefix: the policy writes the whole answer."""
    return build(market, PromptConfig(prefill_side=False))


def test_prefilled_side_completions_are_scored_with_the_prefix(market):
    t = build(market, PromptConfig(style="compact", prefill_side=True))
    i = t.split_index(Split.TRAIN)[:1]
    side = "BUY" if t.decisions.side[i[0]] > 0 else "SELL"
    assert t.answer_prefix(i[0]) == f"{side} LIMIT"
    scored = t.score(i, [" -5.0 bps", " lots"], 2)
    assert scored.valid.tolist() == [[True, False]]
    assert t.completion(i[0], f"{side} LIMIT -5.0 bps") == " -5.0 bps"
    assert t.messages[i[0]][-1]["content"].startswith(f"BTC {side} book ") and len(t.messages[i[0]]) == 1


def test_score_parses_answers_and_penalises_invalid_ones(task):
    i = task.split_index(Split.TRAIN)[:2]
    side = ["BUY" if s > 0 else "SELL" for s in task.decisions.side[i]]
    texts = [f"{side[0]} LIMIT -5.0 bps", "hold", f"{side[0].lower()} limit -15 BPS\nbecause",
             f"{side[1]} LIMIT -5.0 bps", "BUY LIMIT -500 bps" if side[1] == "BUY" else "SELL LIMIT -500 bps",
             "nonsense SELL" if side[1] == "BUY" else "BUY LIMIT 0 bps"]
    scored = task.score(i, texts, group_size=3)
    assert scored.valid.tolist() == [[True, False, True], [True, False, False]]
    assert (scored.rewards[~scored.valid] == RewardConfig().invalid_penalty).all()
    expected, _ = task.score_offsets(i, np.array([[-5.0, -15.0], [-5.0, -5.0]]))
    np.testing.assert_allclose(scored.rewards[0, [0, 2]], expected[0])
    np.testing.assert_allclose(scored.rewards[1, 0], expected[1, 0])
    np.testing.assert_allclose(scored.offsets_bps[0, [0, 2]], [-5.0, -15.0], atol=0.1)  # tick rounding only
    assert scored.reasons[0, 0] == "none" and scored.reasons[1, 1] not in ("none", "")


def test_no_validation_or_test_reward_window_overlaps_training(task):
    d = task.decisions
    cfg = DecisionConfig()
    window_us = int(cfg.window_s * S)
    train_end = d.ts_us[d.split == "train"].max() + window_us  # last training reward window ends here
    later = d.ts_us[d.split != "train"]
    assert len(later) and later.min() >= train_end + 0  # no overlap
    book_ts = task.tape.market.book.ts_us
    bounds = split_bounds_us(int(book_ts[0] + cfg.warmup_s * S), int(book_ts[-1]), cfg)
    assert bounds[Split.VAL][0] - bounds[Split.TRAIN][1] == int(cfg.embargo_s * S) >= window_us
    for split in (Split.VAL, Split.TEST):  # every reward window lies inside its own period
        lo, hi = bounds[split]
        ts = d.ts_us[d.split == split.value]
        assert (ts >= lo).all() and (ts + window_us <= hi).all()
    # chronological: train < val < test
    assert d.ts_us[d.split == "train"].max() < d.ts_us[d.split == "val"].min() < d.ts_us[d.split == "test"].min()


def test_embargo_shorter_than_the_reward_window_is_rejected():
    with pytest.raises(ValueError, match="decisions.embargo_s"):
        DecisionConfig(embargo_s=100.0)


def test_preference_pairs(task):
    pairs = preference_pairs(task, Split.TRAIN)
    assert len(pairs) > 0.9 * len(task.split_index(Split.TRAIN))  # ties are rare with continuous rewards
    assert (pairs.chosen_reward > pairs.rejected_reward).all()
    assert {"prompt", "chosen", "rejected", "asset", "ts_us", "mid_usd", "side", "objective"} <= set(pairs.columns)
    row = pairs.iloc[0]
    assert row.chosen.split()[0] == ("BUY" if row.side > 0 else "SELL") and row.chosen.endswith("bps")


def test_oracle_beats_every_fixed_offset_on_the_test_split(task, capsys):
    table = offset_table(task, Split.TEST, DEFAULT_OFFSETS_BPS)
    with capsys.disabled():
        print("\n" + table.to_string(index=False))
    fixed, oracle = table.iloc[:-1], table.iloc[-1]
    assert (oracle.mean_reward_bps > fixed.mean_reward_bps + 2 * fixed.se_bps + 2 * oracle.se_bps).all()


def test_few_shot_examples_come_from_training_and_are_embargoed(market):
    t = build(market, PromptConfig(prefill_side=False, n_few_shot=2))
    plain = build(market, PromptConfig(prefill_side=False))
    msgs = t.messages[t.split_index(Split.TEST)[0]]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"].endswith("bps")
    # the examples' reward windows end before the first training decision that can see them
    first_two = plain.split_index(Split.TRAIN)[:2]
    known_us = plain.decisions.ts_us[first_two].max() + int(DecisionConfig().window_s * S)
    assert t.decisions.ts_us[t.split_index(Split.TRAIN)].min() >= known_us
    assert len(t.split_index(Split.TRAIN)) < len(plain.split_index(Split.TRAIN))


def test_features_prompts_and_book_only_fills_on_the_real_hyperliquid_hour(hl_sample):
    from hyperdapo.data.readers import read_market_file

    book = read_market_file(hl_sample).table
    t = ExecutionTask.build(load_asset("BTC"), HYPERLIQUID, MarketData("BTC", book, None),
                            DecisionConfig(every_s=10, warmup_s=300, train_frac=0.5, val_frac=0.1), FeatureConfig(),
                            FillConfig(), RewardConfig(), PromptConfig(prefill_side=False))
    test = t.split_index(Split.TEST)
    assert len(test) > 30
    row = t.features[test[0]]
    assert np.isfinite([row["spread_bps"], row["imbalance_top5"], row["volatility_5m_bps"]]).all()
    assert np.isnan(row["volume_5m"]) and not row["trades_available"]
    prompt = t.messages[test[0]][-1]["content"]
    assert "BTC mid $42," in prompt and "n/a trades/min" in prompt
    rewards, out = t.score_offsets(test, np.array([[0.0, -5.0]] * len(test)))
    assert out.book_only and out.filled.any() and np.isfinite(rewards).all()


def test_reward_by_objective_makes_each_objective_prefer_what_its_prompt_asks(market):
    """reward=by_objective on this market: the best fixed offset (mean reward over the decisions of one objective)
    is 0 bps for `aggressive` (fill soon) and a passive one for `patient` and `risk_averse`."""
    from omegaconf import OmegaConf

    from hyperdapo.data.assets import CONF_DIR

    cfg = RewardConfig(**OmegaConf.to_container(OmegaConf.load(CONF_DIR / "reward" / "by_objective.yaml")))
    t = ExecutionTask.build(load_asset(market.asset), HYPERLIQUID, market, DecisionConfig(), FeatureConfig(),
                            FillConfig(), cfg, PromptConfig())
    idx = np.arange(len(t.decisions))
    grid = np.asarray(DEFAULT_OFFSETS_BPS)
    rewards, out = t.score_offsets(idx, np.broadcast_to(grid, (len(idx), len(grid))))
    best = {o: grid[rewards[t.decisions.objective == o].mean(axis=0).argmax()] for o in ("aggressive", "patient",
                                                                                      "risk_averse")}
    assert best["aggressive"] == 0.0  # the grid's most aggressive offset but +5 (which crosses the spread)
    assert best["patient"] < 0 and best["risk_averse"] < 0
    # patient decisions: the shortfall reward plus half the price improvement of each fill, nothing else
    patient = t.decisions.objective == "patient"
    extra = np.where(out.filled, 0.5 * np.nan_to_num(out.price_improvement_bps), 0.0)
    np.testing.assert_allclose(rewards[patient], (-out.is_bps + extra)[patient], rtol=0, atol=1e-12)
