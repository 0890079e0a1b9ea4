"""The service's command line: ``key=value`` overrides of :class:`ServeConfig`, type-checked by OmegaConf (a bad
key or value fails naming it). Light: no torch.

The service is not a Hydra app (it reads a policy's own ``config.yaml``, nothing from ``conf/``): ``hydra.*``,
``+key=...`` or a config group such as ``experiment=...`` is an unknown key, refused with :data:`NOT_HYDRA`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from omegaconf import OmegaConf


@dataclass
class ServeConfig:
    policy: str = "latest"  # policy directories, comma-separated (one per asset), latest: the newest of each asset,
    # or ensemble: one policy, the median of members
    members: str = ""  # with policy=ensemble: comma-separated policy directories (the first one's asset is traded)
    assets: str = "BTC"  # with policy=latest: comma-separated assets, each its newest registry entry
    registry_dir: str = "outputs/models"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32  # decisions per generate call
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for others, ms
    device: str = "auto"  # auto (the first GPU if any, else CPU) | cpu | cuda | cuda:<i>
    torch_threads: int = 0  # CPU threads of a generate call; 0 = torch's default (1 is fastest for the tiny model)
    max_body_bytes: int = 1_000_000  # a larger request body is a 413, refused before it is read or parsed, bytes
    venue: str = ""  # the venue the served orders are for (conf/venue/<name>.yaml: its tick and lot round them);
    # "" = each policy's own. Another venue, tick or lot than a policy was trained with is refused unless allow_transfer
    allow_transfer: bool = False  # serve a policy on another venue anyway (evaluate.allow_transfer's rule)
    max_notional_usd: float = 1e8  # a larger order (quantity x mid) is a 422 naming quantity, USD; 1e8 is beyond the
    # whole visible book of any perpetual, so only a unit mistake or garbage reaches it

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch={self.max_batch}: must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms}: must be >= 0")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads={self.torch_threads}: must be >= 0")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes={self.max_body_bytes}: must be >= 1")
        if not 0 < self.max_notional_usd < float("inf"):
            raise ValueError(f"max_notional_usd={self.max_notional_usd}: must be a finite number > 0")

    @property
    def policy_dirs(self) -> list[str]:
        return [p for p in self.policy.split(",") if p]

    @property
    def member_dirs(self) -> list[str]:
        return [p for p in self.members.split(",") if p]

    @property
    def asset_names(self) -> list[str]:
        return [a for a in self.assets.split(",") if a]


NOT_HYDRA = ("python -m hyperdapo.serve is not a Hydra app: it takes key=value for its own keys only (no hydra.*, "
             "+key or config groups; the model, features and venue come from the policy's config.yaml, the venue "
             "from venue=<name> when given)")


def usage() -> str:
    """The keys and their defaults, one per line, after :data:`NOT_HYDRA`."""
    defaults = ServeConfig()
    return "\n".join([NOT_HYDRA + ".", "keys (default):",
                      *(f"  {f.name}={getattr(defaults, f.name)}" for f in fields(ServeConfig))])


def parse_serve_args(argv: list[str]) -> ServeConfig:
    """``key=value`` arguments -> :class:`ServeConfig`; anything else (a flag, an unknown key such as ``hydra.*``)
    fails naming the argument."""
    keys = [f.name for f in fields(ServeConfig)]
    bad = [a for a in argv if a.partition("=")[0] not in keys or "=" not in a]
    if bad:
        raise ValueError(f"{' '.join(bad)}: not a key=value of this command; {NOT_HYDRA}; keys: {', '.join(keys)}")
    merged = OmegaConf.merge(OmegaConf.structured(ServeConfig), OmegaConf.from_dotlist(argv))
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
