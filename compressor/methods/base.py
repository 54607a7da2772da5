"""The method interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Callable

from ..errors import ConfigError
from ..training import MaskSet, Session

METHODS: dict[str, type["Method"]] = {}


def register_method(name: str):
    def wrap(cls):
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def get_method(name: str, **options) -> "Method":
    """The method `name` with its typed config built from `options` (unknown options are refused)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    known = {f.name for f in fields(cls.Config)}
    unknown = sorted(k for k, v in options.items() if k not in known and v is not None)
    if unknown:
        raise ConfigError(f"method {name!r} does not take {', '.join('--' + u.replace('_', '-') for u in unknown)}")
    return cls(cls.Config(**{k: v for k, v in options.items() if k in known and v is not None}))


@dataclass
class PruneContext:
    """What a method works with. The plan says which weights to prune and to what target;
    the pattern projects weights onto the allowed set; the session trains and checkpoints."""

    module: object
    plan: object  # compressor.sparsity LayerPlan
    pattern: object  # compressor.sparsity Pattern
    session: Session
    log: Callable[[str], None] = print
    record: dict = field(default_factory=dict)  # extra report entries (e.g. one_shot_metrics)
    input_shape: list[int] | None = None  # the single input's concrete shape, batch 1 (for cost counting)
    notes: list[str] = field(default_factory=list)  # lines for the report's notes


class Method(ABC):
    name: str = ""
    needs_data: bool = True  # whether it can run without training data
    # True when the method decides each layer's sparsity itself (OLMP): it takes no --sparsity, and
    # the plan leaves the first and last layers prunable unless the user says otherwise.
    finds_own_sparsity: bool = False

    @dataclass(frozen=True)
    class Config:
        epochs: int = 0

    def __init__(self, config):
        self.config = config

    def requires_data(self) -> bool:
        return self.needs_data

    @abstractmethod
    def run(self, ctx: PruneContext) -> MaskSet:
        """Prune ctx.module in place; return the final masks."""

    def describe(self) -> dict:
        return {"method": self.name, **{f.name: _plain(getattr(self.config, f.name)) for f in fields(self.config)}}


def _plain(value):
    return value.to_dict() if hasattr(value, "to_dict") else value
