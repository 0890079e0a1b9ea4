"""The applications (serve, paper, export) drop the known third-party console noise as train.py and evaluate.py do
(:func:`hyperdapo.pipeline.console.quiet_third_party`): each main runs in a fresh interpreter, then the noise is
emitted there and must not reach stderr, while another warning of the same logger still does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pipeline_helpers import REPO

NOISE = "Failed to load CPU gemm_4bit_forward from kernels-community: no module"
KEPT = "another bitsandbytes message"
SCRIPT = """import contextlib, logging, sys
from hyperdapo.{app}.__main__ import main
with contextlib.suppress(SystemExit):  # argparse's usage error
    main(sys.argv[1:])
bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
bnb.warning({noise!r})
bnb.warning({kept!r})
"""


@pytest.mark.parametrize(("app", "argv"), [("serve", ["max_batch=0"]), ("paper", ["every_s=5"]), ("export", [])])
def test_apps_drop_the_known_third_party_noise(app, argv):
    code = SCRIPT.format(app=app, noise=NOISE, kept=KEPT)
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "error: " in proc.stderr and KEPT in proc.stderr  # a usage error (fast), and logging still shows
    assert NOISE not in proc.stderr
