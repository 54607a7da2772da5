"""What the stages hand each other: one typed output per stage, kept in the run's state.

A stage reads the outputs of the stages before it through the typed properties below and
returns its own. An output may offer `report_entries() -> dict`: the report stage merges those
into report.json, so a stage added later shows up in the report without the report knowing it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .options import CompressOptions

CHECKPOINT_NAME = "resume-checkpoint.pt"  # the only file a failed run leaves behind
STAGING_DIR = ".partial"  # outputs wait here until every check passed


@dataclass
class Loaded:
    """The model twice (one copy to prune, one dense reference and teacher), its inputs and batch,
    and the method configured for this run."""

    module: object  # OnnxModule
    dense: object  # OnnxModule, frozen
    inputs: list[tuple[str, list[int], object]]  # (name, shape at batch 1, torch dtype)
    batch_info: object  # onnx_import.batching.BatchInfo
    batch_size: int  # training/evaluation batch: the option, or the model's own when outputs cannot be split
    metadata: dict[str, str]
    data_spec: str | None  # --data, or what the model's metadata names
    preprocess: object | None  # parsed --preprocess
    method: object  # methods.Method


@dataclass
class Prepared:
    """Training and validation samples and the task's objective."""

    train_data: object | None  # None: data-free (one-shot)
    val_data: object
    labelled: bool
    info: dict  # description, counts (report "data")
    task: object  # tasks.Task
    objective: object  # objectives.Objective
    split_name: str  # what the validation metrics are measured on: "validation split", "--val-data", "random inputs"
    augmentation: object = None  # the task's training augmentation (None: none, or --no-augment)

    @property
    def split(self) -> str:
        return f"{self.split_name} ({len(self.val_data)} samples)"


@dataclass
class Planned:
    plan: object  # sparsity.LayerPlan
    pattern: object  # sparsity.Pattern
    target: float | None  # the uniform target, None when the method searches its own
    protection: dict  # fixed weights, sensitivity pass, error budget (report "protection")
    nm_plan: dict | None = None  # --plan auto: eligible, planned and skipped layers (report "nm_plan")

    def report_entries(self) -> dict:
        return {"nm_plan": self.nm_plan} if self.nm_plan is not None else {}


@dataclass
class Pruned:
    result: object  # methods.MethodResult
    plan: object  # the plan, with the searched per-layer sparsity when the method found its own
    dense_metrics: dict
    session: object  # training.Session (its trace goes to the report)


@dataclass
class Verified:
    """The pruned module checked (pruned entries are exact zeros) and measured."""

    metrics: dict


@dataclass
class Exported:
    result: object  # exporters.ExportResult
    sample: list  # the input batch the parity check ran on
    sample_description: str  # what that batch is, in words
    slim: dict | None = None  # the channel pattern: what the physical removal did (exporters/slim.py)

    def report_entries(self) -> dict:
        entries = {"export_parity": self.result.parity.max_relative_error, "export_parity_inputs": self.sample_description}
        if self.slim is not None:
            entries["slim"] = self.slim
        return entries


@dataclass
class Measured:
    latency: dict  # report "latency_ms"


@dataclass
class RunState:
    path: Path  # the input model, never written
    options: CompressOptions
    log: Callable[[str], None]
    out_dir: Path
    staging: Path
    notes: list[str] = field(default_factory=list)  # lines for the report's notes
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, object] = field(default_factory=dict)  # stage name -> its output
    started: float = field(default_factory=time.perf_counter)

    def timed(self, key: str, fn):
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start

    def output(self, stage: str):
        if stage not in self.outputs:
            raise RuntimeError(f"stage {stage!r} has not run: the pipeline's stage order is wrong")
        return self.outputs[stage]

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    # typed access to the built-in stages' outputs
    @property
    def loaded(self) -> Loaded:
        return self.output("load")

    @property
    def prepared(self) -> Prepared:
        return self.output("data")

    @property
    def planned(self) -> Planned:
        return self.output("plan")

    @property
    def pruned(self) -> Pruned:
        return self.output("prune")

    @property
    def verified(self) -> Verified:
        return self.output("verify")

    @property
    def exported(self) -> Exported:
        return self.output("export")

    @property
    def measured(self) -> Measured | None:
        return self.outputs.get("measure")
