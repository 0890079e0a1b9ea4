"""Atomic file writes: every file HyperDAPO writes goes through :func:`atomic_path`.

The writer gets a temporary path in the target's directory; only when it returns without an error is the
temporary file renamed over the target (``os.replace``, atomic on POSIX). A crash, a full disk or an
exception leaves the previous file (or no file), never a truncated one, and no temporary file behind.
This module sits below every stage (it imports nothing of HyperDAPO).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)`` writes ``p`` atomically (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
