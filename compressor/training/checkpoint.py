"""Atomic checkpoints, so an interrupted run (even kill -9) resumes where it stopped."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..errors import ConfigError
from ..files import write_atomic


class Checkpoint:
    """One file in the output folder; written atomically after every epoch and every one-off step."""

    def __init__(self, path: Path, fingerprint: dict):
        self.path = Path(path)
        self.fingerprint = fingerprint  # the options that must match for a resume to be valid

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save({"fingerprint": self.fingerprint, **state}, buffer)
        write_atomic(self.path, buffer.getvalue())

    def load(self) -> dict:
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged file is the user's to remove, not a crash
            raise ConfigError(f"cannot read checkpoint {self.path}: {str(exc).splitlines()[0]}; remove it to start over") from None
        if state.get("fingerprint") != self.fingerprint:
            theirs = state.get("fingerprint") or {}
            changed = sorted(k for k in set(theirs) | set(self.fingerprint) if theirs.get(k) != self.fingerprint.get(k))
            raise ConfigError(
                f"checkpoint {self.path} was made with different options ({', '.join(changed)}); "
                "rerun with the same options, or without --resume to start over"
            )
        return state

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()
