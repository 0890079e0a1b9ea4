"""``python -m hyperdapo.serve [policy=outputs/models/BTC/<run>[,<dir>...]] [key=value ...]``

Not a Hydra app: only the ``key=value`` keys of :class:`hyperdapo.serve.config.ServeConfig` (``--help`` lists them).
Loads one policy per asset (explicit directories, or ``policy=latest assets=BTC,ETH``: the newest registry
entry of each asset, or ``policy=ensemble members=<dir>,<dir>``: one policy, the median of asset specialists,
:mod:`hyperdapo.pipeline.ensemble`) and serves them with uvicorn on ``host:port`` (127.0.0.1:8000 by default). Keys:
:class:`hyperdapo.serve.config.ServeConfig`. A bad key, value or policy (a damaged weights file included:
:func:`hyperdapo.export.weights.check_weights`) prints ``error: <message>`` and exits 2.

``venue=<name>`` (``conf/venue/``) serves the orders of that venue: a policy trained on another venue, tick or lot is
refused, naming each field (evaluate.py's check, :func:`~hyperdapo.pipeline.evaluate_run.transfer_from`), unless
``allow_transfer=true``; its orders are then rounded to the served venue's tick and lot (:func:`serving_venue`).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.entry import EXIT_USER_ERROR, USER_ERRORS, user_message
from hyperdapo.serve.config import ServeConfig, parse_serve_args, usage

if TYPE_CHECKING:
    from hyperdapo.data.config import VenueConfig

log = logging.getLogger("hyperdapo.serve")


def policy_dirs(cfg: ServeConfig) -> list[Path]:
    """The policy directories to serve: explicit, or the newest registry entry of each asset (none with
    policy=ensemble: its members load as one policy)."""
    if cfg.policy == "ensemble":
        return []
    if cfg.policy != "latest":
        return [Path(p) for p in cfg.policy_dirs]
    from hyperdapo.pipeline.config import compose_run_config
    from hyperdapo.pipeline.evaluate_run import find_policy

    return [find_policy(compose_run_config([f"asset={a}", f"registry_dir={cfg.registry_dir}"]))
            for a in cfg.asset_names]


def serving_venue(path: Path, cfg: ServeConfig, key: str) -> VenueConfig | None:
    """The venue ``venue=<name>`` serves the policy of ``path`` on (None: ``venue`` unset, the policy's own), checked
    as evaluate.py checks a transfer: another venue, tick or lot than the policy's training market is an error naming
    the policy and each field unless ``allow_transfer=true`` (the data source and fill rule stay the policy's: the
    service has no data of its own, its requests bring the market)."""
    if not cfg.venue:
        return None
    from hyperdapo.pipeline.config import compose_run_config
    from hyperdapo.pipeline.evaluate_run import transfer_from
    from hyperdapo.pipeline.trained import run_config_of

    own = run_config_of(path)
    venue = compose_run_config([f"asset={own.asset.name}", f"venue={cfg.venue}"]).venue
    served = replace(own, venue=venue, evaluate=replace(own.evaluate, allow_transfer=cfg.allow_transfer))
    transfer_from(path, served, key, flag="allow_transfer=true",
                  action="serve it there anyway (its orders rounded to that venue's tick and lot)",
                  here_words="the service's venue=" + cfg.venue + ",")
    return venue


def load_policies(cfg: ServeConfig, device) -> dict:
    """The policies to serve by asset, every one checked (weights, venue: :func:`serving_venue`) before any loads;
    with ``venue=<name>`` each one's orders use that venue's tick and lot."""
    from hyperdapo.export.weights import check_weights
    from hyperdapo.pipeline.ensemble import ENSEMBLE, load_ensemble
    from hyperdapo.pipeline.trained import load_trained

    policies = {}
    dirs = policy_dirs(cfg)
    keys = [*(("members", p) for p in cfg.member_dirs), *(("policy", p) for p in dirs)]
    venues = {str(path): serving_venue(Path(path), cfg, key) for key, path in keys}
    for _, path in keys:
        check_weights(path)

    def on_venue(p, path):
        venue = venues[str(path)]
        return p if venue is None else replace(p, cfg=replace(p.cfg, venue=venue))

    if cfg.policy == ENSEMBLE:
        ens = load_ensemble(cfg.member_dirs, device)
        ens.members = [on_venue(m, path) for m, path in zip(ens.members, cfg.member_dirs, strict=True)]
        policies[ens.asset] = ens
    for path in dirs:
        p = on_venue(load_trained(path, device), path)
        if p.asset in policies:
            raise ValueError(f"policy={cfg.policy}: two policies for {p.asset} ({policies[p.asset].path}, {path})")
        policies[p.asset] = p
    return policies


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(f"{__doc__}\n{usage()}")
        return 0
    quiet_third_party()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_serve_args(argv)
        import torch
        import uvicorn

        from hyperdapo.pipeline.trained import default_device
        from hyperdapo.serve.app import create_app

        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        device = default_device() if cfg.device == "auto" else torch.device(cfg.device)
        policies = load_policies(cfg, device)
    except USER_ERRORS as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    app = create_app(policies, cfg.max_batch, cfg.max_wait_ms, cfg.max_body_bytes, cfg.max_notional_usd)
    log.info("serving %s on http://%s:%d (device %s)", sorted(policies), cfg.host, cfg.port, device)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
