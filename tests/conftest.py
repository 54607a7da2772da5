"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest


@pytest.fixture(scope="session")
def reference_model() -> Callable[[str], Any]:
    """``get(name) -> model``: :func:`deploy.zoo.models.build_reference` (seed 0), built once per name
    per session. The models are shared, so do not modify them in place (``copy.deepcopy`` first)."""
    from deploy.zoo.models import build_reference

    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            cache[name] = build_reference(name, seed=0)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def reference_onnx(tmp_path_factory, reference_model) -> Callable[[str, str, int], Path]:
    """``get(name, exporter, opset) -> Path``: the reference model ``name`` (seed 0) exported with
    :func:`deploy.zoo.export.export_reference` at its default input shape (batch 1, batch
    dimension dynamic), exported once per combination per session into a session temp dir.
    Treat the files as read-only."""
    from deploy.zoo.export import export_reference
    from deploy.zoo.models import REFERENCE_MODELS

    root = tmp_path_factory.mktemp("reference_onnx")
    cache: dict[tuple[str, str, int], Path] = {}

    def get(name: str, exporter: str, opset: int) -> Path:
        key = (name, exporter, int(opset))
        if key not in cache:
            path = root / f"{name}-{exporter}-opset{opset}.onnx"
            export_reference(reference_model(name), path, REFERENCE_MODELS[name].input_shape, int(opset), exporter)
            cache[key] = path
        return cache[key]

    return get


_SUMMARY_LINES: list[str] = []


@pytest.fixture(scope="session")
def conformance_summary() -> list[str]:
    """Lines appended here are printed in pytest's terminal summary (e.g. conformance counts)."""
    return _SUMMARY_LINES


def pytest_terminal_summary(terminalreporter):
    for line in _SUMMARY_LINES:
        terminalreporter.write_line(line)
