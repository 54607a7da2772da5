"""The options of a run, grouped by the stage that reads them, and the method's own options.

The Python API and the command line pass flat keywords (`sparsity=0.9, lr=1e-3, rho=0.1`); each
common keyword belongs to exactly one group, and every other keyword is the method's, checked
against the method's Config (methods/base.py), which owns its defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..errors import ConfigError
from ..methods import METHODS
from ..runtimes import get_runtime
from ..tasks import TASKS
from ..tasks.base import AUTO
from ..sensitivity import DEFAULT_MAX_RELATIVE_L2
from ..sparsity import parse_pattern
from ..sparsity.nm_planner import NM_PLAN_MIN_PARAMS, NMPlanThresholds, check_plannable
from ..sparsity.patterns import TRT_SPARSE_MIN_CHANNELS
from ..training import OptimizerConfig
from ..training.optim import DEFAULT_LR


@dataclass
class SourceOptions:
    """Where the samples come from and what they mean (the data stage)."""

    data: str | None = None  # None: the model's metadata names it, else data-free
    val_data: str | None = None  # separate validation data; otherwise --val-fraction of --data
    preprocess: str | None = None
    val_fraction: float = 0.2
    limit: int | None = None
    input_shapes: dict[str, list[int]] | None = None
    random_samples: int = 64  # data-free runs measure fidelity on this many random inputs
    task: str = "auto"  # a registered task; auto: classification with labels, distillation without


@dataclass
class PlanOptions:
    """Which weights are pruned, to what sparsity, in which pattern (the plan stage)."""

    sparsity: float | None = None  # None: 0.5, or none at all for methods that find their own (olmp)
    pattern: str = "unstructured"
    scope: str = "layer"  # layer | global (patterns with global_scope)
    exclude: tuple[str, ...] = ()
    overrides: dict[str, float] = field(default_factory=dict)
    keep_ends_dense: bool | None = None
    keep_fixed: bool = True  # weights that are not learned (constant, arange, integer kernels) stay dense
    sensitivity: str = "auto"  # on: keep dense the layers that break an output alone; auto: on when nothing trains after pruning; off
    sensitivity_threshold: float = DEFAULT_MAX_RELATIVE_L2
    sensitivity_samples: int = 8
    error_budget: float | None = None  # None: 0.1 when nothing trains afterwards, else off
    plan: str = "all"  # all: every layer the pattern applies to; auto (N:M): only those expected to run sparse (deploy.md §3)
    plan_min_channels: int = TRT_SPARSE_MIN_CHANNELS
    plan_channel_multiple: int = 0
    plan_min_params: int = NM_PLAN_MIN_PARAMS
    round_to: int | str = 8  # the channel pattern: kept channel counts are multiples of this; "auto": the runtime's block
    target_flops: float | None = None  # the channel pattern: the fraction of multiply-adds to keep

    def thresholds(self) -> NMPlanThresholds:
        return NMPlanThresholds(self.plan_min_channels, self.plan_channel_multiple, self.plan_min_params)


@dataclass
class TrainingOptions:
    """The optimiser every training method uses, the batch and the seed. The optimiser fields left
    None take the method's own default (its Config's `optimizer`: SGD for SLR/ADMM, Adam for the rest)."""

    optimizer: str | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    lr_schedule: str | None = None
    batch_size: int = 64
    seed: int = 0
    # None: the method's default (Method.reinsert_bn / recalibrate_bn)
    reinsert_bn: bool | None = None  # train folded convs with BatchNorm put back (compressor/training/folded_batchnorm.py)
    recalibrate_bn: bool | None = None  # re-estimate folded convs' BatchNorm statistics after hard pruning
    distill_weight: float = 0.0  # with labels: add this times the task's distillation loss (objectives/teacher_assisted.py)
    augment: bool = True  # train with the task's own augmentation, where it has one (lane, detection: mirroring)

    def batchnorm_for(self, method: str) -> tuple[bool, bool]:
        """(reinsert_bn, recalibrate_bn) as given, else `method`'s defaults."""
        cls = METHODS.get(method)
        return (cls.reinsert_bn if self.reinsert_bn is None else self.reinsert_bn,
                cls.recalibrate_bn if self.recalibrate_bn is None else self.recalibrate_bn)

    def optimizer_for(self, method: str) -> OptimizerConfig | None:
        """`method`'s own default optimiser with the fields given here replaced; None for a method
        that does not train with one."""
        config = {f.name: f for f in fields(METHODS.get(method).Config)}.get("optimizer")
        if config is None:
            return None
        default = config.default_factory()
        lr = self.lr
        if lr is None and self.optimizer not in (None, default.name):
            lr = DEFAULT_LR[self.optimizer]
        given = {"name": self.optimizer, "lr": lr, "momentum": self.momentum, "weight_decay": self.weight_decay,
                 "schedule": self.lr_schedule}
        return replace(default, **{k: v for k, v in given.items() if v is not None})


@dataclass
class OutputOptions:
    """What is written where (the export and report stages)."""

    output: Path | None = None  # folder; default compressed/<model>-<method>/
    resume: bool = False
    sparse_initializers: bool = False
    dynamic_batch: bool = False  # declare the exported file's batch symbolic (the model must generalise)
    engine: str | None = None  # "trt": also build a TensorRT engine next to the pruned ONNX (the `engine` stage)


@dataclass
class MeasureOptions:
    """The measure stage's latency protocol (compressor/runtimes/latency.py): timed rounds until
    `latency_seconds` have passed (None: the default for the runtime's device), at least the
    protocol's minimum, at most `latency_runs`; one measurement per batch size."""

    runtime: str = "onnxruntime-cpu"  # a registered runtime (compressor/runtimes)
    runtime_options: dict = field(default_factory=dict)  # the runtime's own options (--runtime-option)
    latency_batches: tuple[int, ...] | None = None  # None: 1, or the batch a model fixed to one runs
    latency_seconds: float | None = None
    latency_runs: int | None = None  # an upper bound on the timed rounds; None: the protocol's maximum


GROUPS = {"source": SourceOptions, "plan": PlanOptions, "training": TrainingOptions, "output": OutputOptions,
          "measure": MeasureOptions}
NOT_FINGERPRINTED = {"output", "resume", "progress", "engine", "latency_runs", "latency_seconds", "runtime", "sparse_initializers",
                     "dynamic_batch", "runtime_options", "latency_batches"}
# options added after checkpoints existed: at these values they are left out, so older checkpoints stay resumable
FINGERPRINT_DEFAULTS = {"keep_fixed": True, "sensitivity": "auto", "sensitivity_threshold": DEFAULT_MAX_RELATIVE_L2,
                        "sensitivity_samples": 8, "error_budget": None, "random_samples": 64, "task": "auto",
                        "plan": "all", "plan_min_channels": TRT_SPARSE_MIN_CHANNELS, "plan_channel_multiple": 0,
                        "plan_min_params": NM_PLAN_MIN_PARAMS, "round_to": 8, "target_flops": None,
                        "reinsert_bn": False, "recalibrate_bn": False,
                        "distill_weight": 0.0, "augment": True}


@dataclass
class CompressOptions:
    method: str = "magnitude"
    method_options: dict = field(default_factory=dict)  # the method's Config fields; absent: its defaults
    source: SourceOptions = field(default_factory=SourceOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    measure: MeasureOptions = field(default_factory=MeasureOptions)
    progress: bool = True

    @classmethod
    def from_keywords(cls, method: str = "magnitude", progress: bool = True, method_options: dict | None = None,
                      **keywords) -> "CompressOptions":
        """Flat keywords (as `compress()` and the CLI pass them) sorted into their groups; the
        rest, unless None (not given), are the method's options."""
        groups = {}
        for group, kind in GROUPS.items():
            names = {f.name for f in fields(kind)}
            groups[group] = kind(**{k: keywords.pop(k) for k in list(keywords) if k in names})
        extra = {k: v for k, v in keywords.items() if v is not None}
        options = cls(method=method, method_options={**extra, **(method_options or {})}, progress=progress, **groups)
        options.check()
        return options

    def flat(self) -> dict:
        """Every option by its keyword, groups flattened, the method's options included."""
        values = {"method": self.method}
        for group in GROUPS:
            values.update(asdict(getattr(self, group)))
        values.update(self.method_options)
        return values

    def fingerprint(self, model_sha: str) -> dict:
        """The options a checkpoint must agree with to be resumed."""
        keep = {k: v for k, v in self.flat().items() if k not in NOT_FINGERPRINTED}
        keep["reinsert_bn"], keep["recalibrate_bn"] = self.training.batchnorm_for(self.method)
        optimizer = self.training.optimizer_for(self.method)
        if optimizer is not None:  # what the run trains with, however it was given
            keep.update(optimizer=optimizer.name, lr=optimizer.lr, momentum=optimizer.momentum,
                        weight_decay=optimizer.weight_decay, lr_schedule=optimizer.schedule)
        for key, default in FINGERPRINT_DEFAULTS.items():
            if keep.get(key) == default:
                del keep[key]
        return {"model_sha256": model_sha, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in keep.items()}}

    def check(self) -> None:
        """Reject contradictory or out-of-range common options in one line (methods check their own)."""
        plan, source, training = self.plan, self.source, self.training
        if plan.sparsity is not None and not 0.0 <= plan.sparsity < 1.0:
            raise ConfigError(f"--sparsity must be in [0, 1), got {plan.sparsity}")
        if not 0.0 < source.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {source.val_fraction}")
        if training.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {training.batch_size}")
        if not training.distill_weight >= 0:
            raise ConfigError(f"--distill-weight must be 0 or more, got {training.distill_weight}")
        epochs = self.method_options.get("epochs")
        if isinstance(epochs, int) and epochs < 0:
            raise ConfigError(f"--epochs must be 0 or more, got {epochs}")
        if plan.sensitivity not in ("auto", "on", "off"):
            raise ConfigError(f"--sensitivity must be auto, on or off, got {plan.sensitivity!r}")
        if not plan.sensitivity_threshold > 0:
            raise ConfigError(f"--sensitivity-threshold must be positive, got {plan.sensitivity_threshold}")
        if source.random_samples < 1:
            raise ConfigError(f"--random-samples must be at least 1, got {source.random_samples}")
        if plan.sensitivity_samples < 1:
            raise ConfigError(f"--sensitivity-samples must be at least 1, got {plan.sensitivity_samples}")
        if plan.error_budget is not None and plan.error_budget < 0:
            raise ConfigError(f"--error-budget must be 0 (off) or more, got {plan.error_budget}")
        if plan.plan not in ("all", "auto"):
            raise ConfigError(f"--plan must be all or auto, got {plan.plan!r}")
        if plan.plan == "auto":
            # a pattern that is not N:M, or a bad threshold, fails before any work
            check_plannable(parse_pattern(plan.pattern))
            plan.thresholds()
        if isinstance(plan.round_to, str) and plan.round_to.isdigit():
            plan.round_to = int(plan.round_to)  # the command line's text
        if plan.round_to != "auto" and (not isinstance(plan.round_to, int) or isinstance(plan.round_to, bool)
                                        or plan.round_to < 1):
            raise ConfigError(f"--round-to must be auto or 1 or more, got {plan.round_to!r}")
        if plan.target_flops is not None:
            if not parse_pattern(plan.pattern).coupled:
                raise ConfigError(f"--target-flops sets how many channels the channel pattern removes; pattern {plan.pattern!r} "
                                  "is not it (use --pattern channel)")
            if plan.sparsity is not None:
                raise ConfigError("give --sparsity or --target-flops, not both")
            if not 0.0 < plan.target_flops <= 1.0:
                raise ConfigError(f"--target-flops must be in (0, 1], got {plan.target_flops}")
        if plan.scope not in ("layer", "global"):
            raise ConfigError(f"--scope must be layer or global, got {plan.scope!r}")
        if self.output.engine not in (None, "trt"):
            raise ConfigError(f"--engine takes trt, got {self.output.engine!r}")
        # unknown names fail here, before any work, not after the training
        METHODS.get(self.method)
        get_runtime(self.measure.runtime, options=self.measure.runtime_options)  # its options, too
        batches = self.measure.latency_batches
        if batches is not None and (not batches or any(b < 1 for b in batches)):
            raise ConfigError(f"--latency-batch sizes must be 1 or more, got {list(self.measure.latency_batches)}")
        if self.source.task != AUTO:
            TASKS.get(self.source.task)
        if self.measure.latency_runs is not None and self.measure.latency_runs < 1:
            raise ConfigError(f"--latency-runs must be at least 1, got {self.measure.latency_runs}")
        if self.measure.latency_seconds is not None and not self.measure.latency_seconds >= 0:
            raise ConfigError(f"--latency-seconds must be 0 or more, got {self.measure.latency_seconds}")
