"""Atomic file writes: a reader never sees half a report, and a failed write leaves the old one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` into a temp folder beside ``path``, then move it into place with ``os.replace``.

    A folder rather than ``mkstemp``: a file created with ``open`` gets the user's usual mode
    (umask), where ``mkstemp`` would leave it private (0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}-") as tmp:
        tmp_file = Path(tmp) / path.name
        with open(tmp_file, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # complete on disk before it replaces the old file
        os.replace(tmp_file, path)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, text.encode("utf-8"))
