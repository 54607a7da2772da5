"""OLMP's constraint: the pruned net may lose at most `bound` of its task metric (olmp.md §1, §6).

The metric is the objective's primary one: accuracy with labels, top-1 agreement with the dense
model without them (both in points), or relative L2 error to the dense outputs for non-classifiers.
It is measured on a fixed set of samples, in inference mode, so every candidate of every search
call is judged on the same data (the reference used the current training minibatch, in train mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import default_collate

from ...errors import ConfigError
from ...objectives.base import as_tuple

EVAL_CHUNK = 1024  # samples per forward pass while measuring


@dataclass(frozen=True)
class Constraint:
    """metric(candidate) must stay within `bound` of `baseline` (below it when higher is better)."""

    metric: str
    higher_is_better: bool
    bound: float  # in the metric's units (a fraction for accuracy)
    in_points: bool = False  # a fraction metric: the bound is read and written in percentage points

    def feasible(self, value: float, baseline: float) -> bool:
        slack = 1e-9  # a candidate exactly on the bound is feasible despite float rounding
        if self.higher_is_better:
            return value >= baseline - self.bound - slack
        return value <= baseline + self.bound + slack

    def describe(self, baseline: float | None = None) -> str:
        """The rule in words; with a fixed `baseline` (the dense model's value) as a threshold."""
        name = self.metric.replace("_", " ")
        if self.in_points:
            drop = f"{100 * self.bound:g} points"
            if baseline is None:
                return f"{name} drops by at most {drop}"
            return f"{name} >= {100 * (baseline - self.bound):.2f}% ({drop} below {100 * baseline:.2f}%)"
        if baseline is None:
            return f"{name} rises by at most {self.bound:g}"
        return f"{name} <= {baseline + self.bound:.4g} ({self.bound:g} above {baseline:.4g})"


class ConstraintSet:
    """A fixed batch of samples with what measuring needs: labels, or the dense model's outputs."""

    def __init__(self, objective, inputs: torch.Tensor, labels: torch.Tensor | None, teacher, description: str):
        self.objective = objective
        self.inputs = inputs
        self.labels = labels
        self.description = description
        self.teacher_outputs = None
        if objective.needs_teacher:
            with torch.no_grad():
                chunks = [as_tuple(teacher(x)) for x in inputs.split(EVAL_CHUNK)]
            self.teacher_outputs = tuple(torch.cat(parts) for parts in zip(*chunks))

    @classmethod
    def from_session(cls, session, source: str, samples: int, seed: int) -> "ConstraintSet":
        """`samples` samples drawn (seeded) from the training data ("train") or the validation split ("val")."""
        data = {"train": session.train_data, "val": session.val_data}.get(source)
        if source not in ("train", "val"):
            raise ConfigError(f"--constraint-data must be train or val, got {source!r}")
        if data is None or len(data) == 0:
            raise ConfigError(f"--constraint-data {source}: the run has no {source} data")
        if samples < 1:
            raise ConfigError(f"--constraint-samples must be at least 1, got {samples}")
        generator = torch.Generator().manual_seed(seed + 7919)
        count = min(samples, len(data))
        order = torch.randperm(len(data), generator=generator)[:count].tolist()
        items = [data[i] for i in order]
        if isinstance(items[0][0], (list, tuple)):  # the search's sample batches are single tensors
            raise ConfigError("olmp supports single-input models; this model has several inputs (use slr, admm or magnitude)")
        inputs = torch.stack([item[0] for item in items])
        # labels may be a task's structured targets (a dict of tensors): collated like a batch
        labels = default_collate([item[1] for item in items]) if len(items[0]) > 1 else None
        split = "training data" if source == "train" else "validation split"
        return cls(session.objective, inputs, labels, session.teacher, f"{count} fixed samples of the {split}")

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @torch.no_grad()
    def measure(self, model) -> float:
        """The objective's primary metric of `model` on these samples (inference mode)."""
        was_training = model.training
        model.eval()
        acc = self.objective.new_accumulator()
        for start in range(0, len(self), EVAL_CHUNK):
            end = start + EVAL_CHUNK
            labels = _rows(self.labels, start, end)
            teacher = tuple(t[start:end] for t in self.teacher_outputs) if self.teacher_outputs is not None else None
            if teacher is not None and len(teacher) == 1:
                teacher = teacher[0]
            self.objective.accumulate(acc, model(self.inputs[start:end]), labels, teacher)
        model.train(was_training)
        return float(self.objective.finalize(acc)[self.objective.primary_metric])


def _rows(labels, start: int, end: int):
    """Samples start..end of collated labels: a tensor, or a dict of tensors (task targets)."""
    if labels is None:
        return None
    if isinstance(labels, dict):
        return {k: v[start:end] for k, v in labels.items()}
    return labels[start:end]


def constraint_for(objective, max_accuracy_drop: float, max_output_error: float) -> Constraint:
    """The bound in the primary metric's unit: points of a fraction metric (accuracy, agreement),
    else the metric's own unit (relative L2 error)."""
    spec = objective.spec(objective.primary_metric)
    if spec.unit == "fraction":
        if not 0 <= max_accuracy_drop <= 100:
            raise ConfigError(f"--max-accuracy-drop is in points and must lie in [0, 100], got {max_accuracy_drop}")
        return Constraint(spec.name, spec.higher_is_better, max_accuracy_drop / 100.0, in_points=True)
    if not max_output_error >= 0:
        raise ConfigError(f"--max-output-error must be 0 or more, got {max_output_error}")
    return Constraint(spec.name, spec.higher_is_better, max_output_error)
