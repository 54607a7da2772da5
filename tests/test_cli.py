"""`compress inspect` and `compress check` through click's test runner."""

from __future__ import annotations

import json

import onnx
import torch
from click.testing import CliRunner

from cli import main
from compressor.onnx_import import load_onnx
from exporters import export_onnx
from onnx_builders import conv_gemm_model


def model_file(tmp_path, **kwargs):
    path = tmp_path / "m.onnx"
    onnx.save_model(conv_gemm_model(**kwargs), str(path))
    return path


def test_inspect_table(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(model_file(tmp_path))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["layer", "op", "shape", "params", "sparsity", "2:4", "node"]
    conv = next(line for line in lines if line.startswith("conv.weight"))
    fc = next(line for line in lines if line.startswith("fc.weight"))
    assert "Conv" in conv and "4x3x3x3" in conv and "108" in conv and "no: reduction size 3 is not a multiple of 4" in conv  # C_in = 3
    assert "Gemm" in fc and "10x256" in fc and "2,560" in fc and fc.split()[-2:] == ["yes", "fc"]
    assert conv.split()[-1] == "conv"
    assert "2 prunable layers, 2,668 prunable weights (0.0% zero), 1 eligible for 2:4" in result.output


def test_inspect_json_reports_current_sparsity(tmp_path):
    module = load_onnx(model_file(tmp_path))
    with torch.no_grad():
        module.parameter("fc.weight")[:, :128] = 0
    pruned = export_onnx(module, tmp_path / "pruned.onnx").path
    result = CliRunner().invoke(main, ["inspect", str(pruned), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers["fc.weight"]["sparsity"] == 0.5 and layers["conv.weight"]["sparsity"] == 0.0
    assert layers["fc.weight"]["reduction_axis"] == 1 and layers["fc.weight"]["nm_eligible"] is True
    totals = report["totals"]
    assert totals["prunable"] == 2668 and totals["prunable_nonzero"] == 2668 - 1280
    assert totals["total"] == 2668 + 4 + 10  # weights and biases


def test_check_round_trips_and_reports_parity(tmp_path):
    out = tmp_path / "copy.onnx"
    result = CliRunner().invoke(main, ["check", str(model_file(tmp_path, weights_as="subgraph")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "max relative error" in result.output and out.exists()
    error = float(result.output.split("max relative error ")[1].split()[0])
    assert error < 1e-5


def test_check_needs_concrete_shape_for_dynamic_spatial_dims(tmp_path):
    model = conv_gemm_model()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    path = tmp_path / "dyn.onnx"
    onnx.save_model(model, str(path))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert "input 'x' has dynamic dimensions Nx3xHx8" in result.output
    ok = CliRunner().invoke(main, ["check", str(path), "--input-shape", "2x3x8x8"])
    assert ok.exit_code == 0, ok.output
