"""A sparsity pattern defined outside the package: registered, parsed, planned, masked and exported.

The toy patterns here implement what the built-ins implement (eligible, _mask, density) and
declare capabilities; nothing in the package may ask which class a pattern is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from compressor import compress
from compressor.errors import ConfigError
from compressor.onnx_import import load_onnx_proto
from compressor.sparsity import PATTERNS, Pattern, apply_masks, compute_masks, keep_count, parse_pattern, plan_layers, top_k_mask
from onnx_builders import conv_gemm_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=2, log=lambda message: None)


@dataclass(frozen=True)
class Pairs(Pattern):
    """Blocks of `size` consecutive entries of the flat tensor, kept or pruned whole by L2 norm."""

    size: int = 2
    positional = ("size",)

    def eligible(self, info):
        if info.numel % self.size:
            return f"{info.numel} entries are not a multiple of {self.size}"
        return None

    def density(self, sparsity, info=None):
        if info is None:
            return 1.0 - sparsity
        blocks = info.numel // self.size
        return keep_count(blocks, sparsity) / blocks

    def _mask(self, weight, info, sparsity):
        blocks = weight.reshape(-1, self.size)
        kept = top_k_mask(torch.linalg.vector_norm(blocks, dim=1), keep_count(blocks.shape[0], sparsity))
        return kept[:, None].expand_as(blocks).reshape(weight.shape)


@dataclass(frozen=True)
class HalfPairs(Pairs):
    """Pairs at a sparsity the pattern fixes, as N:M does."""

    fixed_sparsity = 0.5

    def density(self, sparsity, info=None):
        return super().density(self.fixed_sparsity, info)

    def _mask(self, weight, info, sparsity):
        return super()._mask(weight, info, self.fixed_sparsity)


@dataclass(frozen=True)
class Entries(Pattern):
    """Single entries by |w| and nothing else: thresholds, across layers too, are masks of it."""

    elementwise_magnitude = True
    global_scope = True

    def _mask(self, weight, info, sparsity):
        flat = weight.reshape(-1).abs()
        return top_k_mask(flat, keep_count(flat.numel(), sparsity)).reshape(weight.shape)


@pytest.fixture()
def toy():
    with PATTERNS.registered("toy", Pairs):
        yield Pairs


@pytest.fixture()
def module():
    return load_onnx_proto(conv_gemm_model())


def assert_whole_pairs(w: np.ndarray, sparsity: float) -> None:
    zero = w.reshape(-1, 2) == 0
    assert np.array_equal(zero[:, 0], zero[:, 1])  # a pair goes as a whole
    assert zero.mean() == pytest.approx(sparsity, abs=1 / zero.shape[0])


# ---- (a) the grammar takes a registered pattern ------------------------------------------------
def test_parse_pattern_builds_a_registered_pattern(toy):
    assert parse_pattern("toy") == Pairs()
    assert parse_pattern("TOY:4") == Pairs(4) == parse_pattern("toy:size=4")
    assert str(Pairs(4)) == "toy:4" and parse_pattern(str(Pairs(4))) == Pairs(4)
    with pytest.raises(ConfigError, match="pattern 'toy' has no option 'align'"):
        parse_pattern("toy:align=2")
    with pytest.raises(ConfigError, match=r"unknown sparsity pattern 'magic'.*column, toy\[:SIZE\]$"):
        parse_pattern("magic")  # the hint lists what is registered


def test_the_pattern_is_gone_after_its_block():
    with PATTERNS.registered("toy", Pairs):
        assert "toy" in PATTERNS.names()
    assert "toy" not in PATTERNS.names()
    with pytest.raises(ConfigError, match="unknown sparsity pattern 'toy'") as err:
        parse_pattern("toy:2")
    assert "toy" not in str(err.value).split("choose one of:")[1]


# ---- (b) the plan and the masks honour it ------------------------------------------------------
def test_plan_and_masks_follow_the_pattern(toy, module):
    pattern = parse_pattern("toy:3")  # fc.weight (2560 entries) is no multiple of 3
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_ends_dense=False)
    assert plan.pattern == "toy:3"
    assert plan.targets == {"conv.weight": 0.5}
    assert plan.skipped == {"fc.weight": "2560 entries are not a multiple of 3"}

    pattern = parse_pattern("toy")
    plan = plan_layers(module.weights, pattern=pattern, sparsity=0.5, keep_ends_dense=False)
    params = module.weight_parameters()
    masks = compute_masks(params, module.weights, plan, pattern)
    apply_masks(params, masks)
    for name in ("conv.weight", "fc.weight"):
        assert_whole_pairs(params[name].detach().numpy(), 0.5)
        assert pattern.density(0.5, module.weights[name]) == float(masks[name].float().mean())


# ---- (c) end to end: the exported weights carry the pattern's zeros ----------------------------
def test_compress_exports_the_registered_pattern(toy, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(conv_gemm_model(), str(path))
    report = compress(path, pattern="toy", sparsity=0.5, method="magnitude", epochs=0, keep_ends_dense=False,
                      sensitivity="off", output=tmp_path / "out", **QUIET)
    assert report["pattern"] == "toy" and report["plan"]["targets"] == {"conv.weight": 0.5, "fc.weight": 0.5}
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "out" / "model.onnx")).graph.initializer}
    for name in ("conv.weight", "fc.weight"):
        assert_whole_pairs(inits[name], 0.5)


# ---- capabilities, not classes, drive the behaviour --------------------------------------------
def test_fixed_sparsity_sets_every_target_and_limits_overrides(module):
    with PATTERNS.registered("halfpairs", HalfPairs):
        pattern = HalfPairs()
        plan = plan_layers(module.weights, pattern=pattern, sparsity=0.9, keep_ends_dense=False)
        assert plan.targets == {"conv.weight": 0.5, "fc.weight": 0.5}
        plan = plan_layers(module.weights, pattern=pattern, sparsity=0.9, overrides={"fc.weight": 0.5, "conv.weight": 0})
        assert plan.targets == {"fc.weight": 0.5} and plan.skipped == {"conv.weight": "override 0 ('conv.weight')"}
        with pytest.raises(ConfigError, match=r"pattern halfpairs fixes each layer's sparsity at 0.5; "
                                              r"--override 'fc.weight' can only be 0 \(dense\), got 0.7"):
            plan_layers(module.weights, pattern=pattern, sparsity=0.5, overrides={"fc.weight": 0.7})


def test_global_scope_is_refused_without_the_capability(toy, module):
    with pytest.raises(ConfigError, match="^scope 'global' ranks single weights across layers and needs the "
                                          "unstructured pattern, not 'toy'$"):
        plan_layers(module.weights, pattern=Pairs(), sparsity=0.5, scope="global")


def test_global_scope_ranks_a_capable_pattern_across_layers(module):
    with PATTERNS.registered("entries", Entries):
        pattern = Entries()
        plan = plan_layers(module.weights, pattern=pattern, sparsity=0.8, scope="global", keep_ends_dense=False)
        assert plan.global_pool == ["conv.weight", "fc.weight"]
        params = module.weight_parameters()
        masks = compute_masks(params, module.weights, plan, pattern)
        kept = torch.cat([params[n].detach().abs()[masks[n]] for n in plan.global_pool])
        pruned = torch.cat([params[n].detach().abs()[~masks[n]] for n in plan.global_pool])
        assert kept.min() >= pruned.max()  # one threshold, not one per layer
        assert int(masks["conv.weight"].sum()) != keep_count(108, 0.8)
        with pytest.raises(ConfigError, match="needs the unstructured or entries pattern, not 'nm:2:4'"):
            plan_layers(module.weights, pattern=parse_pattern("2:4"), sparsity=0.5, scope="global")


def test_global_scope_needs_elementwise_magnitude():
    with pytest.raises(TypeError, match="global_scope needs elementwise_magnitude"):
        type("Bad", (Pairs,), {"global_scope": True})


def test_builtin_capabilities():
    caps = {name: (cls.elementwise_magnitude, cls.global_scope, cls.structured, cls.coupled) for name, cls in PATTERNS.items()}
    assert caps == {
        "unstructured": (True, True, None, False),
        "nm": (False, False, None, False),
        "filter": (False, False, "filter", False),
        "input-channel": (False, False, "channel", False),
        "channel": (False, False, "channel", True),
        "column": (False, False, "column", False),
    }
    assert [parse_pattern(s).fixed_sparsity for s in ("unstructured", "2:4", "1:4", "filter", "column")] == [None, 0.5, 0.75, None, None]


@pytest.mark.parametrize("method, options, message", [
    ("magnitude", dict(schedule="gradual"), "--schedule gradual ramps unstructured sparsity"),
    ("olmp", {}, "olmp finds magnitude thresholds"),
])
def test_threshold_methods_refuse_a_pattern_without_elementwise_magnitude(toy, tmp_path, method, options, message):
    with pytest.raises(ConfigError, match=message):
        compress(EXAMPLE, method=method, pattern="toy", epochs=1, output=tmp_path / "out", **options, **QUIET)
