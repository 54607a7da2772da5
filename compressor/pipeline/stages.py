"""The stage registry and the default order of a run.

    load -> data -> plan -> prune -> verify -> export -> measure -> report

A stage is a function `stage(state: RunState) -> output`, registered by name; its output is
kept in `state.outputs[name]`. A new stage (an engine build, physical channel removal, a GPU
measurement) is one registered function and one insertion into the order:

    Pipeline(path, options, stages=insert_stage(DEFAULT_STAGES, "engine", after="export"))
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import ConfigError
from ..plugins import load_plugins
from ..registry import Registry

DEFAULT_STAGES = ("load", "data", "plan", "prune", "verify", "export", "measure", "report")
BUILTIN_STAGE_MODULES = ("load", "data", "plan", "prune", "verify", "measure", "report")


def _load_stages() -> None:
    for module in BUILTIN_STAGE_MODULES:  # each registers its stage on import
        importlib.import_module(f"{__package__}.{module}")
    load_plugins()  # stages of the packages built on the core: exporters' "export"


STAGES: Registry[Callable] = Registry("stage", loader=_load_stages)
register_stage = STAGES.register


def insert_stage(order: tuple[str, ...], name: str, *, after: str) -> tuple[str, ...]:
    if after not in order:
        raise ConfigError(f"cannot insert stage {name!r} after {after!r}: not in {', '.join(order)}")
    i = order.index(after) + 1
    return order[:i] + (name,) + order[i:]


def resolve_stages(order: tuple[str, ...]) -> list[tuple[str, Callable]]:
    """The stage functions in order; a missing one is named in one line before anything runs."""
    missing = [name for name in order if name not in STAGES]
    if missing:
        raise ConfigError(f"stage(s) {', '.join(missing)} not registered (available: {', '.join(STAGES.names())}); "
                          "plug-in stages are found through the installed package's entry points (pip install -e .)")
    return [(name, STAGES.get(name)) for name in order]
