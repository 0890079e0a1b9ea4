"""hyperdapo.atomic.atomic_dir: a folder written as a whole replaces the old one only when complete."""

from __future__ import annotations

import os
import stat

import pytest

from hyperdapo.atomic import atomic_dir


def test_a_complete_folder_replaces_the_old_one(tmp_path):
    target = tmp_path / "models" / "run"
    with atomic_dir(target) as tmp:  # parents created
        (tmp / "a.txt").write_text("first")
    with atomic_dir(target) as tmp:
        assert not any(tmp.iterdir())  # starts empty, beside the target
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]  # no temporary or old folder left


def test_an_error_leaves_the_old_folder_and_no_temporary_one(tmp_path):
    target = tmp_path / "run"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_folder_gets_mkdir_permissions_not_mkdtemp_ones(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "run"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
