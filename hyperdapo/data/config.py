"""The typed configuration of the data stage (``asset=``, ``venue=`` and ``data=`` groups): light, no numerical imports.

These dataclasses are the Hydra schema of ``conf/asset/``, ``conf/venue/`` and ``conf/data/``; each ``__post_init__``
checks its values and names the offending key. The modules that use them (:mod:`hyperdapo.data.assets`,
:mod:`~hyperdapo.data.venues`,
:mod:`~hyperdapo.data.synthetic`, :mod:`~hyperdapo.data.download`, :mod:`~hyperdapo.data.sources`) import
them from here, so composing a config never loads numba, pyarrow or the Tardis client.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

MAX_PERP_DECIMALS = 6  # Hyperliquid perps: a price has at most 6 - szDecimals decimals
NONE_SCENARIO = "hyperdapo.data.scenarios.NoScenario"  # the plain synthetic market (hyperdapo/data/scenarios.py)
TARDIS_DATA_TYPES = ("book_snapshot_25", "book_snapshot_5", "trades", "incremental_book_L2", "derivative_ticker",
                     "quotes")


@dataclass
class AssetConfig:
    """One perp: what is the asset's (its names, size decimals, price range in USD); the venue's facts (tick, lot,
    fees, latency) are in :class:`VenueConfig`."""

    name: str = MISSING  # "BTC"
    sz_decimals: int = MISSING  # Hyperliquid szDecimals
    price_low_usd: float = MISSING  # synthetic market's typical range (the seeds' ranges)
    price_high_usd: float = MISSING
    tardis_symbol: str = MISSING  # Tardis.dev symbol on exchange "hyperliquid"
    hyperliquid_coin: str = MISSING  # coin in the Hyperliquid S3 archive

    def __post_init__(self) -> None:
        validate_asset(self)


def validate_asset(cfg: AssetConfig) -> None:
    """Raise ValueError naming the key when a value is out of range."""
    if cfg.sz_decimals == MISSING:  # the bare schema, before a YAML fills it in
        return
    if not 0 <= cfg.sz_decimals <= MAX_PERP_DECIMALS:
        raise ValueError(f"asset.sz_decimals={cfg.sz_decimals}: must be in 0..{MAX_PERP_DECIMALS}")
    if not 0 < cfg.price_low_usd < cfg.price_high_usd:
        raise ValueError(
            f"asset.price_low_usd={cfg.price_low_usd}, asset.price_high_usd={cfg.price_high_usd}: "
            "need 0 < price_low_usd < price_high_usd"
        )


class TickRule(StrEnum):
    SIGNIFICANT = "significant"  # tick_sig_figs significant figures, at most tick_max_decimals - szDecimals decimals
    FIXED = "fixed"  # one tick per asset: tick_usd[<asset name>]


class LotRule(StrEnum):
    SZ_DECIMALS = "sz_decimals"  # 10 ** -szDecimals coins
    FIXED = "fixed"  # one lot per asset: lot_size[<asset name>]


@dataclass
class VenueConfig:
    """Where the orders go: price tick (USD), lot (coins), maker / taker fees (bps of notional), latency (ms).

    The values live in ``conf/venue/<name>.yaml`` only; the rules are applied by
    :class:`hyperdapo.data.venues.Instrument`. Per-asset maps are keyed by the asset's ``name`` (``BTC``).
    """

    name: str = MISSING  # "hyperliquid"
    tick_rule: str = MISSING  # significant | fixed
    tick_sig_figs: int | None = None  # significant rule: significant figures of a price
    tick_max_decimals: int | None = None  # significant rule: a price has at most this - szDecimals decimals
    tick_usd: dict[str, float] = field(default_factory=dict)  # fixed rule: tick per asset, USD
    lot_rule: str = MISSING  # sz_decimals | fixed
    lot_size: dict[str, float] = field(default_factory=dict)  # fixed rule: lot per asset, coins
    maker_fee_bps: float = MISSING
    taker_fee_bps: float = MISSING
    latency_ms: float = MISSING  # decision -> order at the venue

    def __post_init__(self) -> None:
        if self.tick_rule == MISSING:  # the bare schema, before a YAML fills it in
            return
        self.tick_rule = _choice("venue.tick_rule", self.tick_rule, TickRule)
        self.lot_rule = _choice("venue.lot_rule", self.lot_rule, LotRule)
        if self.tick_rule is TickRule.SIGNIFICANT and not (
                (self.tick_sig_figs or 0) >= 1 and 0 <= (self.tick_max_decimals or -1) <= 12):
            raise ValueError(f"venue.tick_sig_figs={self.tick_sig_figs}, venue.tick_max_decimals="
                             f"{self.tick_max_decimals}: the significant rule needs sig_figs >= 1 and 0..12 decimals")
        for key in ("tick_usd", "lot_size"):
            for asset, value in getattr(self, key).items():
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"venue.{key}.{asset}={value}: must be finite and > 0")
        for key in ("taker_fee_bps", "maker_fee_bps"):
            if not (math.isfinite(getattr(self, key)) and abs(getattr(self, key)) <= 100):
                raise ValueError(f"venue.{key}={getattr(self, key)}: must be a finite fee within +-100 bps")
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise ValueError(f"venue.latency_ms={self.latency_ms}: must be finite and >= 0")

    def check_asset(self, asset: str) -> None:
        """Raise ValueError naming the key when the venue has no tick or lot for ``asset``."""
        for key, rule in (("tick_usd", self.tick_rule is TickRule.FIXED), ("lot_size", self.lot_rule is LotRule.FIXED)):
            if rule and asset not in getattr(self, key):
                raise ValueError(f"venue.{key}.{asset}: venue {self.name!r} lists no {asset} (it has "
                                 f"{sorted(getattr(self, key))}); add it to conf/venue/{self.name}.yaml")


def _choice(key: str, value: str, kind: type[StrEnum]) -> StrEnum:
    if value not in {k.value for k in kind}:
        raise ValueError(f"{key}={value!r}: use one of {[k.value for k in kind]}")
    return kind(value)


@dataclass
class SyntheticConfig:
    """The synthetic market's parameters (see the module docstring for the model)."""

    start_date: str = "2024-01-01"  # first UTC day, YYYY-MM-DD
    n_days: float = 1.0  # may be fractional (tests use hours); files are written per UTC day
    snapshot_interval_ms: int = 1000  # book snapshot every this many ms (one model step)
    n_levels: int = 25
    seed: int = 0
    signal_strength: float = 0.08  # alpha: drift per step in units of sigma_t per unit of signal
    signal_tau_s: float = 120.0  # OU time constant of the latent order-flow signal
    vol_bps_per_s: float = 0.7  # calm-regime volatility of the mid, bps per sqrt(second)
    volatile_vol_mult: float = 2.5
    calm_minutes: float = 40.0  # mean duration of the calm regime
    volatile_minutes: float = 15.0
    logvol_persistence: float = 0.999  # AR(1) coefficient of log-volatility per step
    logvol_std: float = 0.25  # stationary std of log-volatility
    reversion_half_life_h: float = 24.0  # pull of the log-price toward the range centre
    spread_extra_p_calm: float = 0.05  # probability of each extra spread tick (geometric), calm regime
    spread_extra_p_volatile: float = 0.3
    depth_usd_per_level: float = 60_000.0  # median USD size of a book level
    size_noise: float = 0.5  # log-normal sigma of level sizes around the median
    size_refresh_s: float = 10.0  # a level's size noise is redrawn every this many seconds
    imbalance_levels: int = 5
    imbalance_gain: float = 0.5  # log-size tilt of the top levels per unit of observed signal
    imbalance_noise: float = 0.7  # std of the noise on the observed signal (units of signal std)
    trade_rate_per_s: float = 2.0  # baseline trade intensity, calm regime
    volatile_rate_mult: float = 2.0
    hawkes_alpha: float = 0.3  # excitation added per trade (trades per step)
    hawkes_tau_s: float = 2.0  # decay time of the excitation
    flow_gain: float = 0.6  # taker buy probability sigmoid(flow_gain * s_t)
    trade_usd_median: float = 3_000.0
    trade_size_sigma: float = 1.2  # log-normal sigma of trade sizes (heavy tail)
    latency_ms_max: float = 30.0  # local_timestamp = timestamp + U(1, max) ms
    # a stress scenario applied by the generator, by Hydra _target_ (conf/scenario/, hyperdapo/data/scenarios.py:
    # scenario=flash_crash); the default leaves the market bitwise as it is without one
    scenario: dict[str, Any] = field(default_factory=lambda: {"_target_": NONE_SCENARIO})

    def __post_init__(self) -> None:
        from hyperdapo.data.scenarios import scenario_model

        self.scenario_model = scenario_model(self.scenario)
        try:
            dt.date.fromisoformat(self.start_date)
        except ValueError as exc:
            raise ValueError(f"data.synthetic.start_date={self.start_date!r}: need YYYY-MM-DD ({exc})") from None
        if not self.n_days > 0:
            raise ValueError(f"data.synthetic.n_days={self.n_days}: must be > 0")
        for key in ("snapshot_interval_ms", "n_levels", "imbalance_levels"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"data.synthetic.{key}={getattr(self, key)}: must be >= 1")
        if self.imbalance_levels > self.n_levels:
            raise ValueError(f"data.synthetic.imbalance_levels={self.imbalance_levels}: must be <= n_levels")
        positive = ("signal_tau_s", "vol_bps_per_s", "volatile_vol_mult", "calm_minutes", "volatile_minutes",
                    "reversion_half_life_h", "depth_usd_per_level", "size_refresh_s", "trade_rate_per_s",
                    "volatile_rate_mult",
                    "hawkes_tau_s", "trade_usd_median", "latency_ms_max")
        for key in positive:
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise ValueError(f"data.synthetic.{key}={getattr(self, key)}: must be finite and > 0")
        nonneg = ("signal_strength", "logvol_std", "size_noise", "imbalance_gain", "imbalance_noise", "hawkes_alpha",
                  "flow_gain", "trade_size_sigma")
        for key in nonneg:
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                raise ValueError(f"data.synthetic.{key}={getattr(self, key)}: must be finite and >= 0")
        for key in ("logvol_persistence", "spread_extra_p_calm", "spread_extra_p_volatile"):
            if not 0 <= getattr(self, key) < 1:
                raise ValueError(f"data.synthetic.{key}={getattr(self, key)}: must be in [0, 1)")
        dt_s = self.snapshot_interval_ms / 1000
        if self.hawkes_alpha / (1 - math.exp(-dt_s / self.hawkes_tau_s)) >= 1:
            raise ValueError(f"data.synthetic.hawkes_alpha={self.hawkes_alpha}: the Hawkes branching ratio "
                             "hawkes_alpha / (1 - exp(-dt / hawkes_tau_s)) must be < 1 (else trades explode)")


@dataclass
class TardisConfig:
    """What to download. Dates are UTC days, ``to_date`` exclusive; the key is read from $TARDIS_API_KEY."""

    exchange: str = "hyperliquid"
    data_types: list[str] = field(default_factory=lambda: ["book_snapshot_25", "trades"])
    symbols: list[str] = field(default_factory=lambda: ["BTC"])
    from_date: str = "2024-01-01"
    to_date: str = "2024-01-02"
    download_dir: str = "data/raw/tardis"
    endpoint: str = "https://datasets.tardis.dev/v1"
    max_total_s: float = 180.0  # hard bound on the whole download, seconds
    probe_timeout_s: float = 8.0  # bound on the reachability probe before the download, seconds
    concurrency: int = 4

    def __post_init__(self) -> None:
        days = {}
        for key in ("from_date", "to_date"):
            try:
                days[key] = dt.date.fromisoformat(getattr(self, key))
            except ValueError:
                raise ValueError(f"data.tardis.{key}={getattr(self, key)!r}: need a date YYYY-MM-DD") from None
        if days["to_date"] <= days["from_date"]:
            raise ValueError(f"data.tardis.to_date={self.to_date} must be after from_date={self.from_date} "
                             "(to_date is exclusive)")
        unknown = [t for t in self.data_types if t not in TARDIS_DATA_TYPES]
        if unknown:
            raise ValueError(f"data.tardis.data_types: unknown {unknown}; use {list(TARDIS_DATA_TYPES)}")
        if not self.symbols:
            raise ValueError("data.tardis.symbols: at least one symbol (BTC, ETH, SOL, HYPE)")
        for key in ("max_total_s", "probe_timeout_s"):
            if not getattr(self, key) > 0:
                raise ValueError(f"data.tardis.{key}={getattr(self, key)}: must be > 0")
        if self.concurrency < 1:
            raise ValueError(f"data.tardis.concurrency={self.concurrency}: must be >= 1")

    def days(self) -> list[dt.date]:
        start, end = dt.date.fromisoformat(self.from_date), dt.date.fromisoformat(self.to_date)
        return [start + dt.timedelta(days=k) for k in range((end - start).days)]


class DataSource(StrEnum):
    SYNTHETIC = "synthetic"
    TARDIS = "tardis"
    HYPERLIQUID_ARCHIVE = "hyperliquid_archive"
    FILES = "files"


BOOK_TYPES = ("book_snapshot_25", "book_snapshot_5", "quotes")  # Tardis data types that give a book as they are


@dataclass
class FilesConfig:
    """Local market-data files (``data=files``): paths or glob patterns per kind, any venue, no API key.

    ``book``: Tardis ``book_snapshot_25`` / ``book_snapshot_5`` / ``quotes`` (a one-level book) CSV(.gz) or
    Hyperliquid ``l2Book`` .lz4; ``incremental``: Tardis ``incremental_book_L2``, replayed into a snapshot every
    ``snapshot_every_s`` seconds (``n_levels`` a side); ``trades``: Tardis ``trades`` (optional: without trades,
    fills use the book-only rule). The format comes from the file name, else from the CSV header.
    """

    book: list[str] = field(default_factory=list)
    incremental: list[str] = field(default_factory=list)
    trades: list[str] = field(default_factory=list)
    snapshot_every_s: float = 1.0  # seconds between snapshots reconstructed from incremental_book_L2
    n_levels: int = 25  # levels a side kept from incremental_book_L2

    def __post_init__(self) -> None:
        if not self.snapshot_every_s > 0:
            raise ValueError(f"data.files.snapshot_every_s={self.snapshot_every_s}: must be > 0")
        if self.n_levels < 1:
            raise ValueError(f"data.files.n_levels={self.n_levels}: must be >= 1")


@dataclass
class DataConfig:
    source: str = DataSource.SYNTHETIC  # synthetic | tardis | hyperliquid_archive | files
    raw_dir: str = "data/raw"  # synthetic files go to <raw_dir>/synthetic/seed<seed>-<hash of the parameters>
    cache_dir: str = "data/cache"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    tardis: TardisConfig = field(default_factory=TardisConfig)
    archive_files: list[str] = field(default_factory=list)  # l2Book .lz4 files or glob patterns
    files: FilesConfig = field(default_factory=FilesConfig)
    # months of data: decisions, features and grid rewards built a day at a time into <cache_dir>/days, and orders
    # simulated on at most days_in_memory day windows (hyperdapo.execution.tape.DayTape); needs one book (and
    # trade) file a day, which the synthetic and tardis sources write
    day_by_day: bool = False
    days_in_memory: int = 2

    def __post_init__(self) -> None:
        if self.days_in_memory < 1:
            raise ValueError(f"data.days_in_memory={self.days_in_memory}: must be >= 1")
        if self.source not in {s.value for s in DataSource}:
            raise ValueError(f"data.source={self.source!r}: use one of {[s.value for s in DataSource]}")
        self.source = DataSource(self.source)
        if self.source is not DataSource.SYNTHETIC and self.synthetic.scenario["_target_"] != NONE_SCENARIO:
            raise ValueError(f"data.synthetic.scenario={dict(self.synthetic.scenario)}: a scenario changes the "
                             f"synthetic market only, and data.source={self.source.value}; drop scenario= or use "
                             "data=synthetic")
        if self.source is DataSource.HYPERLIQUID_ARCHIVE and not self.archive_files:
            raise ValueError("data.archive_files: list the Hyperliquid l2Book .lz4 files (or glob patterns)")
        if self.source is DataSource.FILES and bool(self.files.book) == bool(self.files.incremental):
            raise ValueError("data.files.book / data.files.incremental: give the book as snapshots (book) or as "
                             "incremental_book_L2 (incremental), one of the two")
        if self.source is DataSource.TARDIS:
            books = [t for t in self.tardis.data_types if t in (*BOOK_TYPES, "incremental_book_L2")]
            unusable = [t for t in self.tardis.data_types if t not in (*BOOK_TYPES, "incremental_book_L2", "trades")]
            if unusable or len(books) != 1:
                raise ValueError(f"data.tardis.data_types={list(self.tardis.data_types)}: need exactly one book type "
                                 f"({', '.join((*BOOK_TYPES, 'incremental_book_L2'))}) and optionally trades"
                                 + (f"; cannot use {unusable}" if unusable else ""))
