"""The service's command line: ``key=value`` overrides of :class:`ServeConfig`, type-checked by OmegaConf (a bad
key or value fails naming it). Light: no torch."""

from __future__ import annotations

from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch={self.max_batch}: must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={self.max_wait_ms}: must be >= 0")
        if self.torch_threads < 0:
            raise ValueError(f"torch_threads={self.torch_threads}: must be >= 0")

    @property
    def policy_dirs(self) -> list[str]:
        return [p for p in self.policy.split(",") if p]

    @property
    def member_dirs(self) -> list[str]:
        return [p for p in self.members.split(",") if p]

    @property
    def asset_names(self) -> list[str]:
        return [a for a in self.assets.split(",") if a]


def parse_serve_args(argv: list[str]) -> ServeConfig:
    """``key=value`` arguments -> :class:`ServeConfig`."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ValueError(f"arguments must be key=value, got {bad}; keys: {list(ServeConfig.__dataclass_fields__)}")
    merged = OmegaConf.merge(OmegaConf.structured(ServeConfig), OmegaConf.from_dotlist(argv))
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
