"""``python -m hyperdapo.paper policy=<dir> [mode=replay|live] [every_s=<s>] [speed=<x>] [out=<dir>] [device=auto]
[<run overrides>]``

``mode=replay`` (default) replays recorded market data with a trained policy beside the baselines
(:mod:`hyperdapo.paper.replay`); ``mode=live`` trades Hyperliquid's public websocket ``url`` (default
:data:`~hyperdapo.paper.live.HYPERLIQUID_WS`; read only) until ``max_decisions`` decisions are scored and/or
``duration_s`` wall seconds pass (:mod:`hyperdapo.paper.live`). ``policy=ensemble members=<dir>,<dir>`` trades the
median of asset specialists (:mod:`hyperdapo.pipeline.ensemble`). The
market is composed from ``conf/`` as for ``train.py``, with the policy's asset first and the remaining
``key=value`` arguments as Hydra overrides, e.g. ``experiment=hl_sample`` (the shared Hyperliquid hour).
``every_s`` is the decision interval in s (default: the composed ``decisions.every_s``), ``speed`` the market
seconds per wall second (0 = as fast as possible), ``out`` the output folder (default
``outputs/paper/<ASSET>/<time>``). A bad value, a missing file or policy prints ``error: <message>`` and exits 2.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.entry import EXIT_USER_ERROR, USER_ERRORS, user_message

OWN_KEYS = ("policy", "members", "mode", "url", "max_decisions", "duration_s", "every_s", "speed", "out", "device")
MODES = ("replay", "live")


def split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(this command's keys, the Hydra overrides of the market)."""
    own, rest = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in OWN_KEYS:
            own[key] = value
        else:
            rest.append(arg)
    if "policy" not in own:
        raise ValueError("policy=<dir> is required (a registered policy: outputs/models/<ASSET>/<run_name>)")
    if own.get("mode", "replay") not in MODES:
        raise ValueError(f"mode={own['mode']}: must be one of {MODES}")
    return own, rest


def main(argv: list[str]) -> int:
    quiet_third_party()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        own, rest = split_args(argv)
        import torch

        from hyperdapo.paper.live import HYPERLIQUID_WS, paper_trade_live
        from hyperdapo.paper.replay import paper_trade
        from hyperdapo.pipeline.config import compose_run_config
        from hyperdapo.pipeline.ensemble import load_any
        from hyperdapo.pipeline.trained import default_device

        device = default_device() if own.get("device", "auto") == "auto" else torch.device(own["device"])
        policy = load_any(own["policy"], own.get("members", ""), device)
        every = [f"decisions.every_s={own['every_s']}"] if "every_s" in own else []
        cfg = compose_run_config([f"asset={policy.asset}", *rest, *every])
        out = own.get("out") or f"outputs/paper/{cfg.asset.name}/{dt.datetime.now():%Y-%m-%d_%H-%M-%S}"
        if own.get("mode") == "live":
            paper_trade_live(policy, cfg, out, own.get("url", HYPERLIQUID_WS), int(own.get("max_decisions", 0)),
                             float(own.get("duration_s", 0)))
        else:
            paper_trade(policy, cfg, out, float(own.get("speed", 0)))
    except USER_ERRORS as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    print((Path(out) / "tables" / "paper_summary.md").read_text())
    print(f"running log: {out}/paper_log.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
