"""``python -m hyperdapo.export <policy_dir> <out_dir> [--merge]``: see :mod:`hyperdapo.export.bundle`.

A missing or wrong policy directory (a damaged weights file included), or an existing ``out_dir``, prints
``error: <message>`` and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from hyperdapo.pipeline.console import quiet_third_party
from hyperdapo.pipeline.entry import EXIT_USER_ERROR, USER_ERRORS, user_message


def main(argv: list[str]) -> int:
    quiet_third_party()
    ap = argparse.ArgumentParser(prog="python -m hyperdapo.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("policy_dir", help="a registered policy: outputs/models/<ASSET>/<run_name>")
    ap.add_argument("out_dir", help="the folder to write (must not exist)")
    ap.add_argument("--merge", action="store_true", help="fold LoRA adapters into the base and write full weights")
    args = ap.parse_args(argv)
    try:
        from hyperdapo.export.bundle import export_policy  # heavy (torch, transformers): after the usage check

        out = export_policy(args.policy_dir, args.out_dir, args.merge)
    except USER_ERRORS as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"exported {args.policy_dir} -> {out} (README.md holds the model card)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
