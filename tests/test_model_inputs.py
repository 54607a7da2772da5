"""Third-party input conventions: fixed batches, several inputs, shapes fixed by the data, and
runs that fail leaving nothing misleading behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor import compress
from compressor.errors import CompressorError
from compressor.onnx_import import load_onnx_proto
from compressor.onnx_import.batching import probe_batch
from compressor.onnx_import.inputs import random_inputs, resolve_input_shapes

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, latency_runs=5, log=lambda message: None)


def _reshape_model(batch_dim, reshape_batch: int | None, side: int | str = 8) -> onnx.ModelProto:
    """x[B,3,S,S] -> Conv(8) -> Relu -> Reshape -> Gemm(->5). `reshape_batch` bakes the batch into
    the Reshape target (as exporters that trace at one batch do); None reshapes to [0, -1]."""
    rng = np.random.default_rng(0)
    s = side if isinstance(side, int) else 8
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "conv.w"),
        numpy_helper.from_array(rng.standard_normal((5, 8 * s * s)).astype(np.float32) * 0.05, "fc.w"),
        numpy_helper.from_array(np.zeros(5, np.float32), "fc.b"),
        numpy_helper.from_array(np.array([reshape_batch, 8 * s * s] if reshape_batch else [0, -1], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _probe(model):
    module = load_onnx_proto(model)
    shapes = resolve_input_shapes(module, None, batch=1)
    return module, probe_batch(module, lambda b: random_inputs(module, {"x": [b, *shapes["x"][1:]]}, batch=b))


def test_probe_tells_generalising_from_baked_batches():
    _, info = _probe(_reshape_model(1, None))  # declared 1, but Reshape [0, -1]: any batch computes alike
    assert (info.native, info.declared_fixed, info.generalises, info.chunk) == (1, True, True, None)
    _, info = _probe(_reshape_model(1, 1))  # batch 1 baked into the Reshape
    assert (info.native, info.generalises, info.chunk) == (1, False, 1)
    _, info = _probe(_reshape_model("batch", 2))  # a dynamo-style export traced at batch 2
    assert (info.native, info.declared_fixed, info.chunk) == (2, False, 2)


def test_fixed_batch_module_runs_any_batch_as_its_own_batch_would():
    module, info = _probe(_reshape_model("batch", 2))
    module.batch_chunk = info.chunk
    x = torch.randn(5, 3, 8, 8)  # odd: the last chunk is padded and its padding dropped
    together = module(x)
    alone = torch.cat([module.run_unbatched(torch.cat([x[i:i + 1], x[i:i + 1]]))[:1] for i in range(5)])
    assert together.shape == (5, 5)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    together.sum().backward()  # gradients flow through the chunks (gradient accumulation)
    assert module.parameter("conv.w").grad is not None and module.parameter("conv.w").grad.abs().sum() > 0


@pytest.mark.parametrize("batch_dim,reshape_batch", [(1, 1), ("batch", 2)])
def test_pipeline_trains_baked_batch_model_at_requested_batch(tmp_path, batch_dim, reshape_batch):
    path = tmp_path / "m.onnx"
    onnx.save(_reshape_model(batch_dim, reshape_batch), str(path))
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((40, 3, 8, 8)).astype(np.float32))
    report = compress(path, sparsity=0.5, data=str(tmp_path / "d.npz"), epochs=1, batch_size=16,
                      output=tmp_path / "out", **QUIET)
    assert report["batch"]["generalises"] is False
    assert report["batch"]["native"] == reshape_batch
    assert report["export_parity"] < 1e-4
    exported = onnx.load(str(tmp_path / "out" / "model.onnx"))
    declared = exported.graph.input[0].type.tensor_type.shape.dim[0]
    assert (declared.dim_value or declared.dim_param) == batch_dim  # the user's declared shape is kept
    assert report["latency_ms"]["dense"]["batch"] == reshape_batch


def test_dynamic_batch_option_declares_a_symbolic_batch_only_where_it_is_safe(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_reshape_model(1, None), str(path))  # declared 1, computes any batch alike
    report = compress(path, sparsity=0.5, dynamic_batch=True, output=tmp_path / "dyn", **QUIET)
    exported = onnx.load(str(tmp_path / "dyn" / "model.onnx"))
    assert exported.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert exported.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert report["export_parity"] < 1e-4  # checked at batch > 1 on the symbolic file
    session = ort.InferenceSession(str(tmp_path / "dyn" / "model.onnx"))
    assert session.run(None, {"x": np.zeros((5, 3, 8, 8), np.float32)})[0].shape == (5, 5)
    onnx.save(_reshape_model(1, 1), str(path))  # batch baked into the Reshape: refused, one line
    with pytest.raises(CompressorError, match="--dynamic-batch: the model does not compute other batches"):
        compress(path, dynamic_batch=True, output=tmp_path / "baked", **QUIET)


def _two_input_model() -> onnx.ModelProto:
    """image[N,3,8,8], scale[N,2] -> Conv -> GlobalAveragePool -> Flatten -> Gemm(->2) * scale."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "conv.w"),
        numpy_helper.from_array(rng.standard_normal((2, 8)).astype(np.float32) * 0.3, "fc.w"),
        numpy_helper.from_array(np.zeros(2, np.float32), "fc.b"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "conv.w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["g"], name="fc", transB=1),
        helper.make_node("Mul", ["g", "scale"], ["boxes"]),
    ]
    graph = helper.make_graph(nodes, "two", [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8]),
        helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["N", 2]),
    ], [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_two_input_model_with_npz_per_input_and_without_data(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save(_two_input_model(), str(path))
    rng = np.random.default_rng(2)
    data = tmp_path / "two.npz"
    np.savez(data, image=rng.standard_normal((30, 3, 8, 8)).astype(np.float32),
             scale=rng.uniform(0.5, 2.0, (30, 2)).astype(np.float32))
    report = compress(path, sparsity=0.5, data=str(data), epochs=1, batch_size=8, output=tmp_path / "a",
                      keep_ends_dense=False, **QUIET)
    assert report["export_parity"] < 1e-4 and set(report["inputs"]) == {"image", "scale"}
    assert report["metrics"]["kind"] == "fidelity" and report["data"]["train"] == 24
    assert report["sparsity"] == pytest.approx(0.5, abs=0.02)
    # data-free: random inputs for each input
    report = compress(path, sparsity=0.5, output=tmp_path / "b", keep_ends_dense=False, **QUIET)
    assert report["export_parity"] < 1e-4 and "image 1x3x8x8, scale 1x2" in " ".join(report["notes"])
    # a missing array is named
    np.savez(tmp_path / "bad.npz", image=rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    with pytest.raises(CompressorError, match="'scale'"):
        compress(path, data=str(tmp_path / "bad.npz"), epochs=1, output=tmp_path / "c", **QUIET)
    assert not (tmp_path / "c").exists()


def test_dynamic_spatial_shape_comes_from_the_data_or_metadata(tmp_path):
    model = _reshape_model("N", None, side="S")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    path = tmp_path / "dyn.onnx"
    onnx.save(model, str(path))
    with pytest.raises(CompressorError, match="nothing fixes them.*--input-shape x:1x3xNxN"):
        compress(path, output=tmp_path / "none", **QUIET)
    with pytest.raises(CompressorError, match="data not found: .*missing.npz"):  # the real problem, not the shape
        compress(path, data=str(tmp_path / "missing.npz"), output=tmp_path / "missing", **QUIET)
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32))
    report = compress(path, data=str(tmp_path / "d.npz"), epochs=0, output=tmp_path / "npz", **QUIET)
    assert report["inputs"]["x"]["shape"] == [1, 3, 8, 8]
    assert any("from array x" in note for note in report["notes"])
    model.metadata_props.add(key="imgsz", value="[8, 8]")  # as the ultralytics exporter writes it
    onnx.save(model, str(path))
    report = compress(path, output=tmp_path / "meta", **QUIET)
    assert report["inputs"]["x"]["shape"] == [1, 3, 8, 8] and report["export_parity"] < 1e-4


def test_failed_run_leaves_old_outputs_and_no_partial_files(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    onnx.save(_reshape_model("N", None), str(path))
    out = tmp_path / "out"
    compress(path, sparsity=0.5, output=out, **QUIET)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from compressor.pipeline import STAGES

    def broken(state):
        raise RuntimeError("latency measurement broke")

    original = STAGES.find
    monkeypatch.setattr(STAGES, "find", lambda name: broken if name == "measure" else original(name))
    with pytest.raises(RuntimeError, match="latency measurement broke"):
        compress(path, sparsity=0.8, output=out, **QUIET)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after.pop("resume-checkpoint.pt")  # what --resume needs, named as such, and nothing else
    assert after == before  # nothing replaced, nothing added
    with pytest.raises(RuntimeError):
        compress(path, sparsity=0.8, output=tmp_path / "fresh", **QUIET)
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["resume-checkpoint.pt"]


def test_cli_failure_is_one_line_and_removes_partial_outputs(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_two_input_model(), str(path))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), str(path), "--data", "digits", "-o", str(out), "-q"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "2 inputs (image, scale)" in result.stderr
    assert not out.exists()
