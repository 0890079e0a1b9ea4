"""The command-line entry points (train.py, evaluate.py): light to import, thin, with a help page."""

from __future__ import annotations

import subprocess
import sys

from tests.pipeline_helpers import REPO

HEAVY = ("torch", "transformers", "numba", "pandas", "pyarrow", "lightning")


def _python(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_config_schema_and_entry_points_do_not_import_the_heavy_stack():
    """``--help`` and shell completion compose the config only: the schema (every stage's light ``config``
    module) and the entry module must not load torch, transformers, numba, pandas or pyarrow."""
    code = ("import sys, hyperdapo.pipeline.config, hyperdapo.pipeline.entry; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_help_lists_the_config_groups_and_examples():
    proc = _python("train.py", "--help")
    assert proc.returncode == 0, proc.stderr
    for text in ("== Examples ==", "python train.py experiment=demo algo=sft", "algo: dapo, dpo, grpo, sft",
                 "asset: BTC, ETH, HYPE, SOL", "eps_low"):
        assert text in proc.stdout
    proc = _python("evaluate.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "evaluate.policy=" in proc.stdout and "model: " in proc.stdout
