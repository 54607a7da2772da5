"""The 2:4 planner (`--plan auto`): per-layer decisions by deploy.md §3, and a run that prunes only planned layers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from cli import main
from compressor import compress
from compressor.errors import ConfigError
from compressor.onnx_import.weights import WeightInfo
from compressor.sparsity import NM, Unstructured
from compressor.sparsity.nm_planner import NMPlanThresholds, plan_nm

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=5, log=lambda message: None)


def conv(name, k, c, kh=3, groups=1):
    return WeightInfo(name, "Conv", name, (k, c, kh, kh), "OIHW", 1, 0, groups)


LAYERS = {info.name: info for info in [
    conv("stem", 64, 3),  # C_in 3: not a multiple of 4
    conv("narrow3x3", 128, 128),
    conv("wide3x3", 256, 256),  # 589,824 weights
    conv("wide1x1", 256, 256, kh=1),  # 65,536 weights: eligible, too small
    conv("big1x1", 512, 512, kh=1),  # 262,144 weights: exactly the default minimum
    conv("depthwise", 256, 1, groups=256),
    conv("grouped", 512, 64, groups=8),  # C_in 512 in 8 groups
    conv("odd3x3", 320, 320),
    WeightInfo("fc", "Gemm", "fc", (1000, 2048), "NK", 1, 0),
    WeightInfo("proj", "MatMul", "proj", (768, 3072), "KN", 0, 1),
    WeightInfo("head", "MatMul", "head", (768, 10), "KN", 0, 1),
]}


def test_default_thresholds_plan_only_wide_large_ungrouped_layers():
    plan = plan_nm(LAYERS, NM(2, 4))
    assert plan.planned == ["wide3x3", "big1x1", "odd3x3", "fc", "proj"]
    assert plan.eligible == ["narrow3x3", "wide3x3", "wide1x1", "big1x1", "odd3x3", "fc", "proj", "head"]
    assert set(plan.skipped) == set(LAYERS) - set(plan.planned)
    assert plan.skipped["stem"] == "reduction size 3 is not a multiple of 4"
    assert plan.skipped["depthwise"].startswith("depthwise conv (groups=256)")
    assert plan.skipped["grouped"].startswith("grouped conv (groups=8)")
    assert plan.skipped["narrow3x3"] == "narrow layer (128 in, 128 out, below 256): TensorRT would run it dense"
    assert plan.skipped["head"].startswith("narrow layer (768 in, 10 out")
    assert plan.skipped["wide1x1"] == "small layer (65536 weights, below 262144): too little to gain"
    assert plan.to_dict()["thresholds"] == {"min_channels": 256, "channel_multiple": 0, "min_params": 262144}


def test_thresholds_are_configurable():
    plan = plan_nm(LAYERS, NM(2, 4), NMPlanThresholds(min_channels=128, channel_multiple=128, min_params=0))
    assert plan.planned == ["narrow3x3", "wide3x3", "wide1x1", "big1x1", "proj"]
    assert plan.skipped["odd3x3"] == "channels 320 in, 320 out are not multiples of 128"
    assert plan.skipped["fc"] == "channels 2048 in, 1000 out are not multiples of 128"
    # the layout rule follows M: a 1:8 pattern needs reductions that are multiples of 8
    assert "grouped" in plan_nm(LAYERS, NM(1, 8), NMPlanThresholds(min_channels=0, min_params=0)).skipped
    assert "stem" not in plan_nm({"stem": conv("stem", 64, 8)}, NM(1, 8), NMPlanThresholds(0, 0, 0)).skipped


@pytest.mark.parametrize("kwargs", [dict(min_channels=-1), dict(min_params=1.5)])
def test_bad_thresholds_and_patterns_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="--plan-min-"):
        NMPlanThresholds(**kwargs)
    with pytest.raises(ConfigError, match="--plan auto plans N:M sparsity"):
        plan_nm(LAYERS, Unstructured())


def nm_groups_full(weight: np.ndarray) -> bool:
    """Every block of 4 along the reduction axis (1 for LeNet's Conv and transB Gemm) has >= 2 zeros."""
    blocks = np.moveaxis(weight, 1, -1).reshape(-1, 4)
    return bool(np.all((blocks == 0).sum(axis=1) >= 2))


@pytest.mark.parametrize("thresholds, planned", [
    ({}, ["ip1.weight"]),  # defaults: only the 800->500 FC is wide and large
    ({"plan_min_channels": 16, "plan_min_params": 20_000}, ["conv2.weight", "ip1.weight"]),
])
def test_auto_plan_prunes_exactly_the_planned_layers(tmp_path, thresholds, planned):
    out = tmp_path / "o"
    report = compress(EXAMPLE, method="magnitude", pattern="2:4", plan="auto", epochs=0, sensitivity="off",
                      output=out, **thresholds, **QUIET)
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out / "model.onnx")).graph.initializer}
    layers = ["conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"]
    for name in layers:
        if name in planned:
            assert nm_groups_full(inits[name]) and np.mean(inits[name] == 0) == 0.5, name
        else:
            assert np.count_nonzero(inits[name]) == inits[name].size, name
    saved = json.loads((out / "report.json").read_text())
    assert saved["nm_plan"]["planned"] == planned and saved["nm_plan"]["eligible"] == layers[1:]
    assert list(saved["plan"]["targets"]) == planned
    table = {layer["name"]: layer for layer in saved["layers"]}
    assert table["ip2.weight"]["target"] is None and "narrow layer (500 in, 10 out" in saved["plan"]["skipped"]["ip2.weight"]
    md = (out / "report.md").read_text()
    assert f"3 of 4 prunable layers eligible (layout rule), {len(planned)} planned" in md


def test_default_plan_all_prunes_every_eligible_layer(tmp_path):
    report = compress(EXAMPLE, method="magnitude", pattern="2:4", epochs=0, sensitivity="off", keep_ends_dense=False,
                      output=tmp_path / "o", **QUIET)
    assert list(report["plan"]["targets"]) == ["conv2.weight", "ip1.weight", "ip2.weight"] and "nm_plan" not in report


def test_auto_plan_with_unstructured_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="--plan auto plans N:M sparsity"):
        compress(EXAMPLE, method="magnitude", plan="auto", epochs=0, output=tmp_path / "o", **QUIET)
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "--pattern", "unstructured", "--plan", "auto", "-q",
                                       "-o", str(tmp_path / "c")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: --plan auto plans N:M sparsity (e.g. --pattern 2:4), not pattern 'unstructured'"]


def test_cli_defaults_are_the_options_defaults_and_old_checkpoints_stay_resumable():
    from cli import run
    from compressor.pipeline.options import CompressOptions, PlanOptions

    defaults = {p.name: p.default for p in run.params}
    for name in ("plan", "plan_min_channels", "plan_channel_multiple", "plan_min_params"):
        assert defaults[name] == getattr(PlanOptions(), name), name
    # at their defaults the new options are left out of the fingerprint a checkpoint is matched against
    assert not any(key.startswith("plan") for key in CompressOptions().fingerprint("sha"))
    assert CompressOptions.from_keywords(pattern="2:4", plan="auto").fingerprint("sha")["plan"] == "auto"
