"""Plug-ins from other packages, found through entry points.

The core (`compressor`) never imports the packages built on it. `exporters` (the export stage)
and `deploy` declare themselves in pyproject.toml under the entry-point group below; importing
such a module registers its stages, runtimes, methods, patterns or tasks. A third-party package
extends the tool the same way, without a change here.
"""

from __future__ import annotations

from importlib.metadata import entry_points

GROUP = "onnx_compressor.plugins"
_loaded = False


def load_plugins() -> None:
    """Import every registered plug-in module once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in entry_points(group=GROUP):
        entry.load()
