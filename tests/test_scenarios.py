"""Stress scenarios of the synthetic market (issue 23, item 2), each checked by its defining property against the plain
market of the same seed (a scenario draws from a random stream of its own, so the two share every shock), and
``none`` checked to be bitwise the market written before scenarios existed."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import yaml

from hyperdapo.data.assets import load_asset
from hyperdapo.data.config import DataConfig, SyntheticConfig
from hyperdapo.data.stats import imbalance
from hyperdapo.data.synthetic import simulate_market, synthetic_dir_name
from tests.pipeline_helpers import REPO, run_config

BTC = load_asset("btc")
HOUR = 1 / 24
STEPS_PER_HOUR = 3600  # 1-s snapshots


def scenario(name: str, **overrides: float) -> dict:
    """The documented parameter set of ``conf/scenario/<name>.yaml`` with ``overrides``."""
    return {**yaml.safe_load((REPO / "conf" / "scenario" / f"{name}.yaml").read_text()), **overrides}


def markets(name: str, hours: float, seed: int = 7, **overrides: float):
    """The market under scenario ``name`` and the plain market of the same seed."""
    cfg = SyntheticConfig(n_days=hours * HOUR, seed=seed)
    return (simulate_market(BTC, SyntheticConfig(n_days=hours * HOUR, seed=seed, scenario=scenario(name, **overrides))),
            simulate_market(BTC, cfg))


def digest(m) -> str:
    h = hashlib.sha256()
    for a in (m.book.ts_us, m.book.local_ts_us, m.book.bid_px, m.book.bid_sz, m.book.ask_px, m.book.ask_sz,
              m.trades.ts_us, m.trades.local_ts_us, m.trades.price, m.trades.amount, m.trades.side, m.updates.price,
              m.updates.amount):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def log_returns_bps(mid: np.ndarray, every: int = 1) -> np.ndarray:
    return np.diff(np.log(mid[::every])) * 1e4


def top_depth(book, n: int = 5) -> np.ndarray:
    """(N,) coins on the top ``n`` levels of both sides."""
    return np.nansum(book.bid_sz[:, :n], axis=1) + np.nansum(book.ask_sz[:, :n], axis=1)


def test_none_is_bitwise_the_market_before_scenarios():
    """The digest and the directory names were taken from the generator before scenarios (synthetic.py of 1b1543a):
    the default, ``scenario=none`` and an explicit NoScenario all give that very market, in the same directory."""
    old_digest, old_dirs = "f5647e78c85d3840ef949380b4cf83a223bedf20d903acfbaf056b498c434c42", ("seed3-fd8aba7cce",
                                                                                                  "seed0-0e97ebdf55")
    none = scenario("none") or {"_target_": "hyperdapo.data.scenarios.NoScenario"}
    for cfg in (SyntheticConfig(n_days=HOUR, seed=3), SyntheticConfig(n_days=HOUR, seed=3, scenario=none)):
        assert digest(simulate_market(BTC, cfg)) == old_digest
        assert synthetic_dir_name(cfg) == old_dirs[0]
    assert synthetic_dir_name(SyntheticConfig()) == old_dirs[1]
    composed = run_config(["scenario=none"]).data.synthetic
    assert synthetic_dir_name(composed) == synthetic_dir_name(run_config([]).data.synthetic) == old_dirs[1]
    # another scenario is another market directory; drop_bps=500 and 500.0 are one market
    crash = run_config(["scenario=flash_crash", "data.synthetic.scenario.drop_bps=500"]).data.synthetic
    assert synthetic_dir_name(crash) != old_dirs[1]
    assert synthetic_dir_name(crash) == synthetic_dir_name(
        SyntheticConfig(scenario=scenario("flash_crash", drop_bps=500.0)))


def test_regime_switch_changes_volatility_depth_and_trades_after_the_switch():
    switched, plain = markets("regime_switch", hours=2)
    half = STEPS_PER_HOUR  # at_frac 0.5 of two hours
    # before the switch the book is the plain market's, number for number
    for key in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
        np.testing.assert_array_equal(getattr(switched.book, key)[:half], getattr(plain.book, key)[:half])
    # after it the same shocks are vol_mult (2.5) times larger: 10-s returns (tick noise small against them)
    after = lambda m: log_returns_bps(m.book.mid[half:], 10).std()  # noqa: E731
    before = lambda m: log_returns_bps(m.book.mid[:half], 10).std()  # noqa: E731
    assert after(switched) / after(plain) == pytest.approx(2.5, rel=0.1)
    assert after(switched) / before(switched) > 1.8 * after(plain) / before(plain)
    assert np.median(top_depth(switched.book)[half:] / top_depth(plain.book)[half:]) == pytest.approx(0.4, rel=0.05)
    late = lambda m: (m.trades.ts_us >= m.book.ts_us[half]).sum()  # noqa: E731
    assert late(switched) > 1.3 * late(plain)  # trade_rate_mult 1.5, Hawkes noise aside


def test_flash_crash_depth_recovery_and_volatility_profile():
    start, fall, recover = STEPS_PER_HOUR, 120, 900  # at_frac 0.5 of two hours; fall_s, recover_s of the YAML
    # the price path alone (vol_mult 1: the plain market's shocks): down drop_bps in fall_s, 80% of it back linearly
    calm, plain = markets("flash_crash", hours=2, vol_mult=1.0)
    gap_bps = np.log(calm.book.mid / plain.book.mid) * 1e4
    tick_bps = 1.0  # the book mid sits on a half-tick grid (1 USD at ~42,000 USD: 0.24 bps)
    assert np.abs(gap_bps[:start]).max() < tick_bps
    assert gap_bps[start + fall] == pytest.approx(-300, abs=tick_bps)  # drop_bps
    assert gap_bps[start + fall // 2] == pytest.approx(-150, abs=tick_bps)  # a linear fall
    assert gap_bps[start + fall + recover // 2] == pytest.approx(-300 + 0.8 * 300 / 2, abs=tick_bps)
    assert np.abs(gap_bps[start + fall + recover:] + 300 * (1 - 0.8)).max() < tick_bps  # recovery_share 0.8 won back
    # volatility: x4 (vol_mult) in the fall, easing back over the recovery, the plain market's after it
    crash, plain = markets("flash_crash", hours=2)
    vol = lambda m, a, b: log_returns_bps(m.book.mid[a:b]).std()  # noqa: E731
    ratio = lambda a, b: vol(crash, a, b) / vol(plain, a, b)  # noqa: E731
    end = start + fall + recover
    assert ratio(start, start + fall) == pytest.approx(4, rel=0.2)
    assert ratio(start + fall, start + fall + 300) > ratio(end - 300, end) > 1.05
    assert ratio(end, None) == pytest.approx(1, abs=0.05)
    # the book thins to depth_mult 0.2 in the fall and sellers take 85% (sell_share) of its trades
    assert np.median(top_depth(crash.book)[start:start + fall] / top_depth(plain.book)[start:start + fall]) < 0.25
    ts = crash.trades.ts_us
    in_fall = (ts >= crash.book.ts_us[start]) & (ts < crash.book.ts_us[start + fall])
    assert (crash.trades.side[in_fall] < 0).mean() == pytest.approx(0.85, abs=0.05)


def test_liquidity_drought_thins_the_book_widens_the_spread_and_slows_trading():
    dry, plain = markets("liquidity_drought", hours=2)
    a, b = STEPS_PER_HOUR, int(0.75 * 2 * STEPS_PER_HOUR)  # start_frac 0.5, end_frac 0.75
    ratio = top_depth(dry.book) / top_depth(plain.book)
    assert np.median(ratio[a:b]) == pytest.approx(0.1, rel=0.1)  # depth_mult 0.1 (sizes rounded to the lot)
    assert np.all(ratio[:a] == 1) and np.all(ratio[b:] == 1)  # the book is the plain one outside the drought
    spread = lambda m: (m.book.ask_px[a:b, 0] - m.book.bid_px[a:b, 0]).mean()  # noqa: E731
    assert spread(dry) > 1.5 * spread(plain)  # each extra tick with probability 0.6, not 0.05-0.3
    window = lambda m: ((m.trades.ts_us >= m.book.ts_us[a]) & (m.trades.ts_us < m.book.ts_us[b])).sum()  # noqa: E731
    assert window(dry) < 0.7 * window(plain)  # trade_rate_mult 0.5


def test_spoof_walls_vanish_before_any_trade_at_their_level_and_the_imbalance_lies():
    spoofed, plain = markets("spoofing", hours=1, walls_per_hour=60.0)
    side, level = spoofed.scenario.wall_side, spoofed.scenario.wall_level
    bid_wall, ask_wall = side == 1, side == -1
    assert bid_wall.sum() > 100 and ask_wall.sum() > 100
    # the walls are the only change to the book: the level at wall_level, wall_size_mult (40) times its size
    np.testing.assert_array_equal(spoofed.book.bid_px, plain.book.bid_px)
    np.testing.assert_allclose(spoofed.book.bid_sz[bid_wall, level], plain.book.bid_sz[bid_wall, level] * 40,
                               rtol=1e-3)
    np.testing.assert_array_equal(np.delete(spoofed.book.bid_sz, level, axis=1), np.delete(plain.book.bid_sz, level,
                                                                                             axis=1))
    np.testing.assert_array_equal(spoofed.book.ask_sz[~ask_wall], plain.book.ask_sz[~ask_wall])
    # each wall vanishes: the snapshot after an episode shows the plain level again
    ends = np.flatnonzero((side[:-1] != 0) & (side[1:] == 0)) + 1
    assert len(ends) > 20
    np.testing.assert_array_equal(spoofed.book.bid_sz[ends], plain.book.bid_sz[ends])
    # no trade prints at a wall's price (or through it) while the wall is shown
    step = np.searchsorted(spoofed.book.ts_us, spoofed.trades.ts_us, side="right") - 1
    sells_at_bid_wall = bid_wall[step] & (spoofed.trades.side < 0)
    buys_at_ask_wall = ask_wall[step] & (spoofed.trades.side > 0)
    assert sells_at_bid_wall.sum() > 50 and buys_at_ask_wall.sum() > 50
    assert np.all(spoofed.trades.price[sells_at_bid_wall] > spoofed.book.bid_px[step[sells_at_bid_wall], level])
    assert np.all(spoofed.trades.price[buys_at_ask_wall] < spoofed.book.ask_px[step[buys_at_ask_wall], level])
    # the lie: each wall is put against the latent flow at its appearance and dominates the top-5 imbalance, which
    # then points against the flow, where the plain book's follows it
    starts = np.flatnonzero((side != 0) & (np.r_[0, side[:-1]] != side))
    assert np.all(side[starts] == -np.sign(spoofed.signal[starts]))
    walls = side != 0
    assert np.mean(np.sign(imbalance(spoofed.book)[walls]) == side[walls]) > 0.85
    agree = lambda m: np.mean(np.sign(imbalance(m.book)[walls]) == np.sign(m.signal[walls]))  # noqa: E731
    assert agree(spoofed) < 0.35 < 0.5 < agree(plain)


def test_momentum_ignition_fires_same_side_runs_that_push_the_mid():
    ignited, plain = markets("momentum_ignition", hours=3, bursts_per_hour=8.0)
    buy_prob = ignited.scenario.buy_prob
    burst = ~np.isnan(buy_prob)
    key = np.where(burst, buy_prob, -1.0)  # runs of one side (overlapping bursts of one side make one run)
    change = np.r_[True, key[1:] != key[:-1]]
    starts = np.flatnonzero(change & burst)
    ends = np.array([a + np.argmax(np.r_[key[a:] != key[a], True]) for a in starts])
    assert len(starts) >= 10
    step = np.searchsorted(ignited.book.ts_us, ignited.trades.ts_us, side="right") - 1
    moves = []
    for a, b in zip(starts, ends, strict=True):
        sides = ignited.trades.side[(step >= a) & (step < b)]
        assert len(sides) > 30 and np.all(sides == sides[0])  # a run of same-side market orders
        direction = 1 if buy_prob[a] == 1 else -1
        assert sides[0] == direction
        moves.append(direction * (np.log(ignited.book.mid[b] / ignited.book.mid[a]) * 1e4))
    assert np.mean(moves) > 15  # drift_bps 20 the burst's way (bursts may overlap, noise aside)
    in_burst = burst[step].mean() / burst.mean()  # share of trades in bursts / share of time in bursts
    assert in_burst > 2  # burst_rate_mult 4
    assert len(ignited.trades) > len(plain.trades)


@pytest.mark.parametrize(("name", "key", "value"), [("flash_crash", "recovery_share", 1.5),
                                                    ("regime_switch", "vol_mult", 0.0),
                                                    ("liquidity_drought", "end_frac", 0.2),
                                                    ("spoofing", "wall_level", 0),
                                                    ("momentum_ignition", "burst_s", -1.0)])
def test_a_bad_parameter_names_its_key(name, key, value):
    with pytest.raises(ValueError, match=f"data.synthetic.scenario.{key}"):
        SyntheticConfig(scenario=scenario(name, **{key: value}))


def test_a_scenario_belongs_to_the_synthetic_market_only():
    with pytest.raises(ValueError, match="changes the synthetic market only"):
        DataConfig(source="tardis", synthetic=SyntheticConfig(scenario=scenario("flash_crash")))
    with pytest.raises(ValueError, match="wall_level=30: must be < data.synthetic.n_levels=25"):
        simulate_market(BTC, SyntheticConfig(n_days=0.001, scenario=scenario("spoofing", wall_level=30)))


def test_every_scenario_option_composes_in_train_and_evaluate():
    for option in sorted((REPO / "conf" / "scenario").glob("*.yaml")):
        for config in ("train", "evaluate"):
            model = run_config([f"scenario={option.stem}"], config).data.synthetic.scenario_model
            assert type(model).__name__ == ("NoScenario" if option.stem == "none" else
                                            "".join(w.title() for w in option.stem.split("_"))), option
    assert run_config(["scenario=flash_crash", "data.synthetic.scenario.drop_bps=500"]).data.synthetic.scenario_model \
        .drop_bps == 500
