"""Sequential execution (hyperdapo/execution/sequential.py, sequential_baselines.py, rl/sequential_env.py): an order
held from step 0 is the one-shot task's order bitwise (dt = T and dt < T, every fill rule); on hand-made tapes,
replacing beats keeping by the number worked out by hand, a cancel loses to a fill inside the latency, unworked
quantity is cleaned up at T; a step's state reads the market up to its time only; the baselines' actions are valid
and every parent is finished by T; the Gymnasium env passes check_env and PPO trains on it."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hyperdapo.data.assets import load_asset
from hyperdapo.data.schema import BookSnapshots, MarketData, Side, Trades
from hyperdapo.data.venues import load_venue
from hyperdapo.execution.config import FillConfig, RewardConfig, SequentialConfig
from hyperdapo.execution.fills import FIELDS
from hyperdapo.execution.sequential import Act, Actions, SequentialEpisodes, StepState, run_episodes
from hyperdapo.execution.sequential_baselines import TWAP, AlmgrenChriss, HeldOffset, PegToBest, TouchThenCross
from hyperdapo.execution.tape import DayTape, MemoryTape, take_rows
from hyperdapo.execution.task import ExecutionTask
from hyperdapo.features.decision_set import DecisionSet, Split
from hyperdapo.pipeline.train_run import build_task
from hyperdapo.prompts.config import PromptConfig
from hyperdapo.rl.config import PPOConfig
from hyperdapo.rl.sequential_env import ENV_ID, OBS_DIM, ExecutionEnv, ppo_policy, train_sequential_ppo
from tests.pipeline_helpers import fast, run_config
from tests.test_fills import MAKER, MID, TAKER, bps, flat_book, tape

S = 1_000_000  # us per second
HORIZON_S = 120.0  # T of the synthetic decisions and of the hand-made parent
DT = SequentialConfig(dt_s=10.0)  # 12 steps
GRID_BPS = [-15.0, -5.0, 0.0, 5.0]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """About 500 synthetic decisions (4.8 h, every 30 s), horizon 120 s; the tests that read it are marked slow (the
    task takes some 20 s to build), the hand-made tapes are not."""
    return build_task(run_config(fast(tmp_path_factory.mktemp("seq"), f"decisions.horizon_s={HORIZON_S:g}")))


def same(a, b) -> bool:
    return np.array_equal(a, b, equal_nan=np.asarray(a).dtype.kind == "f")


# ---------------------------------------------------------------------------------------------- one-shot equality
@pytest.mark.slow  # builds the synthetic task
@pytest.mark.parametrize(("fill", "reward"), [
    (FillConfig(), RewardConfig()),
    (FillConfig(fill_rule="touch", queue_model="capped"), RewardConfig(name="fill_improve_pnl")),
], ids=["trade_through-shortfall", "touch_capped-fill_improve_pnl"])
@pytest.mark.parametrize("dt_s", [HORIZON_S, 10.0])
def test_an_offset_held_from_step_0_is_the_one_shot_order_bitwise(task, fill, reward, dt_s):
    """REPLACE at x at step 0 (then KEEP): with dt = T that is the whole episode, with dt < T the order works
    untouched to T; either way every outcome field and the reward equal score_offsets at x exactly."""
    task = replace(task, fill_cfg=fill, reward_cfg=reward)
    idx = np.arange(len(task.decisions))
    paths = np.zeros(3, dtype=int)  # cleanups, resting fills, marketable orders seen
    for x in (-20.0, -5.0, 0.0, 3.0, 50.0):  # deep passive .. through the book (marketable, split orders)
        episodes, trajectory = run_episodes(task, idx, HeldOffset(x), SequentialConfig(dt_s=dt_s))
        want_reward, want = task.score_offsets(idx, np.full((len(idx), 1), x))
        got = episodes.outcomes()
        for f in ("arrival_mid", *FIELDS):
            assert same(getattr(got, f), getattr(want, f)), (x, f)
        assert got.book_only == want.book_only
        assert same(episodes.rewards(), want_reward[:, 0])
        assert len(trajectory) <= HORIZON_S / dt_s and (episodes.n_orders == 1).all()
        paths += [want.cleanup.sum(), (want.filled & ~want.marketable).sum(), want.marketable.sum()]
    assert (paths > 0).all()  # every path of the simulator was exercised


# ---------------------------------------------------------------------------------------------- hand-made tapes
def hand_task(book: BookSnapshots, trades: Trades | None, qty: float = 0.5, t0_s: float = 10.0) -> ExecutionTask:
    """One buy parent of ``qty`` BTC at ``t0_s`` on Hyperliquid (tick 0.1 USD at 100, latency 20 ms, fees 1.5 / 4.5
    bps), horizon 120 s, on the book and trades of tests/test_fills.py (bid 100 / ask 101, sizes 1 and 2)."""
    decisions = DecisionSet("BTC", np.array([int(t0_s * S)]), np.array([Side.BUY], np.int8), np.array([qty]),
                            np.array(["patient"]), np.array([Split.TEST.value]), HORIZON_S, 60.0)
    market = MarketData("BTC", book, trades)
    return ExecutionTask(load_asset("BTC"), load_venue("hyperliquid"), MemoryTape(market), decisions, [{}],
                         MemoryTape(market).mid_at(decisions.ts_us), [[]], FillConfig(), RewardConfig(),
                         PromptConfig())


def test_replacing_beats_keeping_on_a_hand_tape():
    """Buy 0.5 at t0 = 10 s, bid 100 / ask 101 (mid 100.5); the book moves up 3 at t = 40 s (bid 103 / ask 104) and a
    sell prints at 102.5 at t = 70 s. Kept at 100, the order never fills (nothing prints below 100) and is cleaned up
    at T = 130 s at the ask 104 (taker); pegged, it is replaced at 103 at the step t = 40 s and filled by the print at
    70 s (maker): IS 104 - 100.5 + taker vs 103 - 100.5 + maker, i.e. replacing saves 1 USD / 100.5 + 3 bps."""
    task = hand_task(flat_book(moves={40: 3.0}), tape((70, 102.5, 1, -1)))
    keep, _ = run_episodes(task, [0], HeldOffset(-bps(0.5)), DT)  # the touch, 100, held
    peg, trajectory = run_episodes(task, [0], PegToBest(), DT)
    k, p = keep.outcomes(), peg.outcomes()
    assert k.cleanup[0, 0] and k.exec_price[0, 0] == 104.0 and k.fee_bps[0, 0] == TAKER
    assert k.is_bps[0, 0] == pytest.approx(bps(104.0 - MID) + TAKER)
    assert p.filled[0, 0] and p.fill_price[0, 0] == 103.0 and p.fee_bps[0, 0] == MAKER
    assert p.time_to_fill_s[0, 0] == pytest.approx(60.0) and peg.n_orders[0] == 2
    assert p.is_bps[0, 0] == pytest.approx(bps(103.0 - MID) + MAKER)
    assert peg.rewards()[0] - keep.rewards()[0] == pytest.approx(bps(1.0) + TAKER - MAKER)
    kinds = [int(a.kind[0]) for _, a in trajectory]
    assert kinds[:5] == [Act.REPLACE, Act.KEEP, Act.KEEP, Act.REPLACE, Act.KEEP]  # steps at 10, 20, 30, 40, 50 s
    at_20, at_40 = trajectory[1][0], trajectory[3][0]
    assert at_20.working_px[0] == 100.0 and at_20.queue_ahead_qty[0] == 1.0  # the best bid's size: all may be ahead
    assert at_20.working_offset_bps[0] == pytest.approx(-bps(0.5)) and at_20.mid_move_bps[0] == 0.0
    assert at_40.touch_px[0] == 103.0 and at_40.working_px[0] == 100.0 and at_40.mid_move_bps[0] == pytest.approx(
        bps(3.0))
    assert np.isnan(at_40.queue_ahead_qty[0])  # 100 is below the deepest visible bid (102): unknown


@pytest.mark.parametrize(("print_s", "stands"), [(30.010, True), (30.030, False)])
def test_a_fill_inside_the_cancel_latency_stands(print_s, stands):
    """Resting buy 0.5 at 100 from t0 = 10 s; a sell prints at 99.5 just after the step at t = 30 s, where the agent
    crosses. At 30.010 s the fill beats the cancel (which arrives at 30.020 s): the parent is done at 100 (maker) and
    the market order is cut to nothing. At 30.030 s the cancel was first: the market order buys at the ask 101."""
    task = hand_task(flat_book(), tape((print_s, 99.5, 1, -1)))
    def policy(s: StepState) -> Actions:  # the touch at 10 s, CROSS at 30 s
        return Actions.of(Act.CROSS if s.step == 2 else Act.REPLACE if s.step == 0 else Act.KEEP, -bps(0.5))

    episodes, trajectory = run_episodes(task, [0], policy, DT)
    assert trajectory[2][0].working_qty[0] == 0.5  # at 30 s the fill has not happened yet: the order still works
    out = episodes.outcomes()
    assert out.filled[0, 0] and not out.cleanup[0, 0] and len(trajectory) == 3
    if stands:
        assert out.exec_price[0, 0] == 100.0 and out.fee_bps[0, 0] == MAKER and episodes.n_orders[0] == 1
    else:
        assert out.exec_price[0, 0] == 101.0 and out.fee_bps[0, 0] == TAKER and episodes.n_orders[0] == 2
        assert out.time_to_fill_s[0, 0] == pytest.approx(20.020)  # the market order at 30.020 s


def test_a_split_order_is_not_cancelled():
    """Buy 2 at limit 101 at t0 = 10 s: 1 is taken at the ask 101 (only 1 is visible within the limit), the other 1
    rests at 101 (fills.py rule 3). The CROSS at 20 s cannot cancel a taker part that is done: the order works on
    and is the one-shot order (here cleaned up at T at the ask 101)."""
    task = hand_task(flat_book(), tape((300, 101.0, 0.1, 1)), qty=2.0)  # no print below 101 in the horizon

    def policy(s: StepState) -> Actions:
        return Actions.of(Act.REPLACE if s.step == 0 else Act.CROSS, bps(0.5))

    episodes, trajectory = run_episodes(task, [0], policy, DT)
    _, want = task.score_prices(np.array([0]), np.array([[101.0]]))
    assert all(same(getattr(episodes.outcomes(), f), getattr(want, f)) for f in FIELDS)
    assert want.marketable[0, 0] and want.depth_short[0, 0] and want.cleanup[0, 0]
    assert episodes.n_orders[0] == 1 and len(trajectory) == DT.n_steps(HORIZON_S)


def test_quantity_left_unworked_is_cleaned_up_at_the_horizon():
    """A child of 0.2 of the 0.5 parent rests at 100 from t0 = 10 s and fills at the print at 99 (t = 20 s); the 0.3
    never worked does not fill from that print and is cleaned up at T = 130 s at the ask 104 (the book moved up 3 at
    40 s): exec 0.4 * 100 + 0.6 * 104, fee 0.4 maker + 0.6 taker."""
    task = hand_task(flat_book(moves={40: 3.0}), tape((20, 99.0, 1, -1)))
    policy = lambda s: Actions.of(np.full(1, Act.REPLACE if s.step == 0 else Act.KEEP), -bps(0.5), 0.2)  # noqa: E731
    episodes, trajectory = run_episodes(task, [0], policy, DT)
    assert trajectory[1][0].remaining_qty[0] == pytest.approx(0.3)  # the child's fill is known at the 20-s step
    assert trajectory[1][0].is_bps[0] == pytest.approx(0.4 * (bps(100.0 - MID) + MAKER))  # of the parent
    out = episodes.outcomes()
    assert out.cleanup[0, 0] and not out.filled[0, 0] and episodes.n_orders[0] == 1
    assert out.exec_price[0, 0] == pytest.approx(0.4 * 100.0 + 0.6 * 104.0)
    assert out.fee_bps[0, 0] == pytest.approx(0.4 * MAKER + 0.6 * TAKER)
    assert out.is_bps[0, 0] == pytest.approx(bps(0.4 * 100.0 + 0.6 * 104.0 - MID) + 0.4 * MAKER + 0.6 * TAKER)


class TwoDays:
    """A :class:`~hyperdapo.execution.tape.DayLoader` stand-in: ``market`` cut into two days at ``cut_s``."""

    def __init__(self, market: MarketData, cut_s: float):
        i, j = (int(np.searchsorted(ts, cut_s * S)) for ts in (market.book.ts_us, market.trades.ts_us))
        self.parts = [take_rows(market, slice(0, i), slice(0, j)), take_rows(market, slice(i, None), slice(j, None))]
        self.days = [((Path(f"day{k}"),), ()) for k in range(2)]
        self.span_us = (int(market.book.ts_us[0]), int(market.book.ts_us[-1]))

    def __call__(self, k: int) -> MarketData:
        return self.parts[k]


def test_episodes_on_a_day_by_day_tape_equal_the_memory_tape_across_midnight():
    """A parent from 200 s to 320 s on a market cut into days at 250 s: every state and outcome of a pegged episode is
    the same on the day-by-day tape (book_at and simulate per day window) as on the whole market."""
    whole = hand_task(flat_book(moves={240: 3.0, 262: 2.0}), tape((275, 101.5, 1, -1)), t0_s=200.0)
    days = TwoDays(whole.tape.market, 250.0)
    by_day = replace(whole, tape=DayTape(days, 60 * S, 200 * S, np.array([p.book.ts_us[0] for p in days.parts])))
    (a, steps_a), (b, steps_b) = (run_episodes(t, [0], PegToBest(), DT) for t in (whole, by_day))
    for (s0, _), (s1, _) in zip(steps_a, steps_b, strict=True):
        assert all(same(getattr(s0, f.name), getattr(s1, f.name)) for f in fields(StepState))
    assert all(same(getattr(a.outcomes(), f), getattr(b.outcomes(), f)) for f in FIELDS)
    # bid 100, 103 from 240 s, 102 from 262 s: pegged at 200, 240 and 270 s (across midnight), filled at 275 s
    assert a.n_orders[0] == 3 and a.outcomes().fill_price[0, 0] == 102.0
    t = np.array([260, 10, 249, 250, 499]) * S
    assert all(same(getattr(by_day.tape.book_at(t), f), getattr(whole.tape.book_at(t), f))
               for f in ("ts_us", "bid_px", "bid_sz", "ask_px", "ask_sz"))


# ---------------------------------------------------------------------------------------------- causality
def after(market: MarketData, cut_us: int) -> MarketData:
    """``market`` with every snapshot and trade after ``cut_us`` moved: prices up 0.5 %, sizes doubled."""
    b, t = market.book, market.trades
    late_b, late_t = (b.ts_us > cut_us)[:, None], t.ts_us > cut_us
    book = BookSnapshots(b.ts_us, b.local_ts_us, np.where(late_b, b.bid_px * 1.005, b.bid_px),
                         np.where(late_b, b.bid_sz * 2, b.bid_sz), np.where(late_b, b.ask_px * 1.005, b.ask_px),
                         np.where(late_b, b.ask_sz * 2, b.ask_sz))
    trades = Trades(t.ts_us, t.local_ts_us, np.where(late_t, t.price * 1.005, t.price), t.amount, t.side)
    return MarketData(market.asset, book, trades)


def deep_peg(s: StepState) -> Actions:
    """Re-priced every step 2 bps behind the touch: a cancel and an order at every step, rarely filled."""
    return Actions.of(Act.REPLACE, s.touch_offset_bps - 2.0)


@pytest.mark.slow  # builds the synthetic task
@pytest.mark.parametrize("policy", [PegToBest(), TWAP(), deep_peg], ids=["peg", "twap", "deep_peg"])
def test_a_steps_state_reads_the_market_up_to_its_time_only(task, policy):
    """The market after step k's time t_k is moved; every state at steps <= k (and the actions taken on them) is
    unchanged, the state after it is not (when the episode lasts that long)."""
    k = 4
    changed = 0
    for i in task.split_index(Split.TRAIN)[20:26]:
        t_k = int(task.decisions.ts_us[i]) + k * DT.dt_us
        moved = replace(task, tape=MemoryTape(after(task.tape.market, t_k)))
        _, base = run_episodes(task, [i], policy, DT)
        _, other = run_episodes(moved, [i], policy, DT)
        for (s0, a0), (s1, a1) in list(zip(base, other, strict=False))[:k + 1]:
            for f in fields(StepState):
                assert same(getattr(s0, f.name), getattr(s1, f.name)), (i, s0.step, f.name)
            assert same(a0.kind, a1.kind) and same(a0.offset_bps, a1.offset_bps) and same(a0.qty, a1.qty)
        changed += len(base) != len(other) or (len(base) > k + 1 and not same(base[k + 1][0].mid_usd,
                                                                            other[k + 1][0].mid_usd))
    assert changed > 0 or policy == PegToBest()  # the move is visible from the next step on (pegged orders fill
    # early on this market)


# ---------------------------------------------------------------------------------------------- baselines
@pytest.mark.slow  # builds the synthetic task
@pytest.mark.parametrize("policy", [TouchThenCross(30.0), PegToBest(), TWAP(), AlmgrenChriss(), AlmgrenChriss(0.02),
                                    HeldOffset(-5.0)], ids=lambda p: repr(p))
def test_baselines_give_valid_actions_and_finish_the_parent_by_the_horizon(task, policy):
    idx = np.arange(len(task.decisions))
    episodes, trajectory = run_episodes(task, idx, policy, DT)
    for s, a in trajectory:
        a.check(len(idx))  # valid kinds, REPLACE offsets finite, quantities > 0 or all
        assert np.isfinite(s.touch_offset_bps).all() and (s.touch_offset_bps < 0).all()
    assert len(trajectory) <= DT.n_steps(HORIZON_S)
    out = episodes.outcomes()
    assert (episodes.remaining == 0).all() and np.allclose(episodes.share, 1.0, rtol=0, atol=1e-12)
    assert (out.fill_ts_us[:, 0] <= task.decisions.ts_us[idx] + int(HORIZON_S * S)).all()
    assert np.isfinite(out.is_bps).all() and np.isfinite(episodes.rewards()).all()
    if isinstance(policy, AlmgrenChriss | TouchThenCross):  # they cross before T: never a cleanup
        assert not out.cleanup.any()
    if isinstance(policy, AlmgrenChriss):  # before step k, 1 - x(t_k) / Q of the parent is done, to a lot (1e-5 BTC)
        for s, _ in trajectory[1:]:
            want = 1.0 - policy.remaining_share(s.step * s.dt_s, s.horizon_s)
            np.testing.assert_allclose(s.executed_qty / s.parent_qty, want, atol=1e-5 / s.parent_qty.min())
            assert want >= s.step / s.n_steps - 1e-12  # linear when risk-neutral, front-loaded with kappa > 0


def test_actions_and_config_are_checked():
    with pytest.raises(ValueError, match="Act values"):
        Actions.of(7).check(1)
    with pytest.raises(ValueError, match="REPLACE needs a finite offset_bps"):
        Actions.of(Act.REPLACE).check(1)
    with pytest.raises(ValueError, match="qty must be > 0"):
        Actions.of(Act.CROSS, qty=-1.0).check(1)
    with pytest.raises(ValueError, match=r"sequential.dt_s=7 does not divide decisions.horizon_s=120"):
        SequentialConfig(dt_s=7).n_steps(120.0)
    with pytest.raises(ValueError, match="sequential.dt_s"):
        SequentialConfig(dt_s=0.0)
    ep = SequentialEpisodes(hand_task(flat_book(), None), [0], DT)
    with pytest.raises(RuntimeError, match="step them to the end"):
        ep.outcomes()


# ---------------------------------------------------------------------------------------------- gymnasium, PPO
@pytest.mark.slow  # builds the synthetic task
def test_gymnasium_check_env_passes_and_the_env_is_the_episode(task):
    env = ExecutionEnv(task, Split.TRAIN, DT, GRID_BPS)
    check_env(env, skip_render_check=True)
    made = gym.make(ENV_ID, task=task, split="val", cfg=DT, offset_grid_bps=GRID_BPS)
    obs, info = made.reset(seed=3)
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32 and info["decision"] in set(task.split_index("val"))
    # REPLACE at GRID_BPS[1] then KEEP: the env's episode reward is the one-shot reward at that offset
    for i in task.split_index(Split.TRAIN)[:5]:
        env.reset(options={"decision": int(i)})
        obs, reward, terminated, truncated, info = env.step(2 + 1)
        steps = 1
        while not terminated:
            assert reward == 0.0 and not truncated
            obs, reward, terminated, truncated, info = env.step(0)
            steps += 1
        want, _ = task.score_offsets(np.array([i]), np.array([[GRID_BPS[1]]]))
        assert reward == want[0, 0] and steps <= DT.n_steps(HORIZON_S) and env.observation_space.contains(obs)
        with pytest.raises(RuntimeError, match="before reset"):
            env.step(0)


@pytest.mark.slow  # builds the synthetic task
def test_ppo_trains_on_the_sequential_env(task):
    cfg = replace(PPOConfig(), n_envs=2, n_steps=64, batch_size=64, n_epochs=2, total_timesteps=256,
                  offset_grid_bps=GRID_BPS)
    model = train_sequential_ppo(task, cfg, DT, seed=0)
    assert model.num_timesteps >= 256
    val = task.split_index(Split.VAL)
    episodes, trajectory = run_episodes(task, val, ppo_policy(model, task, val, GRID_BPS), DT)
    assert (episodes.remaining == 0).all() and np.isfinite(episodes.rewards()).all()
    assert all(np.isin(a.kind, [a.value for a in Act]).all() for _, a in trajectory)
