"""A synthetic Hyperliquid market that writes Tardis.dev files, so no later stage can tell it from real data.

The model (one step = one snapshot interval ``dt``, default 1 s; prices in USD, volatility in bps):

- **Latent order-flow signal** ``s_t``: an Ornstein-Uhlenbeck process with time constant ``signal_tau_s``
  and unit stationary variance, ``s_{t+1} = phi s_t + sqrt(1 - phi^2) xi_t``, ``phi = exp(-dt / tau)``.
- **Volatility**: a two-state Markov regime (calm / volatile, mean durations ``calm_minutes`` and
  ``volatile_minutes``; the volatile state multiplies volatility by ``volatile_vol_mult``) times a log-vol
  AR(1) ``h_t`` (persistence ``logvol_persistence`` per step, stationary std ``logvol_std``), so volatility
  clusters: ``sigma_t = vol_bps_per_s * sqrt(dt) * regime_t * exp(h_t)`` in bps per step.
- **Mid**: log-price ``x_{t+1} = x_t + sigma_t (alpha s_t + eps_t) / 1e4 - kappa (x_t - x_centre) dt``, with
  ``alpha = signal_strength`` and weak mean reversion (``kappa`` from ``reversion_half_life_h``) to the
  centre of the asset's price range, so prices stay near the asset's range over days. The expected move
  over the next ``k`` steps given ``s_t`` is ``alpha sigma s_t (1 - phi^k) / (1 - phi)``: that is the
  short-horizon information a state-dependent policy can use. ``signal_strength = 0`` removes it.
- **Book**: best bid ``floor(mid / tick - spread_ticks / 2)`` ticks, ask = bid + spread; the spread is one
  tick most of the time (BTC's usual book), plus geometric extra ticks that are more frequent in the
  volatile regime. ``n_levels`` levels a side, one tick apart, never crossed. Level sizes are log-normal
  around ``depth_usd_per_level`` (growing with depth); the top ``imbalance_levels`` bid sizes are scaled by
  ``exp(+imbalance_gain * o_t)`` and ask sizes by ``exp(-imbalance_gain * o_t)``, where the observed
  signal ``o_t = s_t + imbalance_noise * nu_t``: order-book imbalance carries noisy information about
  ``s_t`` and hence about the next moves.
- **Trades**: counts per step from a discrete Hawkes process, intensity
  ``lambda_t = trade_rate_per_s * dt * regime_rate_t + excitation_t``, where each trade adds
  ``hawkes_alpha`` to the excitation, which decays by ``exp(-dt / hawkes_tau_s)`` per step (branching ratio
  ``hawkes_alpha / (1 - exp(-dt / hawkes_tau_s))`` must stay < 1). Taker side: buy with probability
  ``sigmoid(flow_gain * s_t)`` (trade flow carries the same information); sizes log-normal (heavy tail,
  ``trade_size_sigma``) around ``trade_usd_median``. A trade prints at the best ask (buy) or best bid
  (sell) of the snapshot in force; a trade larger than the visible best level prints at the deepest level
  it would reach (one print per trade; partial prints per level are not modelled).

Stress scenarios (``data.synthetic.scenario``, :mod:`hyperdapo.data.scenarios`): per-step multipliers of volatility,
book depth and trade intensity, a path added to the log mid, the spread's extra-tick probability, the taker-buy
probability and spoof walls, drawn from a random stream of their own; the default (none) is neutral and leaves every
number of the market bitwise unchanged.

Defaults give BTC about 0.7 bps/s calm volatility, about 3 trades per second and a clearly positive
correlation between top-5 imbalance and the next 30 s mid return (``python -m hyperdapo.data inspect``
measures it; tests check it is positive at the default and near zero with ``signal_strength=0``).

Files per UTC day, Tardis's default names and formats (``hyperliquid_<data_type>_<YYYY-MM-DD>_<SYM>.csv.gz``):
``book_snapshot_25``, ``trades`` and ``incremental_book_L2``. Deterministic by seed: the same config gives
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from hyperdapo.atomic import atomic_path
from hyperdapo.data.config import AssetConfig, SyntheticConfig
from hyperdapo.data.scenarios import ScenarioPaths, scenario_params
from hyperdapo.data.schema import BookSnapshots, BookUpdates, MarketData, Side, Trades
from hyperdapo.data.venues import Instrument, load_venue

US_PER_S = 1_000_000
SCENARIO_STREAM = 23  # the scenario's random stream: seeded apart from the market's, whose draws it never shifts
DATA_TYPES = ("book_snapshot_25", "trades", "incremental_book_L2")


@dataclass
class SyntheticMarket:
    """One simulated stretch: the book, the tape, the incremental updates and the latent signal."""

    asset: str
    book: BookSnapshots
    trades: Trades
    updates: BookUpdates
    signal: np.ndarray  # (N,) latent s_t per snapshot (diagnostics and tests only)
    volatile: np.ndarray  # (N,) bool regime per snapshot
    scenario: ScenarioPaths  # (N,) paths of the stress scenario (neutral without one)

    def market_data(self) -> MarketData:
        return MarketData(self.asset, self.book, self.trades)


def _hash_uniform(key: np.ndarray, salt: int) -> np.ndarray:
    """A deterministic uniform in (0, 1) per integer key (SplitMix64 finaliser)."""
    z = key.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _hash_normal(tick: np.ndarray, bucket: np.ndarray, salt: int) -> np.ndarray:
    """Standard normal noise that depends only on (price tick, time bucket): a level keeps its size until
    its bucket ends, so the incremental feed carries realistic, sparse changes (Box-Muller)."""
    key = tick * np.int64(1_000_003) + bucket
    u1, u2 = _hash_uniform(key, salt), _hash_uniform(key, salt + 7_919)
    return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


@numba.njit(cache=True)
def _latent_paths(xi, u_regime, eta, phi, p_calm_to_vol, p_vol_to_calm, h_phi, h_std):  # pragma: no cover
    n = len(xi)
    s = np.empty(n)
    volatile = np.zeros(n, dtype=np.bool_)
    h = np.empty(n)
    s[0], h[0] = xi[0], h_std * eta[0]
    for t in range(1, n):
        s[t] = phi * s[t - 1] + math.sqrt(1 - phi * phi) * xi[t]
        h[t] = h_phi * h[t - 1] + h_std * math.sqrt(1 - h_phi * h_phi) * eta[t]
        if volatile[t - 1]:
            volatile[t] = u_regime[t] >= p_vol_to_calm
        else:
            volatile[t] = u_regime[t] < p_calm_to_vol
    return s, volatile, h


@numba.njit(cache=True)
def _hawkes_counts(base, alpha, decay, seed):  # pragma: no cover
    np.random.seed(seed)
    n = len(base)
    counts = np.empty(n, dtype=np.int64)
    excite = 0.0
    for t in range(n):
        counts[t] = np.random.poisson(base[t] + excite)
        excite = decay * (excite + alpha * counts[t])
    return counts


def simulate_market(asset: AssetConfig, cfg: SyntheticConfig) -> SyntheticMarket:
    """Simulate ``cfg.n_days`` days from ``cfg.start_date`` 00:00 UTC (in memory)."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(asset.name.encode())])  # assets differ by seed
    dt_s = cfg.snapshot_interval_ms / 1000
    n = int(round(cfg.n_days * 86_400 / dt_s))
    start_us = int(dt.datetime.fromisoformat(cfg.start_date).replace(tzinfo=dt.UTC).timestamp()) * US_PER_S
    ts_us = start_us + np.arange(n, dtype=np.int64) * cfg.snapshot_interval_ms * 1000

    # latent signal, regime, log-vol
    phi = math.exp(-dt_s / cfg.signal_tau_s)
    s, volatile, h = _latent_paths(
        rng.standard_normal(n), rng.random(n), rng.standard_normal(n), phi,
        dt_s / (cfg.calm_minutes * 60), dt_s / (cfg.volatile_minutes * 60), cfg.logvol_persistence, cfg.logvol_std,
    )
    # the scenario's paths (neutral ones change no number: x * 1.0, x + 0.0 and np.where(NaN mask, x, .) are exact)
    paths = cfg.scenario_model(n, dt_s, s, np.random.default_rng([cfg.seed, zlib.crc32(asset.name.encode()),
                                                                  SCENARIO_STREAM]))
    if paths.wall_level >= cfg.n_levels:
        raise ValueError(f"data.synthetic.scenario.wall_level={paths.wall_level}: must be < data.synthetic.n_levels="
                         f"{cfg.n_levels}")
    sigma_bps = (cfg.vol_bps_per_s * math.sqrt(dt_s) * np.where(volatile, cfg.volatile_vol_mult, 1.0) * np.exp(h)
                 * paths.vol_mult)

    # mid: log-price random walk with signal drift and weak reversion to the range centre (AR(1) in x)
    centre = math.log(math.sqrt(asset.price_low_usd * asset.price_high_usd))
    kappa = math.log(2) / (cfg.reversion_half_life_h * 3600) * dt_s
    shocks = sigma_bps * (cfg.signal_strength * s + rng.standard_normal(n)) / 1e4
    x = np.empty(n)
    x0 = centre + rng.uniform(-0.3, 0.3) * math.log(asset.price_high_usd / asset.price_low_usd)
    x[0] = x0
    # x_t - centre = sum_k (1-kappa)^(t-k) shock_k: a linear filter, done exactly with a cumulative sum
    decay = (1 - kappa) ** np.arange(n)
    x[1:] = centre + (x0 - centre) * decay[1:] + decay[1:] * np.cumsum(shocks[:-1] / decay[:-1])
    mid_true = np.exp(x + paths.mid_offset_bps / 1e4)

    # book on the tick grid
    # the grid of the range (Hyperliquid's 5 significant figures): the synthetic market is a Hyperliquid perp
    tick = Instrument(load_venue("hyperliquid"), asset).tick_size(mid_true[0])
    p_extra = np.where(volatile, cfg.spread_extra_p_volatile, cfg.spread_extra_p_calm)
    p_extra = np.where(np.isnan(paths.spread_extra_p), p_extra, paths.spread_extra_p)
    spread_ticks = rng.geometric(1 - p_extra)  # 1 tick + geometric extra ticks
    bid0 = np.floor(mid_true / tick - spread_ticks / 2)  # in ticks
    levels = np.arange(cfg.n_levels)
    bid_ticks = bid0[:, None] - levels[None, :]
    ask_ticks = (bid0 + spread_ticks)[:, None] + levels[None, :]
    decimals = max(0, -int(math.floor(math.log10(tick))))
    bid_px, ask_px = np.round(bid_ticks * tick, decimals), np.round(ask_ticks * tick, decimals)

    lot = 10.0 ** -asset.sz_decimals
    depth_coins = cfg.depth_usd_per_level / math.exp(centre) * paths.depth_mult[:, None]  # (N, 1)
    bucket = (np.arange(n) * dt_s // cfg.size_refresh_s).astype(np.int64)[:, None]
    obs = s + cfg.imbalance_noise * rng.standard_normal(n)
    tilt = np.zeros((n, cfg.n_levels))
    tilt[:, : cfg.imbalance_levels] = cfg.imbalance_gain * obs[:, None]
    salt = int(rng.integers(2**31))
    bid_sz = np.maximum(np.round(depth_coins * np.exp(tilt + cfg.size_noise * _hash_normal(
        bid_ticks.astype(np.int64), bucket, salt)), asset.sz_decimals), lot)
    ask_sz = np.maximum(np.round(depth_coins * np.exp(-tilt + cfg.size_noise * _hash_normal(
        ask_ticks.astype(np.int64), bucket, salt + 1)), asset.sz_decimals), lot)
    for side_sign, sz in ((1, bid_sz), (-1, ask_sz)):  # spoof walls: one level wall_size_mult times its size
        wall = paths.wall_side == side_sign
        sz[wall, paths.wall_level] = np.round(sz[wall, paths.wall_level] * paths.wall_size_mult, asset.sz_decimals)
    lat_us = lambda k: (rng.uniform(1, cfg.latency_ms_max, k) * 1000).astype(np.int64)  # noqa: E731
    book = BookSnapshots(ts_us, ts_us + lat_us(n), bid_px, bid_sz, ask_px, ask_sz)

    # trades: Hawkes counts per step, uniform times within the step, side from the signal
    base = cfg.trade_rate_per_s * dt_s * np.where(volatile, cfg.volatile_rate_mult, 1.0) * paths.rate_mult
    counts = _hawkes_counts(base, cfg.hawkes_alpha, math.exp(-dt_s / cfg.hawkes_tau_s), int(rng.integers(2**31)))
    step = np.repeat(np.arange(n), counts)
    m = len(step)
    t_us = ts_us[step] + np.sort(rng.integers(0, cfg.snapshot_interval_ms * 1000, m)).astype(np.int64)
    t_us = np.sort(t_us)  # within a step the offsets are sorted; keep the whole tape sorted
    p_buy = 1 / (1 + np.exp(-cfg.flow_gain * s[step]))
    buy = rng.random(m) < np.where(np.isnan(paths.buy_prob[step]), p_buy, paths.buy_prob[step])
    amount = np.maximum(np.round(cfg.trade_usd_median / mid_true[step] * np.exp(cfg.trade_size_sigma *
                                                                                 rng.standard_normal(m)),
                                 asset.sz_decimals), lot)
    side_sz = np.where(buy[:, None], ask_sz[step], bid_sz[step])  # (M, L) the levels the trade walks
    depth_level = np.minimum((np.cumsum(side_sz, axis=1) < amount[:, None]).sum(axis=1), cfg.n_levels - 1)
    # a trade never reaches a spoof wall on the side it walks (bids for a sell): it stops one level short
    at_wall = paths.wall_side[step] == np.where(buy, -1, 1)
    depth_level = np.where(at_wall, np.minimum(depth_level, paths.wall_level - 1), depth_level)
    price = np.where(buy, ask_px[step, depth_level], bid_px[step, depth_level])
    trades = Trades(t_us, t_us + lat_us(m), price, amount, np.where(buy, Side.BUY, Side.SELL).astype(np.int8))

    updates = book_updates(book)
    return SyntheticMarket(asset.name, book, trades, updates, s, volatile, paths)


def book_updates(book: BookSnapshots) -> BookUpdates:
    """Incremental L2 rows that turn each snapshot into the next: the first snapshot in full
    (``is_snapshot``), then per snapshot the levels that vanished (amount 0) and the levels that are new or
    changed size. Generic (a dict diff per snapshot, O(N L)); rows of one snapshot share its timestamps."""
    ts, lts, snap, side, price, amount = [], [], [], [], [], []
    prev: dict[tuple[int, float], float] = {}
    sides = ((int(Side.BUY), book.bid_px, book.bid_sz), (int(Side.SELL), book.ask_px, book.ask_sz))
    for i in range(len(book)):
        cur = {(sd, p): z for sd, px, sz in sides for p, z in zip(px[i].tolist(), sz[i].tolist(), strict=True)
               if p == p}  # p == p drops NaN (empty) levels
        rows = list(cur.items()) if i == 0 else (
            [(k, 0.0) for k in prev.keys() - cur.keys()] + [(k, v) for k, v in cur.items() if prev.get(k) != v])
        rows.sort()
        ts += [int(book.ts_us[i])] * len(rows)
        lts += [int(book.local_ts_us[i])] * len(rows)
        snap += [i == 0] * len(rows)
        side += [k[0] for k, _ in rows]
        price += [k[1] for k, _ in rows]
        amount += [v for _, v in rows]
        prev = cur
    return BookUpdates(np.array(ts, dtype=np.int64), np.array(lts, dtype=np.int64), np.array(snap, dtype=bool),
                       np.array(side, dtype=np.int8), np.array(price, dtype=np.float64),
                       np.array(amount, dtype=np.float64))


# ---------------------------------------------------------------------------------------------- writing
def tardis_file_name(data_type: str, day: dt.date, symbol: str, exchange: str = "hyperliquid") -> str:
    """Tardis.dev's default download name."""
    return f"{exchange}_{data_type}_{day.isoformat()}_{symbol}.csv.gz"


def _write_csv_gz(table: pa.Table, path: Path) -> None:
    """Write ``table`` as gzip CSV atomically (temp file in the same directory, then rename)."""
    with atomic_path(path) as tmp, pa.CompressedOutputStream(str(tmp), "gzip") as out:
        pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_style="none"))


def _head(n: int, symbol: str) -> dict[str, pa.Array]:
    return {"exchange": pa.array(["hyperliquid"] * n), "symbol": pa.array([symbol] * n)}


def _num_array(values: np.ndarray) -> pa.Array:
    """Numbers for CSV (already rounded to their grid; written in shortest round-trip form), blank if NaN."""
    return pa.array(values, mask=np.isnan(values), type=pa.float64())


def book_table(book: BookSnapshots, symbol: str) -> pa.Table:
    cols = {**_head(len(book), symbol), "timestamp": pa.array(book.ts_us),
            "local_timestamp": pa.array(book.local_ts_us)}
    for k in range(book.n_levels):
        cols[f"asks[{k}].price"] = _num_array(book.ask_px[:, k])
        cols[f"asks[{k}].amount"] = _num_array(book.ask_sz[:, k])
        cols[f"bids[{k}].price"] = _num_array(book.bid_px[:, k])
        cols[f"bids[{k}].amount"] = _num_array(book.bid_sz[:, k])
    return pa.table(cols)


def trades_table(trades: Trades, symbol: str, first_id: int) -> pa.Table:
    return pa.table({
        **_head(len(trades), symbol),
        "timestamp": pa.array(trades.ts_us), "local_timestamp": pa.array(trades.local_ts_us),
        "id": pa.array(np.arange(first_id, first_id + len(trades)).astype(str)),
        "side": pa.array(np.where(trades.side == Side.BUY, "buy", "sell")),
        "price": _num_array(trades.price), "amount": _num_array(trades.amount),
    })


def updates_table(updates: BookUpdates, symbol: str) -> pa.Table:
    return pa.table({
        **_head(len(updates), symbol),
        "timestamp": pa.array(updates.ts_us), "local_timestamp": pa.array(updates.local_ts_us),
        "is_snapshot": pa.array(np.where(updates.is_snapshot, "true", "false")),
        "side": pa.array(np.where(updates.side == Side.BUY, "bid", "ask")),
        "price": _num_array(updates.price), "amount": _num_array(updates.amount),
    })


def synthetic_dir_name(cfg: SyntheticConfig) -> str:
    """``seed<seed>-<hash>``: the directory of one market, keyed by every parameter, so that files written with
    other parameters (another signal strength, fewer days) are never reused. Float parameters are hashed as floats:
    ``SyntheticConfig(n_days=6)`` from Python names the directory ``data.synthetic.n_days=6`` does (Hydra: 6.0)."""
    params = {f.name: float(getattr(cfg, f.name)) if f.type == "float" else getattr(cfg, f.name) for f in fields(cfg)
              if f.name != "scenario"}
    if (scenario := scenario_params(cfg.scenario_model)) is not None:  # none: the directory it had before scenarios
        params["scenario"] = scenario
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    return f"seed{cfg.seed}-{digest}"


def write_synthetic_market(asset: AssetConfig, cfg: SyntheticConfig, out_dir: Path) -> dict[str, list[Path]]:
    """Simulate and write one set of Tardis files per UTC day; a day whose three files exist is skipped.

    Returns the paths by data type (``book_snapshot_25``, ``trades``, ``incremental_book_L2``), in day order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = dt.date.fromisoformat(cfg.start_date)
    n_files = math.ceil(cfg.n_days)
    days = [start + dt.timedelta(days=k) for k in range(n_files)]
    paths = {t: [out_dir / tardis_file_name(t, d, asset.tardis_symbol) for d in days] for t in DATA_TYPES}
    if all(p.exists() for ps in paths.values() for p in ps):
        return paths
    todo = [k for k in range(n_files) if not all(paths[t][k].exists() for t in DATA_TYPES)]
    day_us = (np.datetime64(start.isoformat(), "us").astype(np.int64)
              + np.arange(n_files + 1, dtype=np.int64) * 86_400 * US_PER_S)
    # the simulation, then each file; disable=None: a bar on a terminal only (no redraws in a log file)
    with tqdm(total=1 + len(todo) * len(DATA_TYPES), desc=f"synthetic {asset.name} market", unit="part",
              disable=None) as bar:
        market = simulate_market(asset, cfg)
        bar.update()
        for k in todo:
            lo, hi = day_us[k], day_us[k + 1]
            b = np.flatnonzero((market.book.ts_us >= lo) & (market.book.ts_us < hi))
            tr = np.flatnonzero((market.trades.ts_us >= lo) & (market.trades.ts_us < hi))
            day_book = market.book.take(b)
            _write_csv_gz(book_table(day_book, asset.tardis_symbol), paths["book_snapshot_25"][k])
            bar.update()
            _write_csv_gz(trades_table(market.trades.take(tr), asset.tardis_symbol, int(tr[0]) if len(tr) else 0),
                          paths["trades"][k])
            bar.update()
            _write_csv_gz(updates_table(book_updates(day_book), asset.tardis_symbol), paths["incremental_book_L2"][k])
            bar.update()
    return paths

