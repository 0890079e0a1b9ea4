"""Pluggable parts chosen in a config by Hydra ``_target_`` (a scenario of the synthetic market, ...): one way to build
them, with errors that name the config key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def instantiate_target(key: str, node: Mapping[str, Any], example: str) -> Any:
    """The object a config node ``{_target_: <class path>, <its arguments>}`` names (Hydra ``instantiate``). A node
    without ``_target_``, or one whose class rejects its arguments (its ``__post_init__`` names the bad one), is a
    ValueError naming ``key``; ``example`` is a valid ``_target_`` for the message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if "_target_" not in node:
        raise ValueError(f"{key}={dict(node)}: needs a _target_ (e.g. {example})")
    try:
        return instantiate(dict(node))
    except InstantiationException as e:
        raise ValueError(f"{key}={dict(node)}: {e}") from e
