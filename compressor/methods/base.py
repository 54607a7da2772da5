"""The method interface, its registry, its typed result and its options.

A method is a registered class with a frozen `Config` dataclass. That Config is the single source
of the method's options: their names, types, defaults and help text. The command line and the
Python API are derived from it (methods/options.py); the pipeline passes on only the options the
user gave, so the Config's defaults are the ones that apply.

    @register_method("mine")
    class Mine(Method):
        @dataclass(frozen=True)
        class Config:
            epochs: int = option(3, "Training epochs.")
            strength: float = option(0.5, "How hard to push.", flag="--mine-strength")

        def run(self, ctx: PruneContext) -> MethodResult: ...
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ..errors import ConfigError
from ..registry import Registry
from ..training import MaskSet, Session

BUILTIN_METHODS = ("magnitude", "slr", "admm", "olmp")


def _load_builtin_methods() -> None:
    # The built-in methods register themselves when imported (plug-in discovery, not a dependency
    # of this module on them).
    for name in BUILTIN_METHODS:
        importlib.import_module(f"{__package__}.{name}")


METHODS: Registry[type["Method"]] = Registry("method", loader=_load_builtin_methods)
register_method = METHODS.register


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] | None = None,
           default_text: str | None = None):
    """A Config field that is a user option: `help` is its only description; the command line
    spells it `flag` (default: --field-name); `default_text` explains a None default."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "default_text": default_text})


def get_method(name: str, *, has_training_data: bool = True, **options) -> "Method":
    """The method `name` with its Config built from `options`; None values mean "not given" (the
    Config's default applies) and options the method does not take are refused in one line."""
    cls = METHODS.get(name)
    known = {f.name for f in fields(cls.Config)}
    unknown = sorted(k for k, v in options.items() if k not in known and v is not None)
    if unknown:
        owners = sorted(n for n, c in METHODS.items() if unknown[0] in {f.name for f in fields(c.Config)})
        raise ConfigError(f"method {cls.name!r} does not take "
                          + ", ".join(f"--{u.replace('_', '-')} {_shown(options[u])}" for u in unknown)
                          + (f" (an option of {', '.join(owners)})" if owners else ""))
    config = cls.Config(**{k: v for k, v in options.items() if k in known and v is not None})
    return cls(config, has_training_data=has_training_data)


@dataclass
class PruneContext:
    """What a method works with. The plan says which weights to prune and to what target;
    the pattern projects weights onto the allowed set; the session trains and checkpoints."""

    module: object
    plan: object  # compressor.sparsity LayerPlan
    pattern: object  # compressor.sparsity Pattern
    session: Session
    log: Callable[[str], None] = print
    input_shape: list[int] | None = None  # the single input's concrete shape, batch 1 (for cost counting)
    source: object = None  # the dense ONNX file (Path), for a method that times layers of it
    runtime: object = None  # the Runtime the run measures latency on (a latency objective's target)


@dataclass
class MetricsAfterPruning:
    """The metrics right after the weights were pruned, before any retraining recovered them:
    the 'no retraining' figure of the SLR paper, or magnitude pruning's one-shot figure."""

    stage: str  # "hard-pruned" | "one-shot" | a new method's own word
    metrics: dict[str, float] | None
    description: str  # "after hard pruning, before retraining"
    recalibrated: dict[str, float] | None = None  # the same, after BatchNorm recalibration (--recalibrate-bn)

    @property
    def legacy_key(self) -> str:
        """The report.json key earlier versions wrote ("hard_pruned_metrics", "one_shot_metrics")."""
        return self.stage.replace("-", "_") + "_metrics"

    def to_dict(self) -> dict:
        doc = {"stage": self.stage, "metrics": self.metrics, "description": self.description}
        if self.recalibrated is not None:
            doc["recalibrated"] = self.recalibrated
        return doc


@dataclass
class ReportSection:
    """A method's own part of the report. `data` goes to report.json under `key`; report.md gets
    `title` as a heading and the lines of `markdown(figures written)`; each of `figures` (file
    name -> function drawing a matplotlib Figure, or None when there is nothing to draw) is
    saved beside the report."""

    key: str
    title: str
    data: dict
    markdown: Callable[[set[str]], list[str]] = lambda figures: []
    figures: dict[str, Callable[[], object]] = field(default_factory=dict)


@dataclass
class MethodResult:
    masks: MaskSet
    after_pruning: MetricsAfterPruning | None = None
    sections: list[ReportSection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines for the report's notes


class Method(ABC):
    name: str = ""
    # True when the method decides each layer's sparsity itself (OLMP): it takes no --sparsity, and
    # the plan leaves the first and last layers prunable unless the user says otherwise.
    finds_own_sparsity: bool = False
    # The defaults of --reinsert-bn and --recalibrate-bn for this method (the user's flags win).
    reinsert_bn: bool = False
    recalibrate_bn: bool = False

    @dataclass(frozen=True)
    class Config:
        epochs: int = option(3, "Training epochs.")

    def __init__(self, config, has_training_data: bool = True):
        self.config = config
        self.has_training_data = has_training_data

    def requires_data(self) -> bool:
        """Whether this method, with its config, trains (and so needs training data)."""
        return True

    @abstractmethod
    def run(self, ctx: PruneContext) -> MethodResult:
        """Prune ctx.module in place; return the final masks and what the report should show."""

    def describe(self) -> dict:
        return {"method": self.name, **{f.name: _plain(getattr(self.config, f.name)) for f in fields(self.config)}}


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _plain(value):
    return value.to_dict() if hasattr(value, "to_dict") else value
