"""Files on disk: atomic writes (a reader never sees half a report, and a failed write leaves the
old one), JSON that holds numpy/torch values, and the size and digest of a model file."""

from __future__ import annotations

import hashlib
import json
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


def write_json_atomic(path: Path, obj) -> Path:
    """``obj`` as indented JSON; numpy scalars, tensors and paths become plain JSON values."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default))


def _json_default(value):
    import numpy as np  # here: the other helpers (checkpoints, plots, markdown) need neither
    import torch

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in blocks (a model can be larger than memory allows twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_bytes(path: Path) -> int:
    """Bytes of a model file plus its ``<name>.data`` external-data file, when there is one."""
    path = Path(path)
    data = Path(str(path) + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)
