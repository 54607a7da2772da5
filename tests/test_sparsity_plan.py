"""The layer plan (which weights are pruned, at what target, why not), masks, and sparsity stats."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ConfigError
from compressor.onnx_import import load_onnx_proto
from compressor.onnx_import.weights import WeightInfo
from compressor.sparsity import (
    NM,
    Filter,
    Unstructured,
    apply_masks,
    check_nm,
    compute_masks,
    keep_count,
    parse_pattern,
    plan_layers,
    sparsity_stats,
)
from onnx_builders import conv_gemm_model

# execution order of the prunable weights in mixed_model()
ORDER = ["conv1.w", "conv2.w", "gconv.w", "dwconv.w", "gemm0.w", "gemm1.w", "head.w"]


def mixed_model(seed: int = 0) -> onnx.ModelProto:
    """x[N,3,8,8] -> conv1 3->8 -> conv2 8->8 -> grouped conv (g=2) -> depthwise (g=8) -> GAP ->
    Gemm transB=0 [8,12] -> Gemm transB=1 [16,12] -> MatMul [16,4] ("head")."""
    rng = np.random.default_rng(seed)
    shapes = {
        "conv1.w": (8, 3, 3, 3), "conv2.w": (8, 8, 3, 3), "gconv.w": (8, 4, 3, 3), "dwconv.w": (8, 1, 3, 3),
        "gemm0.w": (8, 12), "gemm1.w": (16, 12), "head.w": (16, 4),
    }
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.3, n) for n, s in shapes.items()]
    inits.append(numpy_helper.from_array(np.zeros(8, np.float32), "conv1.b"))
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="stem/conv", **conv),
        helper.make_node("Conv", ["c1", "conv2.w"], ["c2"], name="block/conv", **conv),
        helper.make_node("Conv", ["c2", "gconv.w"], ["c3"], name="block/gconv", group=2, **conv),
        helper.make_node("Conv", ["c3", "dwconv.w"], ["c4"], name="block/dwconv", group=8, **conv),
        helper.make_node("GlobalAveragePool", ["c4"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "gemm0.w"], ["g0"], name="fc0", transB=0),
        helper.make_node("Gemm", ["g0", "gemm1.w"], ["g1"], name="fc1", transB=1),
        helper.make_node("MatMul", ["g1", "head.w"], ["y"], name="classifier"),
    ]
    graph = helper.make_graph(
        nodes, "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def module():
    return load_onnx_proto(mixed_model())


@pytest.fixture()
def fresh_module():
    return load_onnx_proto(mixed_model())


def covers_every_layer_once(plan, infos):
    assert list(plan.targets) + list(plan.skipped) != []
    assert set(plan.targets).isdisjoint(plan.skipped)
    ordered = [n for n in infos if n in plan.targets or n in plan.skipped]
    assert ordered == list(infos)
    assert list(plan.targets) == [n for n in infos if n in plan.targets]  # execution order


def test_importer_axes_for_the_mixed_model(module):
    # the nm tests in test_sparsity.py build WeightInfo by hand; check the importer agrees
    infos = module.weights
    assert list(infos) == ORDER
    assert [infos[n].reduction_axis for n in ORDER] == [1, 1, 1, 1, 0, 1, 0]
    assert [infos[n].groups for n in ORDER] == [1, 1, 2, 8, 1, 1, 1]


def test_nm_masks_on_imported_layers_run_along_the_node_reduction_axis(module):
    pattern = NM()
    for name in ["conv2.w", "gemm0.w", "gemm1.w", "head.w"]:
        info = module.weights[name]
        w = module.parameter(name)
        projected, mask = pattern.project(w, info, 0.5)
        assert check_nm(projected, info, 2, 4) == 0, name
        # every block of 4 along the reduction axis keeps exactly 2
        per_block = mask.movedim(info.reduction_axis, -1).reshape(-1, 4).sum(dim=1)
        assert bool((per_block == 2).all()), name


# ---- defaults: the ends stay dense only when nothing else was asked -------------------------
def test_default_plan_keeps_first_conv_and_last_classifier_dense(module):
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.7)
    covers_every_layer_once(plan, module.weights)
    assert plan.skipped == {
        "conv1.w": "first conv kept dense (default)",
        "head.w": "last classifier layer kept dense (default)",
    }
    assert plan.targets == {n: 0.7 for n in ORDER[1:-1]}
    assert any("first conv (conv1.w)" in note and "last classifier layer (head.w)" in note and "--prune-ends" in note
               for note in plan.notes)
    json.dumps(plan.to_dict())


def test_any_exclusion_or_override_turns_the_default_off(module):
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, exclude=["fc1"])
    assert plan.skipped == {"gemm1.w": "excluded by --exclude 'fc1'"}  # matched by node name
    assert "conv1.w" in plan.targets and "head.w" in plan.targets
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, overrides={"conv2.w": 0.9})
    assert plan.skipped == {} and plan.targets["conv2.w"] == 0.9 and plan.targets["head.w"] == 0.5


def test_keep_ends_dense_forces_either_way(module):
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, exclude=["gemm0.w"], keep_ends_dense=True)
    assert plan.skipped == {
        "conv1.w": "first conv kept dense (--keep-ends)",
        "gemm0.w": "excluded by --exclude 'gemm0.w'",
        "head.w": "last classifier layer kept dense (--keep-ends)",
    }
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, keep_ends_dense=False)
    assert list(plan.targets) == ORDER and plan.skipped == {}


def test_default_is_dropped_when_the_ends_are_all_there_is():
    tiny = load_onnx_proto(conv_gemm_model())  # conv + fc only
    plan = plan_layers(tiny.weights, pattern=Unstructured(), sparsity=0.5)
    assert list(plan.targets) == ["conv.weight", "fc.weight"]
    assert plan.notes == [
        "Leaving the first conv and the last classifier layer dense (the default) would leave nothing to prune, "
        "so they are pruned."
    ]
    with pytest.raises(ConfigError, match="nothing to prune"):
        plan_layers(tiny.weights, pattern=Unstructured(), sparsity=0.5, keep_ends_dense=True)


def test_default_note_warns_when_the_ends_dominate():
    infos = {
        "stem": WeightInfo("stem", "Conv", "stem", (64, 3, 7, 7), "OIHW", 1, 0),
        "body": WeightInfo("body", "Conv", "body", (64, 64, 3, 3), "OIHW", 1, 0),
        "head": WeightInfo("head", "Gemm", "head", (22624, 2048), "NK", 1, 0),
    }
    plan = plan_layers(infos, pattern=NM(), sparsity=0.5)
    assert list(plan.targets) == ["body"]
    assert "They hold 100% of the prunable weights" in plan.notes[0]


# ---- exclusions and overrides ---------------------------------------------------------------
def test_exclusions_match_tensor_names_and_node_names(module):
    plan = plan_layers(module.weights, pattern=Unstructured(), sparsity=0.5, exclude=["block/*", "gemm?.w"])
    assert plan.skipped == {
        "conv2.w": "excluded by --exclude 'block/*'",
        "gconv.w": "excluded by --exclude 'block/*'",
        "dwconv.w": "excluded by --exclude 'block/*'",
        "gemm0.w": "excluded by --exclude 'gemm?.w'",
        "gemm1.w": "excluded by --exclude 'gemm?.w'",
    }
    assert list(plan.targets) == ["conv1.w", "head.w"]


def test_overrides_later_glob_wins_zero_means_dense_exclusion_wins(module):
    plan = plan_layers(
        module.weights, pattern=Unstructured(), sparsity=0.5,
        overrides={"*conv*": 0.8, "block/dwconv": 0.0, "gemm*": 0.95, "gemm1.w": 0.6},
        exclude=["fc0"],
    )
    assert plan.targets == {"conv1.w": 0.8, "conv2.w": 0.8, "gconv.w": 0.8, "gemm1.w": 0.6, "head.w": 0.5}
    assert plan.skipped == {"dwconv.w": "override 0 ('block/dwconv')", "gemm0.w": "excluded by --exclude 'fc0'"}
    assert any("'*conv*' -> 0.8" in note for note in plan.notes)


# ---- pattern eligibility ------------------------------------------------------------------
def test_nm_plan_skips_ineligible_layers_with_reasons(module):
    plan = plan_layers(module.weights, pattern=NM(), sparsity=0.9, keep_ends_dense=False)
    covers_every_layer_once(plan, module.weights)
    assert plan.skipped == {
        "conv1.w": "reduction size 3 is not a multiple of 4",
        "gconv.w": "grouped conv (groups=2): TensorRT never runs it sparse",
        "dwconv.w": "depthwise conv (groups=8): TensorRT never runs it sparse",
    }
    assert plan.targets == {"conv2.w": 0.5, "gemm0.w": 0.5, "gemm1.w": 0.5, "head.w": 0.5}
    notes = " ".join(plan.notes)
    assert "requested sparsity 0.9 does not apply" in notes
    assert "3 layer(s) stay dense" in notes
    assert "4 of 4 pruned layers have fewer than 256" in notes


def test_nm_overrides_can_only_make_layers_dense(module):
    plan = plan_layers(module.weights, pattern=NM(), sparsity=0.5, overrides={"head.w": 0})
    assert plan.skipped["head.w"] == "override 0 ('head.w')"
    with pytest.raises(ConfigError, match="can only be 0"):
        plan_layers(module.weights, pattern=NM(), sparsity=0.5, overrides={"head.w": 0.7})


# ---- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sparsity=1.0), r"sparsity must be in \[0, 1\), got 1.0"),
        (dict(sparsity=-0.2), "sparsity must be in"),
        (dict(sparsity=float("nan")), "sparsity must be in"),
        (dict(sparsity=0.5, exclude=["fcc*"]), "--exclude 'fcc\\*' matches no prunable weight or node name"),
        (dict(sparsity=0.5, overrides={"nope": 0.5}), "--override 'nope' matches no prunable weight"),
        (dict(sparsity=0.5, overrides={"head.w": 1.0}), "--override 'head.w': sparsity must be in"),
        (dict(sparsity=0.5, exclude=["*"]), "nothing to prune with pattern unstructured at sparsity 0.5: conv1.w: excluded"),
        (dict(sparsity=0.0, keep_ends_dense=False), "nothing to prune"),
        (dict(sparsity=0.5, scope="everywhere"), "scope must be 'layer' or 'global'"),
    ],
)
def test_plan_errors(module, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        plan_layers(module.weights, pattern=Unstructured(), **kwargs)
    assert "\n" not in str(err.value)


def test_global_scope_needs_unstructured(module):
    with pytest.raises(ConfigError, match="needs the unstructured pattern, not 'nm:2:4'"):
        plan_layers(module.weights, pattern=NM(), sparsity=0.5, scope="global")


def test_no_prunable_weight_is_a_config_error():
    with pytest.raises(ConfigError, match="no prunable weight"):
        plan_layers({}, pattern=Unstructured(), sparsity=0.5)


# ---- masks from a plan ----------------------------------------------------------------------
def test_compute_and_apply_masks_per_layer(fresh_module):
    m = fresh_module
    pattern = Filter()
    plan = plan_layers(m.weights, pattern=pattern, sparsity=0.5)
    params = m.weight_parameters()
    masks = compute_masks(params, m.weights, plan, pattern)
    assert list(masks) == list(plan.targets)
    before = {n: p.detach().clone() for n, p in params.items()}
    apply_masks(params, masks)
    for name, mask in masks.items():
        p = params[name]
        assert p.requires_grad
        assert bool((p[~mask] == 0).all()) and torch.equal(p[mask], before[name][mask])
        assert not torch.signbit(p[~mask]).any(), "pruned entries are +0.0"
    for name in plan.skipped:
        assert torch.equal(params[name], before[name])
    with pytest.raises(ValueError, match="made for pattern 'filter'"):
        compute_masks(params, m.weights, plan, Unstructured())


def test_compute_masks_global_scope_ranks_default_layers_together(fresh_module):
    m = fresh_module
    pattern = Unstructured()
    plan = plan_layers(m.weights, pattern=pattern, sparsity=0.8, scope="global", overrides={"head.w": 0.25})
    assert plan.global_pool == ORDER[:-1]
    masks = compute_masks(m.weight_parameters(), m.weights, plan, pattern)
    pool_total = sum(m.weights[n].numel for n in plan.global_pool)
    assert sum(int(masks[n].sum()) for n in plan.global_pool) == keep_count(pool_total, 0.8)
    assert int(masks["head.w"].sum()) == keep_count(64, 0.25)  # the override is applied per layer
    kept = torch.cat([m.parameter(n).detach().abs()[masks[n]] for n in plan.global_pool])
    pruned = torch.cat([m.parameter(n).detach().abs()[~masks[n]] for n in plan.global_pool])
    assert kept.min() >= pruned.max()
    assert any("Global scope" in note for note in plan.notes)


# ---- stats ------------------------------------------------------------------------------------
def test_sparsity_stats_after_pruning(fresh_module):
    m = fresh_module
    pattern = parse_pattern("2:4")
    plan = plan_layers(m.weights, pattern=pattern, sparsity=0.5)
    masks = compute_masks(m.weight_parameters(), m.weights, plan, pattern)
    apply_masks(m.weight_parameters(), masks)
    stats = sparsity_stats(m, pruned=plan.targets)
    by_name = {row["name"]: row for row in stats["layers"]}
    assert [row["name"] for row in stats["layers"]] == ORDER
    assert by_name["conv2.w"] == {
        "name": "conv2.w", "node": "block/conv", "op": "Conv", "shape": [8, 8, 3, 3],
        "numel": 576, "nonzero": 288, "sparsity": 0.5,
    }
    pruned_numel = sum(m.weights[n].numel for n in plan.targets)
    assert stats["pruned"] == {
        "tensors": len(plan.targets), "numel": pruned_numel, "nonzero": pruned_numel // 2,
        "sparsity": 0.5, "compression": 2.0,
    }
    prunable_numel = sum(i.numel for i in m.weights.values())
    assert stats["prunable"]["numel"] == prunable_numel
    assert stats["prunable"]["nonzero"] == prunable_numel - pruned_numel // 2
    # stored: the prunable weights plus the (all-zero) conv1 bias
    assert stats["stored"]["numel"] == prunable_numel + 8
    assert stats["stored"]["nonzero"] == stats["prunable"]["nonzero"]
    assert stats["stored"]["tensors"] == len(ORDER) + 1
    json.dumps(stats)
    with pytest.raises(ValueError, match="not a prunable weight"):
        sparsity_stats(m, pruned=["conv1.b"])
