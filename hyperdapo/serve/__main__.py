"""``python -m hyperdapo.serve [policy=outputs/models/BTC/<run>[,<dir>...]] [key=value ...]``

Not a Hydra app: only the ``key=value`` keys of :class:`hyperdapo.serve.config.ServeConfig` (``--help`` lists them).
Loads one policy per asset (explicit directories, or ``policy=latest assets=BTC,ETH``: the newest registry
entry of each asset, or ``policy=ensemble members=<dir>,<dir>``: one policy, the median of asset specialists,
:mod:`hyperdapo.pipeline.ensemble`) and serves them with uvicorn on ``host:port`` (127.0.0.1:8000 by default). Keys:
:class:`hyperdapo.serve.config.ServeConfig`. A bad key, value or policy (a damaged weights file included:
:func:`hyperdapo.export.weights.check_weights`) prints ``error: <message>`` and exits 2.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.entry import EXIT_USER_ERROR, USER_ERRORS, user_message
from hyperdapo.serve.config import ServeConfig, parse_serve_args, usage

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

        from hyperdapo.export.weights import check_weights
        from hyperdapo.pipeline.ensemble import ENSEMBLE, load_ensemble
        from hyperdapo.pipeline.trained import default_device, load_trained
        from hyperdapo.serve.app import create_app

        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        device = default_device() if cfg.device == "auto" else torch.device(cfg.device)
        policies = {}
        dirs = policy_dirs(cfg)
        for path in [*cfg.member_dirs, *dirs]:
            check_weights(path)
        if cfg.policy == ENSEMBLE:
            ens = load_ensemble(cfg.member_dirs, device)
            policies[ens.asset] = ens
        for path in dirs:
            p = load_trained(path, device)
            if p.asset in policies:
                raise ValueError(f"policy={cfg.policy}: two policies for {p.asset} ({policies[p.asset].path}, {path})")
            policies[p.asset] = p
    except USER_ERRORS as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    app = create_app(policies, cfg.max_batch, cfg.max_wait_ms, cfg.max_body_bytes, cfg.max_notional_usd)
    log.info("serving %s on http://%s:%d (device %s)", sorted(policies), cfg.host, cfg.port, device)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
