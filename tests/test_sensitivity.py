"""Per-layer sensitivity, per-output fidelity metrics, and keep_dense in the layer plan."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ConfigError
from compressor.objectives import DistillationObjective
from compressor.objectives.fidelity import channel_axis, channel_ranges, output_fidelity
from compressor.onnx_import import load_onnx_proto
from compressor.sensitivity import layer_sensitivity
from compressor.sparsity import NM, Unstructured, compute_masks, plan_layers
from test_sparsity_plan import ORDER, mixed_model


def two_head_model() -> onnx.ModelProto:
    """x[N,8,6,6] -> body conv 8->8 3x3 -> Relu -> head conv 8->6 1x1 -> y [N,6,6,6]; idx = ArgMax(y, axis 1).

    Head channels 0-3 have weights ~1, channels 4-5 ~0.01: at 50% magnitude pruning the head
    loses every weight of channels 4-5 (a collapsed group) while y's whole cosine barely moves.
    """
    rng = np.random.default_rng(0)
    body = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2
    head = rng.standard_normal((6, 8, 1, 1)).astype(np.float32)
    head[4:] *= 0.01
    inits = [numpy_helper.from_array(body, "body.w"), numpy_helper.from_array(head, "head.w")]
    nodes = [
        helper.make_node("Conv", ["x", "body.w"], ["b"], name="body", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "head.w"], ["y"], name="head", kernel_shape=[1, 1]),
        helper.make_node("ArgMax", ["y"], ["idx"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "two_head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 6, 6]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture()
def two_head():
    module = load_onnx_proto(two_head_model())
    x = torch.randn(8, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    return module, x


def test_channel_axis_rules():
    assert channel_axis((8, 10)) is None
    assert channel_axis((1, 22, 2100)) == 1
    assert channel_axis((1, 2100, 22)) == 2
    assert channel_axis((2, 6, 5, 5)) == 1
    assert channel_ranges([2, 3]) == "channels 2-3"
    assert channel_ranges([0, 1, 2, 3, 7]) == "channels 0-3, 7"
    assert channel_ranges([5]) == "channel 5"


def test_sensitivity_flags_a_collapsed_channel_group_that_the_whole_output_hides(two_head):
    module, x = two_head
    before = {n: module.parameter(n).detach().clone() for n in module.weights}
    pattern = Unstructured()
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_ends_dense=False)
    assert list(plan.targets) == ["body.w", "head.w"]
    result = layer_sensitivity(module, plan, pattern, [x])

    body, head = result.layers
    assert head.keep_dense and not body.keep_dense
    assert head.output == "y" and head.group == "channels 4-5"
    assert head.relative_l2 == pytest.approx(1.0)  # the channels are zero after pruning
    assert head.output_cosine > 0.95  # what a whole-output metric would have reported
    assert head.reason == "pruning it alone: y channels 4-5 rel. error 1.00"
    assert body.relative_l2 < 0.5
    assert set(head.group_errors) == {"y"}  # the int64 ArgMax output is not measured
    assert result.keep_dense() == {"head.w": head.reason}
    assert result.samples == 8
    d = result.to_dict()
    assert d["flagged"] == ["head.w"] and d["layers"][1]["group"] == "channels 4-5"
    # restored bit for bit
    assert all(torch.equal(module.parameter(n).detach(), before[n]) for n in module.weights)

    # the result feeds the plan: the head stays dense with the sensitivity reason
    replanned = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_ends_dense=False, keep_dense=result.keep_dense())
    assert replanned.skipped == {"head.w": head.reason} and list(replanned.targets) == ["body.w"]


def test_sensitivity_cosine_bound_and_budget(two_head):
    module, x = two_head
    pattern = Unstructured()
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_ends_dense=False)
    # a loose error bound with a cosine bound: the zeroed channels have cosine 0 and trip it
    result = layer_sensitivity(module, plan, pattern, [x], max_relative_l2=10.0, min_cosine=0.5)
    assert result.keep_dense() == {"head.w": "pruning it alone: y channel 4 cosine 0.00"}
    # with nothing flagged, a budget keeps the layer contributing most to the worst group
    loose = layer_sensitivity(module, plan, pattern, [x], max_relative_l2=10.0)
    assert loose.keep_dense() == {}
    kept = loose.within_budget(0.5)
    assert list(kept) == ["head.w"]
    assert kept["head.w"].startswith("pruned with the other layers: y channel")
    assert loose.within_budget(10.0) == {}


def test_per_output_metrics_expose_a_collapsed_group(two_head):
    module, x = two_head
    objective = DistillationObjective(classifier=False, output_names=module.output_names)
    with torch.no_grad():
        teacher = module(x)
        y, idx = teacher
        student_y = y.clone()
        student_y[:, 4:] = 0.0  # one head collapses
        acc = objective.new_accumulator()
        objective.accumulate(acc, (student_y, idx), None, teacher)
    metrics = objective.finalize(acc)
    assert set(metrics) == {"relative_l2", "cosine", "relative_l2/y", "cosine/y", "worst_channel_relative_l2/y"}
    assert metrics["cosine"] > 0.99  # hidden in the whole-output number
    assert metrics["worst_channel_relative_l2/y"] == pytest.approx(1.0)
    ref = y.double()
    expected = float((ref[:, 4:].square().sum() / ref.square().sum()).sqrt())
    assert metrics["relative_l2/y"] == pytest.approx(expected)
    assert metrics["relative_l2"] == pytest.approx(expected)  # the int output adds nothing
    (fid,) = objective.per_output(acc)
    assert fid.worst_channel in (4, 5) and fid.channels_above(0.5) == [4, 5]
    # the loss ignores the integer output too
    assert float(objective.loss((student_y, idx), None, teacher)) == pytest.approx(float((student_y - y).square().mean()))


def test_output_fidelity_rank2_is_one_group_and_zero_channels_are_floored():
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (f,) = output_fidelity(t * 1.1, t)
    assert f.channel_axis is None and f.worst_channel is None and f.group_label() == ""
    assert f.relative_l2 == pytest.approx(0.1) and f.cosine == pytest.approx(1.0)
    # a channel that is zero in the reference: its error is measured against the floor, not 0
    ref = torch.zeros(1, 3, 4, 4)
    ref[:, :2] = 1.0
    student = ref.clone()
    student[:, 2] = 1e-6
    (g,) = output_fidelity(student, ref)
    # ‖1e-6 · 16 entries‖ = 4e-6 against 1% of the root-mean-square channel norm sqrt((16 + 16 + 0) / 3)
    assert g.channel_relative_l2[2] == pytest.approx(4e-6 / (0.01 * (32 / 3) ** 0.5), rel=1e-6)


# ---- keep_dense in the plan ------------------------------------------------------------------
def test_keep_dense_beats_pattern_scope_exclusions_and_ends():
    module = load_onnx_proto(mixed_model())
    keep = {"conv2.w": "fixed weights: arange 0..7 along input channels (an index ramp, e.g. a decoding integral)"}
    for kwargs in (dict(pattern=Unstructured(), sparsity=0.5),
                   dict(pattern=Unstructured(), sparsity=0.5, scope="global"),
                   dict(pattern=NM(2, 4), sparsity=0.5, keep_ends_dense=False),
                   dict(pattern=Unstructured(), sparsity=0.5, exclude=["conv2.w"])):
        plan = plan_layers(module.weights, keep_dense=keep, **kwargs)
        assert plan.skipped["conv2.w"] == keep["conv2.w"]
        assert "conv2.w" not in plan.targets and "conv2.w" not in plan.global_pool
        assert list(plan.targets) + list(plan.skipped) != [] and set(plan.targets) | set(plan.skipped) == set(ORDER)
        assert any(n.startswith("1 layer(s) must stay dense") for n in plan.notes)
    masks = compute_masks({n: module.parameter(n) for n in plan.targets}, module.weights, plan, Unstructured())
    assert "conv2.w" not in masks


def test_override_on_a_kept_dense_layer_is_not_applied_and_noted():
    module = load_onnx_proto(mixed_model())
    keep = {"conv2.w": "pruning it alone: y rel. error 0.97"}
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, overrides={"*conv*": 0.8}, keep_dense=keep)
    assert plan.skipped["conv2.w"] == keep["conv2.w"]
    assert plan.targets["conv1.w"] == 0.8  # the override still applies to the others
    assert ("--override '*conv*' -> 0.8 is not applied to conv2.w: it stays dense "
            "(pruning it alone: y rel. error 0.97).") in plan.notes


def test_keep_dense_errors():
    module = load_onnx_proto(mixed_model())
    with pytest.raises(ConfigError, match="keep_dense names 'nope'"):
        plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, keep_dense={"nope": "x"})
    # protection that leaves nothing to prune is not an error: the plan says so and the run goes on
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, keep_dense={n: "fixed" for n in ORDER})
    assert not plan.targets and set(plan.skipped) == set(ORDER) and any("Nothing is pruned" in n for n in plan.notes)
    with pytest.raises(ConfigError, match="nothing to prune"):  # the user's own exclusions still are
        plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, exclude=["*"])
