"""The seams: a method, a pattern, a task, a runtime and a stage defined here, in the test, are
registered and run by the real pipeline without any change to the package: each is one class or
function plus a registration. The first test runs a toy of each of the four plug-in kinds in one
pipeline run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from cli import main
from compressor import compress
from compressor.errors import ConfigError
from compressor.methods import METHODS, Method, MethodResult, MetricsAfterPruning, ReportSection, option
from compressor.methods.magnitude import prune_to_plan
from compressor.objectives import MetricSpec, Objective
from compressor.pipeline import DEFAULT_STAGES, STAGES, insert_stage
from compressor.runtimes import RUNTIMES, Runtime, RuntimeSession, get_runtime
from compressor.sparsity import PATTERNS, Pattern, keep_count, top_k_mask
from compressor.tasks import TASKS, Task
from compressor.training import MaskSet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=3, log=lambda message: None)


class EveryOther(Method):
    """Toy method: zeros the smallest weights at the plan's targets, then, if asked, every other
    remaining entry of the first pruned layer too. Reports what it did in its own section."""

    @dataclass(frozen=True)
    class Config:
        extra_zeros: bool = option(False, "Also zero every other kept entry of the first layer")

    def requires_data(self) -> bool:
        return False

    def run(self, ctx) -> MethodResult:
        masks = prune_to_plan(ctx.module, ctx.plan, ctx.pattern)
        first = next(iter(masks))
        if self.config.extra_zeros:
            flat = masks[first].reshape(-1)
            kept = flat.nonzero().reshape(-1)
            flat[kept[::2]] = False
            MaskSet(masks).apply(ctx.module)
        metrics = ctx.session.evaluate(ctx.module)
        kept = {name: int(mask.sum()) for name, mask in masks.items()}
        section = ReportSection("every_other", "Every other (toy)", {"kept": kept},
                                markdown=lambda figures: [f"Kept entries of `{first}`: {kept[first]}."])
        return MethodResult(MaskSet(masks), MetricsAfterPruning("toy-pruned", metrics, "right after the toy prune"),
                            sections=[section], notes=["toy method ran"])


class MeanAbsError(Objective):
    """Toy objective: mean absolute difference of the first output from the dense model's."""

    name = "mae"
    kind = "fidelity"
    needs_teacher = True
    primary_metric = "mean_abs_error"

    def metric_specs(self):
        return {"mean_abs_error": MetricSpec("mean_abs_error", False, "", "mean |pruned - dense| of the first output")}

    def loss(self, outputs, labels, teacher_outputs=None):
        first = outputs[0] if isinstance(outputs, tuple) else outputs
        reference = teacher_outputs[0] if isinstance(teacher_outputs, tuple) else teacher_outputs
        return (first - reference).abs().mean()

    def new_accumulator(self):
        return {"sum": 0.0, "count": 0}

    def accumulate(self, acc, outputs, labels, teacher_outputs):
        loss = self.loss(outputs, labels, teacher_outputs)
        first = outputs[0] if isinstance(outputs, tuple) else outputs
        acc["sum"] += float(loss) * first.numel()
        acc["count"] += first.numel()

    def finalize(self, acc):
        return {"mean_abs_error": acc["sum"] / max(acc["count"], 1)}


class MeanAbsErrorTask(Task):
    labels = "none: the dense model's outputs are the reference"
    uses_labels = False

    def objective(self, inputs):
        return MeanAbsError()


@dataclass(frozen=True)
class Pairs(Pattern):
    """Toy pattern: pairs of consecutive entries, kept or pruned whole by their L2 norm."""

    def eligible(self, info):
        return None if info.numel % 2 == 0 else "an odd number of entries"

    def density(self, sparsity, info=None):
        return 1.0 - sparsity if info is None else keep_count(info.numel // 2, sparsity) / (info.numel // 2)

    def _mask(self, weight, info, sparsity):
        pairs = weight.reshape(-1, 2)
        kept = top_k_mask(torch.linalg.vector_norm(pairs, dim=1), keep_count(pairs.shape[0], sparsity))
        return kept[:, None].expand_as(pairs).reshape(weight.shape)


class Tally(Runtime):
    """Toy runtime: onnxruntime on the CPU underneath, counting the runs it is asked for."""

    runs = 0

    def open(self, model):
        inner = get_runtime("onnxruntime-cpu", threads=self.threads).open(model)
        return TallySession(inner)

    def describe(self):
        return {"device": "Tally board", "device_name": "", "versions": {"tally": "1"}, "threads": self.threads}


class TallySession(RuntimeSession):
    def __init__(self, inner):
        self.inner, self.input_names, self.output_names = inner, inner.input_names, inner.output_names

    def run(self, feeds, outputs=None):
        Tally.runs += 1
        return self.inner.run(feeds, outputs)


@dataclass
class StageNote:
    seen_method: str
    entries: dict = field(default_factory=dict)

    def report_entries(self) -> dict:
        return {"toy_stage": {"method": self.seen_method, "parity_known": "export_parity" in self.entries}}


def toy_stage(state):
    """A stage inserted after export: reads typed outputs of earlier stages, adds to report.json."""
    return StageNote(state.loaded.method.name, state.exported.report_entries())


def test_a_toy_method_pattern_task_and_runtime_run_together(tmp_path):
    Tally.runs = 0
    with METHODS.registered("every-other", EveryOther), PATTERNS.registered("pairs", Pairs), \
            TASKS.registered("mae", MeanAbsErrorTask), RUNTIMES.registered("tally", Tally):
        report = compress(EXAMPLE, method="every-other", pattern="pairs", task="mae", runtime="tally", sparsity=0.5,
                          output=tmp_path / "out", **QUIET)
    assert not any(name in registry for name, registry in
                   (("every-other", METHODS), ("pairs", PATTERNS), ("mae", TASKS), ("tally", RUNTIMES)))
    assert report["training"]["method"] == "every-other" and report["task"] == "mae"
    assert report["metrics"]["compressed"]["mean_abs_error"] > 0
    assert report["latency_ms"]["runtime"] == "tally" and report["latency_ms"]["device"].startswith("Tally board")
    assert Tally.runs >= 2 * report["latency_ms"]["dense"]["runs"]  # every timed run went through the toy
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "out" / "model.onnx")).graph.initializer}
    pruned = [layer["name"] for layer in report["layers"] if layer["target"]]
    assert pruned
    for name in pruned:  # the toy pattern's zeros: whole pairs, half of them
        pairs = stored[name].reshape(-1, 2)
        zero = (pairs == 0).all(axis=1)
        assert zero.mean() == pytest.approx(0.5, abs=0.01)
        assert ((pairs == 0).any(axis=1) == zero).mean() > 0.99  # a pair is pruned whole (a weight may be 0 alone)
    assert "Tally board" in (tmp_path / "out" / "report.md").read_text()


def test_toy_method_and_task_run_through_the_pipeline(tmp_path):
    with METHODS.registered("every-other", EveryOther), TASKS.registered("mae", MeanAbsErrorTask):
        report = compress(EXAMPLE, method="every-other", task="mae", sparsity=0.5, extra_zeros=True,
                          output=tmp_path / "out", **QUIET)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["task"] == "mae" and saved["metrics"]["primary"] == "mean_abs_error"
    assert saved["metrics"]["specs"]["mean_abs_error"]["higher_is_better"] is False
    assert saved["metrics"]["dense"]["mean_abs_error"] == 0.0  # the dense model against itself
    assert saved["metrics"]["compressed"]["mean_abs_error"] > 0.0
    assert saved["after_pruning"]["stage"] == "toy-pruned"
    assert saved["toy_pruned_metrics"] == saved["after_pruning"]["metrics"]
    assert saved["training"]["extra_zeros"] is True and "toy method ran" in saved["notes"]
    # the method's option took effect: the first pruned layer kept about half of its 50%
    first = next(layer for layer in saved["layers"] if layer["target"])
    assert first["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert saved["every_other"]["kept"][first["name"]] == round(first["params"] * (1 - first["sparsity"]))
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "out" / "model.onnx")).graph.initializer}
    assert 1 - np.count_nonzero(stored[first["name"]]) / stored[first["name"]].size == pytest.approx(first["sparsity"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Every other (toy)" in md and f"Kept entries of `{first['name']}`" in md
    assert report["method"] == "every-other"
    assert "every-other" not in METHODS and "mae" not in TASKS  # registered for the block only


def test_toy_method_options_come_from_its_config(tmp_path):
    with METHODS.registered("every-other", EveryOther):
        with pytest.raises(ConfigError, match="does not take --rho"):
            compress(EXAMPLE, method="every-other", rho=0.1, output=tmp_path / "a", **QUIET)
        # the generic command-line form reaches options that have no flag of their own
        result = CliRunner().invoke(main, ["run", str(EXAMPLE), "--method", "every-other", "--sparsity", "0.5",
                                           "--method-option", "extra_zeros=yes", "-o", str(tmp_path / "b"), "-q",
                                           "--latency-runs", "2"])
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "b" / "report.json").read_text())["training"]["extra_zeros"] is True
        bad = CliRunner().invoke(main, ["run", str(EXAMPLE), "--method", "every-other", "--method-option", "nope=1",
                                        "-o", str(tmp_path / "c")])
        assert bad.exit_code == 2 and "has no option 'nope'" in bad.output


def test_a_stage_is_one_registration_and_one_insertion(tmp_path):
    order = insert_stage(DEFAULT_STAGES, "toy", after="export")
    assert order.index("toy") == order.index("export") + 1
    with STAGES.registered("toy", toy_stage):
        report = compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, output=tmp_path / "out", stages=order, **QUIET)
    assert report["toy_stage"] == {"method": "magnitude", "parity_known": True}
    with pytest.raises(ConfigError, match="cannot insert stage"):
        insert_stage(DEFAULT_STAGES, "toy", after="nowhere")


def test_method_defaults_are_the_methods_own(tmp_path):
    """The pipeline passes only what the user gave: each Config's defaults apply."""
    from compressor.methods import get_method

    assert get_method("slr").config.epochs == 10 and get_method("slr").config.retrain_epochs == 3
    assert get_method("admm").config.optimizer.name == "sgd" and get_method("olmp").config.epochs == 10
    olmp = get_method("olmp").config  # issue 14: one bound for the run, on training samples, every layer searched
    assert (olmp.constraint_baseline, olmp.constraint_data, olmp.search_layers, olmp.max_accuracy_drop) == ("dense", "train", "all", 1.0)
    assert get_method("magnitude", has_training_data=True).config.epochs == 3
    assert get_method("magnitude", has_training_data=False).config.epochs == 0
    assert get_method("olmp", epochs=2).config.epochs == 2
    with pytest.raises(ConfigError, match="does not take --schedule"):
        get_method("slr", schedule="gradual")
    assert torch.is_grad_enabled()


def test_command_line_method_options_are_the_configs_fields():
    """Each method option is written once, in its Config: the flags, their help and the defaults
    the help names are read from there."""
    from dataclasses import fields

    from compressor.methods.options import method_options

    help_text = " ".join(CliRunner().invoke(main, ["run", "--help"], terminal_width=400).output.split())
    specs = {spec.flag: spec for spec in method_options()}
    for name in METHODS.names():
        for f in fields(METHODS.get(name).Config):
            if f.metadata.get("help"):
                flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
                assert name in specs[flag].methods and flag in help_text, (name, flag)
    assert "slr: Step-size constant M > 1 (default 300)." in help_text
    assert "admm, slr: Penalty weight rho (default 0.1)." in help_text
    assert "magnitude: Fine-tuning epochs" in help_text and "(default 3 with training data, 0 without)" in help_text
