"""Asset specifications (the price and size rules are the venue's: :mod:`hyperdapo.data.venues`).

The values of each asset live in ``conf/asset/<name>.yaml`` only; :class:`AssetConfig` is their typed
schema and checks them (:mod:`hyperdapo.data.config`).
"""

from __future__ import annotations

from omegaconf import OmegaConf

from hyperdapo import CONF_DIR
from hyperdapo.data.config import AssetConfig


def load_asset(name: str) -> AssetConfig:
    """The asset config from ``conf/asset/<name>.yaml`` (case-insensitive), typed and validated."""
    path = CONF_DIR / "asset" / f"{name.upper()}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (CONF_DIR / "asset").glob("*.yaml"))
        raise ValueError(f"asset={name!r}: unknown asset; choose one of {known} (files in {path.parent})")
    merged = OmegaConf.merge(OmegaConf.structured(AssetConfig), OmegaConf.load(path))
    return AssetConfig(**OmegaConf.to_container(merged))
