"""The fill simulator on hand-made tapes (numbers worked out in comments) and against the reference loop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hyperdapo.data.schema import BookSnapshots, Side, Trades
from hyperdapo.data.venues import load_venue
from hyperdapo.execution import fills, reference
from hyperdapo.execution.config import FillConfig
from hyperdapo.execution.fills import FIELDS

S = 1_000_000  # us per second
BID, ASK = 100.0, 101.0  # best levels; second levels 99 / 102
MID = 100.5
VENUE = load_venue("hyperliquid")  # latency 20 ms, fees below
TAKER, MAKER = VENUE.taker_fee_bps, VENUE.maker_fee_bps  # 4.5, 1.5 bps
CFG = FillConfig()


def simulate(*args, horizon_s: float = 300.0, adverse_horizon_s: float = 60.0):
    """The fast path with a 300-s horizon and a 60-s adverse-selection look unless told (the decisions' window)."""
    return fills.simulate(*args, horizon_s=horizon_s, adverse_horizon_s=adverse_horizon_s)


def reference_simulate(*args, horizon_s: float = 300.0, adverse_horizon_s: float = 60.0):
    return reference.reference_simulate(*args, horizon_s=horizon_s, adverse_horizon_s=adverse_horizon_s)


def flat_book(seconds: int = 500, bid=BID, ask=ASK, moves: dict[int, float] | None = None) -> BookSnapshots:
    """One snapshot per second; two levels a side (sizes 1 and 2); ``moves`` shifts the book by +x from second t."""
    shift = np.zeros(seconds)
    for t, x in (moves or {}).items():
        shift[t:] = x
    ts = np.arange(seconds, dtype=np.int64) * S
    bid_px = np.stack([bid + shift, bid - 1 + shift], axis=1)
    ask_px = np.stack([ask + shift, ask + 1 + shift], axis=1)
    sz = np.tile([1.0, 2.0], (seconds, 1))
    return BookSnapshots(ts, ts, bid_px, sz.copy(), ask_px, sz.copy())


def tape(*rows: tuple[float, float, float, int]) -> Trades:
    """rows of (time s, price, amount, taker side)."""
    t = np.array([r[0] for r in rows]) * S
    return Trades(t.astype(np.int64), t.astype(np.int64), np.array([r[1] for r in rows], dtype=float),
                  np.array([r[2] for r in rows], dtype=float), np.array([r[3] for r in rows], dtype=np.int8))


def one(book, trades, px, side=Side.BUY, qty=0.5, t0=10.0, cfg=CFG, venue=VENUE, sim=simulate, horizon_s=300.0):
    out = sim(book, trades, np.array([int(t0 * S)]), np.array([side]), np.array([[px]]), np.array([qty]), cfg,
              venue, horizon_s=horizon_s)
    return {f: getattr(out, f)[0, 0] for f in FIELDS} | {"mid": out.arrival_mid[0]}


def bps(x: float) -> float:
    return x / MID * 1e4


def test_marketable_buy_walks_two_levels():
    # buy 2 with limit 102: 1 @ 101 + 1 @ 102 -> avg 101.5, taker fee, at placement (20 ms)
    o = one(flat_book(), tape((50, 100, 1, -1)), 102.0, qty=2.0)
    assert o["filled"] and o["marketable"] and not o["cleanup"]
    assert o["fill_price"] == pytest.approx(101.5) and o["fee_bps"] == TAKER
    assert o["time_to_fill_s"] == pytest.approx(0.020)
    assert o["is_bps"] == pytest.approx(bps(101.5 - MID) + TAKER)
    assert o["price_improvement_bps"] == pytest.approx(-bps(1.0))


def test_trade_through_fills_a_resting_buy_at_its_price():
    # resting buy at 100 (the best bid); a sell prints at 99 at t=70 s -> filled at 100 after 60 s, maker fee
    o = one(flat_book(), tape((40, 101, 1, 1), (70, 99, 1, -1)), 100.0)
    assert o["filled"] and not o["marketable"]
    assert o["time_to_fill_s"] == pytest.approx(60.0) and o["fill_price"] == 100.0 and o["fee_bps"] == MAKER
    assert o["is_bps"] == pytest.approx(bps(100.0 - MID) + MAKER)  # negative price part: better than mid
    assert o["price_improvement_bps"] == pytest.approx(bps(0.5))


def test_trade_at_the_price_needs_the_queue_model_and_volume_beyond_the_queue():
    trades = tape((30, 100, 0.6, -1), (40, 100, 0.6, -1))  # 1.2 printed at 100; queue ahead = 1 (visible bid)
    assert not one(flat_book(), trades, 100.0)["filled"]  # trade-through rule: no print strictly below 100
    queue = replace(CFG, queue_model="conservative")
    o = one(flat_book(), trades, 100.0, cfg=queue)
    assert o["filled"] and o["time_to_fill_s"] == pytest.approx(30.0)  # 0.6 <= 1 at t=30; 1.2 > 1 at t=40
    # a price that is not a visible level has no queue ahead: the first print at it fills
    o = one(flat_book(), tape((30, 99.5, 0.1, -1)), 99.5, cfg=queue)
    assert o["filled"] and o["time_to_fill_s"] == pytest.approx(20.0)


@pytest.mark.parametrize("sim", [simulate, reference_simulate])
def test_queue_exactly_consumed_is_not_a_fill_in_lots(sim):
    # queue ahead 0.3 at the bid 100; prints at 100 of 0.1 (t=30) and 0.2 (t=40) consume it exactly (in floats
    # 0.1 + 0.2 = 0.30000000000000004 > 0.3 filled it); a further 0.1 at t=50 exceeds it -> filled at t=50
    book = flat_book()
    book.bid_sz[:, 0] = 0.3
    queue = replace(CFG, queue_model="conservative")

    def run(trades):
        out = sim(book, trades, np.array([10 * S]), np.array([Side.BUY]), np.array([[100.0]]), np.array([0.5]), queue,
                  VENUE)
        return out.filled[0, 0], out.time_to_fill_s[0, 0]

    assert not run(tape((30, 100, 0.1, -1), (40, 100, 0.2, -1)))[0]
    filled, ttf = run(tape((30, 100, 0.1, -1), (40, 100, 0.2, -1), (50, 100, 0.1, -1)))
    assert filled and ttf == pytest.approx(40.0)


def test_never_filled_is_cleaned_up_at_the_horizon_book():
    # buy at 95, market rises by 3 at t=200 s and nothing prints below 95 -> cleanup at the horizon's ask 104
    o = one(flat_book(moves={200: 3.0}), tape((100, 101, 1, 1)), 95.0)
    assert not o["filled"] and o["cleanup"] and np.isnan(o["price_improvement_bps"])
    assert o["exec_price"] == 104.0 and o["fee_bps"] == TAKER
    assert o["is_bps"] == pytest.approx(bps(104.0 - MID) + TAKER)
    assert np.isnan(o["adverse_selection_bps"])


def test_latency_window():
    # decision at 10 s, placement at 10.020 s: a print at 10.010 s is too early, one at 10.030 s fills
    early = one(flat_book(), tape((10.010, 99, 1, -1)), 100.0)
    late = one(flat_book(), tape((10.030, 99, 1, -1)), 100.0)
    assert not early["filled"] and late["filled"] and late["time_to_fill_s"] == pytest.approx(0.030)


def test_book_only_rule_and_adverse_selection_sign():
    # no trades: the buy at 100 fills when a later snapshot's best ask is <= 100 (book drops by 1 at t=50)
    book = flat_book(moves={50: -1.0, 80: -3.0})
    o = one(book, None, 100.0)
    assert o["filled"] and o["time_to_fill_s"] == pytest.approx(40.0)
    # 60 s after the fill (t=110) the mid is 100.5 - 3 = 97.5, below the fill price 100: adverse, positive
    assert o["adverse_selection_bps"] == pytest.approx(bps(100.0 - 97.5))


def test_sells_mirror_buys():
    # resting sell at 101 (best ask) fills when a buy prints above 101
    o = one(flat_book(), tape((70, 102, 1, 1)), 101.0, side=Side.SELL)
    assert o["filled"] and o["fill_price"] == 101.0
    assert o["is_bps"] == pytest.approx(-bps(101.0 - MID) + MAKER)
    # marketable sell at 99 walks the bids: 1 @ 100 + 1 @ 99
    o = one(flat_book(), None, 99.0, side=Side.SELL, qty=2.0)
    assert o["marketable"] and o["fill_price"] == pytest.approx(99.5)
    assert o["is_bps"] == pytest.approx(-bps(99.5 - MID) + TAKER)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="before the first book snapshot"):
        one(flat_book(), None, 100.0, t0=-1.0)
    with pytest.raises(ValueError, match="horizon"):
        one(flat_book(seconds=200), None, 100.0)
    for key, value in (("impact_window_s", 0.0), ("queue_model", "fifo"), ("fill_rule", "cross"),
                       ("latency", {"low_ms": 5.0}), ("latency", {"_target_": "hyperdapo.execution.latency.Nowhere"}),
                       ("latency", {"_target_": "hyperdapo.execution.latency.UniformLatency", "low_ms": 60.0})):
        with pytest.raises(ValueError, match=f"execution.{key}"):
            FillConfig(**{key: value})
    for key, value in (("latency_ms", -1.0), ("taker_fee_bps", np.inf), ("tick_rule", "round")):
        with pytest.raises(ValueError, match=f"venue.{key}"):
            replace(VENUE, **{key: value})


def random_market(rng, seconds=900, m=3000):
    """A random walk book on a 1.0 grid with random sizes and a random tape of ``m`` trades on the same grid."""
    steps = np.cumsum(rng.integers(-1, 2, seconds))
    bid0 = 1000.0 + steps
    spread = rng.integers(1, 3, seconds)
    levels = np.arange(5)
    ts = np.arange(seconds, dtype=np.int64) * S
    bid_px = bid0[:, None] - levels
    ask_px = (bid0 + spread)[:, None] + levels
    book = BookSnapshots(ts, ts, bid_px, rng.uniform(0.1, 2, (seconds, 5)), ask_px, rng.uniform(0.1, 2, (seconds, 5)))
    t = np.sort(rng.integers(0, seconds * S, m))
    i = np.searchsorted(ts, t, side="right") - 1
    buy = rng.random(m) < 0.5
    price = np.where(buy, ask_px[i, 0], bid_px[i, 0]) + rng.integers(-1, 2, m) * (rng.random(m) < 0.2)
    trades = Trades(t, t, price.astype(float), rng.uniform(0.01, 1.5, m), np.where(buy, 1, -1).astype(np.int8))
    return book, trades


@pytest.mark.parametrize("fill_rule", ["trade_through", "touch"])
@pytest.mark.parametrize("queue", ["none", "conservative", "capped"])
@pytest.mark.parametrize("book_only", [False, True])
@pytest.mark.parametrize(("n_trades", "horizon_s"), [(3000, 300), (300, 20)], ids=["dense", "sparse"])
@pytest.mark.parametrize("latency", ["venue", "uniform"])
def test_fast_path_equals_reference_loop(fill_rule, queue, book_only, n_trades, horizon_s, latency):
    rng = np.random.default_rng(7)
    book, trades = random_market(rng, m=n_trades)
    d, k = 40, 6
    ts = rng.integers(0, 500 * S, d)
    side = np.where(rng.random(d) < 0.5, 1, -1)
    mid = book.mid[np.searchsorted(book.ts_us, ts, side="right") - 1]
    px = np.round(mid[:, None] + side[:, None] * rng.integers(-6, 4, (d, k)))  # passive, at-the-touch, marketable
    px[:, 0] = side * np.inf  # market orders
    qty = rng.uniform(0.1, 12.0, d)  # some exceed the visible depth (impact-priced rest)
    # the venue's constant latency, or a per-decision delay of 0-3 s (wide, so that placements differ by snapshots)
    uniform = {"_target_": "hyperdapo.execution.latency.UniformLatency", "low_ms": 0.0, "high_ms": 3000.0}
    cfg = FillConfig(fill_rule=fill_rule, queue_model=queue, **({"latency": uniform} if latency == "uniform" else {}))
    venue = replace(VENUE, latency_ms=float(rng.integers(5, 50)))
    tr = None if book_only else trades
    fast = simulate(book, tr, ts, side, px, qty, cfg, venue, horizon_s=horizon_s)
    slow = reference_simulate(book, tr, ts, side, px, qty, cfg, venue, horizon_s=horizon_s)
    np.testing.assert_allclose(fast.arrival_mid, slow.arrival_mid)
    for f in FIELDS:
        np.testing.assert_allclose(getattr(fast, f).astype(float), getattr(slow, f).astype(float), rtol=1e-12,
                                   atol=1e-9, equal_nan=True, err_msg=f)
    assert fast.filled.any() and fast.cleanup.any() and fast.marketable.any()  # every path exercised
    assert (fast.depth_short & fast.marketable).any() and (fast.depth_short & fast.cleanup).any()
    split = fast.marketable & fast.depth_short & np.isfinite(px)  # limit orders whose remainder rested (rule 3)
    assert (split & fast.filled).any()
    if n_trades == 300:  # on the dense tape a print through the remainder's price always comes within 300 s
        assert (split & fast.cleanup).any()


def one_level_book(seconds: int = 500) -> BookSnapshots:
    """A quotes-like book: one level a side of 1 coin, spread 0.02; the mid alternates 100.00 / 100.01 each second."""
    ts = np.arange(seconds, dtype=np.int64) * S
    mid = 100.0 + 0.01 * (np.arange(seconds) % 2)
    sz = np.ones((seconds, 1))
    return BookSnapshots(ts, ts, (mid - 0.01)[:, None], sz.copy(), (mid + 0.01)[:, None], sz.copy())


@pytest.mark.parametrize("sim", [simulate, reference_simulate])
def test_beyond_the_visible_book_the_square_root_impact_prices_the_rest(sim):
    # window 60 s: the 59 returns between snapshots 41..100 (before the placement at 100.02 s, and likewise before
    # the horizon at 400 s) are each +-ln(100.01 / 100), so sigma = 1e4 * sqrt(59) * ln(1.0001) = 7.68 bps
    cfg = FillConfig(impact_window_s=60)
    book = one_level_book()
    sigma_bps = 1e4 * np.sqrt(59) * np.log(100.01 / 100.0)
    qty = 10.0  # 10x the top size

    def order(trades, px):
        out = sim(book, trades, np.array([100 * S]), np.array([Side.BUY]), np.array([[px]]), np.array([qty]), cfg,
                  VENUE)
        return {f: getattr(out, f)[0, 0] for f in FIELDS}

    # a market order (limit +inf) at placement (mid 100.00): 1 @ 100.01, the other 9 at the impact price; V = the
    # 40 coins traded in the window: dp = 7.68 * sqrt(10 / 40) = 3.84 bps -> 100.0384; IS = 3.56 bps + taker fee
    volume = tape(*((50 + k, 100.01, 5.0, 1) for k in range(8)))
    market = order(volume, np.inf)
    rest = 100.0 * (1 + sigma_bps * np.sqrt(qty / 40.0) / 1e4)
    assert market["marketable"] and market["depth_short"]
    assert market["fill_price"] == pytest.approx((100.01 + 9 * rest) / 10, rel=1e-9)
    assert market["is_bps"] == pytest.approx(((100.01 + 9 * rest) / 10 / 100.0 - 1) * 1e4 + TAKER, rel=1e-6)
    assert 5 < market["is_bps"] < 10  # was +500 bps on the 9 uncovered coins
    # the cleanup at the horizon follows the same rule; book-only data: V = the visible depth, 1 coin:
    # dp = 7.68 * sqrt(10) = 24.3 bps -> 100.243 for 9 coins; IS = 22.0 bps + taker fee
    cleanup = order(None, 99.0)
    rest = 100.0 * (1 + sigma_bps * np.sqrt(qty / 1.0) / 1e4)
    assert cleanup["cleanup"] and cleanup["depth_short"]
    assert cleanup["exec_price"] == pytest.approx((100.01 + 9 * rest) / 10, rel=1e-9)
    assert 20 < cleanup["is_bps"] < 30
    # within the visible book nothing changes: 1 coin at the ask, not depth-short
    small = sim(book, volume, np.array([100 * S]), np.array([Side.BUY]), np.array([[np.inf]]), np.array([1.0]), cfg,
                VENUE)
    assert small.fill_price[0, 0] == 100.01 and not small.depth_short[0, 0]


def test_the_impact_price_is_never_better_than_the_last_level():
    # the flat two-level book never moves (sigma = 0, impact price = the mid): the rest fills at the last level
    o = one(flat_book(), None, np.inf, qty=5.0)  # 1 @ 101 + 2 @ 102 + 2 at max(impact = mid, last level 102)
    assert o["depth_short"] and o["fill_price"] == pytest.approx((101 + 2 * 102 + 2 * 102) / 5)


@pytest.mark.parametrize("sim", [simulate, reference_simulate])
def test_touch_fills_when_the_ask_reaches_the_price_without_a_trade(sim):
    # buy 0.5 at 100 (the best bid), decision at 10 s, horizon 120 s; the book drops by 1 for the second 50 only
    # (ask 100 <= 100); the only print is a buy at the ask 101 at 30 s: nothing trades at or below 100
    book, trades = flat_book(moves={50: -1.0, 51: 0.0}), tape((30, 101, 1, 1))
    o = one(book, trades, 100.0, cfg=replace(CFG, fill_rule="touch"), sim=sim, horizon_s=120)
    assert o["filled"] and not o["marketable"] and not o["cleanup"]
    assert o["fill_ts_us"] == 50 * S and o["time_to_fill_s"] == 40.0 and o["fill_price"] == 100.0
    assert o["fee_bps"] == pytest.approx(MAKER)
    # trade_through: no print below 100 -> cleanup at 130 s, ask 101
    o = one(book, trades, 100.0, cfg=CFG, sim=sim, horizon_s=120)
    assert not o["filled"] and o["cleanup"] and o["fill_ts_us"] == 130 * S and np.isnan(o["fill_price"])
    assert o["exec_price"] == pytest.approx(101.0) and o["fee_bps"] == TAKER


@pytest.mark.parametrize("sim", [simulate, reference_simulate])
def test_capped_queue_follows_the_level_shrinking(sim):
    # buy 0.5 at 100, queue ahead 1.0 (the visible bid); from 40 s the bid level shows 0.1; 0.2 prints at 100 at
    # 60 s. capped: min(1.0, 0.1) = 0.1 < 0.2 -> filled at 60 s at 100; conservative: 0.2 <= 1.0 -> not; none: not
    book = flat_book()
    book.bid_sz[40:, 0] = 0.1
    trades = tape((60, 100, 0.2, -1))
    o = one(book, trades, 100.0, cfg=replace(CFG, queue_model="capped"), sim=sim)
    assert o["filled"] and o["fill_ts_us"] == 60 * S and o["time_to_fill_s"] == 50.0 and o["fill_price"] == 100.0
    for queue in ("conservative", "none"):
        o = one(book, trades, 100.0, cfg=replace(CFG, queue_model=queue), sim=sim)
        assert not o["filled"] and o["cleanup"] and o["exec_price"] == pytest.approx(101.0)  # horizon ask 101
    capped = replace(CFG, queue_model="capped")
    # the level shrinks in the snapshot of the print's own time: that snapshot shows the book after the print,
    # so the print consumed the full queue (1.0 - 0.2 = 0.8), then the cap leaves 0.1; no later print -> no fill
    book = flat_book()
    book.bid_sz[60:, 0] = 0.1
    assert not one(book, trades, 100.0, cfg=capped, sim=sim)["filled"]
    assert one(book, tape((60, 100, 0.2, -1), (61, 100, 0.2, -1)), 100.0, cfg=capped, sim=sim)["time_to_fill_s"] \
        == 51.0
    # a level beyond the visible book is unknown, not empty: buy 0.5 at 99 (queue 2.0); the book rises by 2 over
    # 40..49 s (bids 102 / 101: 99 is out of view) and comes back; 0.5 prints at 99 at 60 s: 0.5 <= 2.0, no fill
    book = flat_book(moves={40: 2.0, 50: 0.0})
    o = one(book, tape((60, 99, 0.5, -1)), 99.0, cfg=capped, sim=sim)
    assert not o["filled"]


@pytest.mark.parametrize("sim", [simulate, reference_simulate])
def test_a_marketable_limit_beyond_the_visible_book_rests_its_remainder(sim):
    # buy 4 with limit 102 at 10 s: the asks within 102 hold 1 @ 101 + 2 @ 102 = 3 coins (305 USD, taker fee);
    # the remaining 1 coin rests at 102 (maker fee if it fills)
    qty = 4.0
    # a sell prints at 101 (through 102) at 70 s: the rest fills at 102 -> (305 + 102) / 4 = 101.75,
    # fee (3 * 4.5 + 1 * 1.5) / 4 = 3.75 bps, the whole quantity done 60 s after the decision
    o = one(flat_book(), tape((70, 101, 1, -1)), 102.0, qty=qty, sim=sim)
    assert o["filled"] and o["marketable"] and o["depth_short"] and not o["cleanup"]
    assert o["fill_ts_us"] == 70 * S and o["time_to_fill_s"] == 60.0
    assert o["fill_price"] == o["exec_price"] == 101.75
    assert o["fee_bps"] == pytest.approx((3 * TAKER + MAKER) / 4) == 3.75
    assert o["is_bps"] == pytest.approx(bps(101.75 - MID) + 3.75)
    assert o["price_improvement_bps"] == pytest.approx(-bps(101.75 - MID))
    # nothing prints through 102 and the book rises by 3 at 200 s: the rest is cleaned up at the horizon (310 s)
    # at the ask 104 -> (305 + 104) / 4 = 102.25, all taker (was 101.75 at once: the rest filled at the limit)
    o = one(flat_book(moves={200: 3.0}), tape((70, 102, 1, 1)), 102.0, qty=qty, sim=sim)
    assert o["marketable"] and o["cleanup"] and o["depth_short"] and not o["filled"]
    assert o["fill_ts_us"] == 310 * S and np.isnan(o["fill_price"]) and np.isnan(o["time_to_fill_s"])
    assert o["exec_price"] == 102.25 and o["fee_bps"] == TAKER
    assert o["is_bps"] == pytest.approx(bps(102.25 - MID) + TAKER)
    assert np.isnan(o["price_improvement_bps"]) and np.isnan(o["adverse_selection_bps"])
