"""Atomic file writes: every file HyperDAPO writes goes through :func:`atomic_path`, every folder written as a whole
(a saved policy, an export) through :func:`atomic_dir`.

The writer gets a temporary path in the target's directory; only when it returns without an error is the
temporary file renamed over the target (``os.replace``, atomic on POSIX). A crash, a full disk or an
exception leaves the previous file (or no file), never a truncated one, and no temporary file behind.
The file gets the permissions ``open()`` would give it (0666 minus the umask, 0644 usually), not the private 0600
of :func:`tempfile.mkstemp`. This module sits below every stage (it imports nothing of HyperDAPO).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)`` writes ``p`` atomically (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(path.parent, f".{path.name}.", _new_file)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fresh(directory: Path, prefix: str, create: Callable[[Path], object]) -> Path:
    """``create`` a new entry named ``<prefix><8 random hex>.tmp`` in ``directory`` (``create`` raises
    FileExistsError on a taken name, and another name is tried)."""
    while True:
        tmp = directory / f"{prefix}{secrets.token_hex(4)}.tmp"
        try:
            create(tmp)
            return tmp
        except FileExistsError:
            continue


def _new_file(path: Path) -> None:
    """An empty file at ``path``, mode 0666 minus the umask (``O_EXCL``: never an existing file, as ``mkstemp``,
    whose 0600 would make every written file private)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """``with atomic_dir(d) as tmp: write(tmp)`` makes ``d`` the folder written into ``tmp`` (parents created).

    ``tmp`` is a new empty sibling of ``d``; only when the body returns without an error does it take ``d``'s
    place (an existing ``d`` is renamed aside, then removed). An error leaves ``d`` as it was and no temporary
    folder behind. A reader sees the old folder or the new one, never a partial one (for an instant between the two
    renames, none). The folder gets ``mkdir``'s permissions (0777 minus the umask), not ``mkdtemp``'s 0700."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh(path.parent, f".{path.name}.", Path.mkdir)  # mode 0777 minus the umask
    try:
        yield tmp
        if path.exists():
            old = tmp.with_name(tmp.name + ".old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

