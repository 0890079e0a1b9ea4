"""The command-line entry points (train.py, evaluate.py): light to import, thin, with a help page; errors a user
causes end in one line naming the key or file, without a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from omegaconf.errors import ValidationError

from hyperdapo.pipeline.entry import EXIT_USER_ERROR, reports_user_errors, user_message
from tests.pipeline_helpers import REPO

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

HEAVY = ("torch", "transformers", "numba", "pandas", "pyarrow", "lightning")


def _python(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | env
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=environ)


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
    for text in ("== Examples ==", "python train.py experiment=demo algo=sft", "algo: dapo, dpo, grpo, ppo, sft",
                 "asset: BTC, ETH, HYPE, SOL", "eps_low"):
        assert text in proc.stdout
    proc = _python("evaluate.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "evaluate.policy=" in proc.stdout and "model: " in proc.stdout


def test_a_bad_config_value_prints_one_line_naming_the_key(tmp_path):
    proc = _python("train.py", "algo.eps_low=0.3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == EXIT_USER_ERROR
    assert proc.stderr.startswith("error: algo.eps_low=0.3 > algo.eps_high=0.28")
    assert "Traceback" not in proc.stderr + proc.stdout
    full = _python("train.py", "algo.eps_low=0.3", f"hydra.run.dir={tmp_path}", HYDRA_FULL_ERROR="1")
    assert full.returncode != 0
    assert "Traceback" in full.stderr and "algo.eps_low" in full.stderr


def test_user_errors_exit_cleanly_and_bugs_keep_their_traceback(monkeypatch, capsys):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def failing(exc: BaseException):
        def main(cfg) -> None:
            raise exc
        return reports_user_errors(main)

    missing = FileNotFoundError("model.init_from=/nowhere: no such directory")
    with pytest.raises(SystemExit) as exit_info:
        failing(missing)(None)
    assert exit_info.value.code == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: model.init_from=/nowhere: no such directory\n"
    with pytest.raises(KeyError):  # a programming error propagates (Hydra prints it)
        failing(KeyError("bug"))(None)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(FileNotFoundError):
        failing(missing)(None)


def test_user_message_unwraps_omegaconf_to_the_schema_message():
    cause = ValueError("trainer.max_steps=0: must be >= 1")
    wrapped = ValidationError("Could not create instance of TrainerConfig")
    wrapped.__cause__ = cause
    assert user_message(wrapped) == "trainer.max_steps=0: must be >= 1"
    assert user_message(cause) == "trainer.max_steps=0: must be >= 1"


def test_the_wheel_ships_conf_and_its_console_scripts_run_from_anywhere(tmp_path):
    """A non-editable install finds conf/ inside the package (hyperdapo/conf), and hyperdapo-train works there."""
    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(REPO / "hyperdapo", src / "hyperdapo", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", src / "conf")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "-w", str(wheel_dir), "--no-deps",
                            "--no-build-isolation", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("hyperdapo-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        scripts = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        z.extractall(tmp_path / "site")
    assert {"hyperdapo/conf/train.yaml", "hyperdapo/conf/hydra/help/train.yaml", "hyperdapo/conf/asset/BTC.yaml"} \
        <= names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    for script in ("hyperdapo-train = hyperdapo.pipeline.entry:train",
                   "hyperdapo-evaluate = hyperdapo.pipeline.entry:evaluate",
                   "hyperdapo-data = hyperdapo.data.__main__:main"):
        assert script in scripts
    # what the hyperdapo-train script runs, from the installed copy in another directory
    code = ("import sys, hyperdapo; print(hyperdapo.CONF_DIR); sys.argv = ['hyperdapo-train', '--help']; "
            "from hyperdapo.pipeline.entry import train; train()")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == str(tmp_path / "site" / "hyperdapo" / "conf")
    assert "== Examples ==" in run.stdout


def test_conf_dir_is_the_repository_conf_in_a_checkout():
    from hyperdapo.pipeline.config import CONF_DIR

    assert CONF_DIR == REPO / "conf"
    assert (REPO / "hyperdapo" / "conf").is_symlink()


def test_console_scripts_are_installed_and_answer_help():
    script = Path(sys.executable).parent / "hyperdapo-train"
    if not script.exists():
        pytest.skip(f"{script} missing: run `make install` (or pip install -e . --no-deps) to create the scripts")
    proc = subprocess.run([str(script), "--help"], cwd="/", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "python train.py experiment=demo" in proc.stdout
