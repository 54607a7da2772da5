"""TensorRT's layer names mapped back to the ONNX weights, and each planned weight's status after a build.

The build logs below are written in the format log.py documents (the "(Sparsity)" lines of a
verbose TensorRT 8.x-10.x build), with layer names as onnx-tensorrt gives them: the ONNX node's
name, "node_of_<first output>" for an unnamed node, fused layers joined with " + ".
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.pipeline import DEFAULT_STAGES, compress, insert_stage
from compressor.reporting.markdown import render_markdown
from exporters.tensorrt import sparsity_from_log
from exporters.tensorrt.layers import (
    NOT_ELIGIBLE, NOT_LOGGED, PICKED, RAN_DENSE, engine_layers, node_weights, trt_node_name, weight_statuses,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"


def qdq_model():
    """conv (named, FP16 weight through Cast) -> relu (unnamed) -> conv (unnamed, INT8 weight through
    DequantizeLinear) -> flatten -> matmul (weight through Transpose)."""
    inits = [numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "w1"),
             numpy_helper.from_array(np.ones((8, 8, 1, 1), np.int8), "w2_q"),
             numpy_helper.from_array(np.array(0.1, np.float32), "w2_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "w2_zero"),
             numpy_helper.from_array(np.ones((10, 8 * 6 * 6), np.float32), "fc_t"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b1")]
    nodes = [
        helper.make_node("Cast", ["w1"], ["w1_half"], name="cast_w1", to=TensorProto.FLOAT16),
        helper.make_node("Cast", ["x"], ["x_half"], name="cast_x", to=TensorProto.FLOAT16),
        helper.make_node("Conv", ["x_half", "w1_half", "b1"], ["c1"], name="/stem/Conv"),
        helper.make_node("Relu", ["c1"], ["r1"]),  # unnamed
        helper.make_node("DequantizeLinear", ["w2_q", "w2_scale", "w2_zero"], ["w2"]),  # unnamed, constant
        helper.make_node("Conv", ["r1", "w2"], ["c2"]),  # unnamed
        helper.make_node("Flatten", ["c2"], ["f"], name="/flatten"),
        helper.make_node("Transpose", ["fc_t"], ["fc_w"], name="t_fc", perm=[1, 0]),
        helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="/fc/MatMul"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_nodes_map_to_the_weights_they_use_through_constant_chains():
    nodes = node_weights(qdq_model())
    # the constant-only producers (Cast, DequantizeLinear, Transpose of a weight) make no layer of their own
    assert set(nodes.weights) == {"cast_x", "/stem/Conv", "node_of_r1", "node_of_c2", "/flatten", "/fc/MatMul"}
    assert nodes.weights["/stem/Conv"] == ("w1", "b1") and nodes.kernels["/stem/Conv"] == ("w1",)
    assert nodes.kernels["node_of_c2"] == ("w2_q", "w2_scale", "w2_zero")
    assert nodes.kernels["/fc/MatMul"] == ("fc_t",) and "/flatten" not in nodes.kernels
    assert nodes.node_using("w2_q") == "node_of_c2" and nodes.node_using("w2") == "node_of_c2"  # by the DQ output too
    assert nodes.node_using("fc_t") == "/fc/MatMul" and nodes.node_using("nowhere") is None
    # unnamed nodes: onnx-tensorrt's "node_of_<output>", and "<Op>_<index>"
    assert nodes.node_of("Relu_3") == "node_of_r1" and nodes.node_of("Conv_5") == "node_of_c2"
    assert nodes.nodes_of_layer("/stem/Conv + node_of_r1") == ["/stem/Conv", "node_of_r1"]
    assert nodes.nodes_of_layer("(Unnamed Layer* 7) [Shuffle]") == []
    assert trt_node_name(helper.make_node("Relu", ["a"], ["b"])) == "node_of_b"


LOG = textwrap.dedent("""\
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) Layers eligible for sparse math: /stem/Conv + node_of_r1, Conv_5, (Unnamed Layer* 9) [Shuffle]
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) TRT inference plan picked sparse implementation for layers: Conv_5
""")


def test_each_weight_gets_the_status_of_its_layer():
    nodes, sparsity = node_weights(qdq_model()), sparsity_from_log(LOG)
    rows = weight_statuses(sparsity, nodes, ["w1", "w2_q", "fc_t", "nowhere"], planned=["w2_q"])
    assert [(r["weight"], r["node"], r["trt_layer"], r["status"], r["planned"]) for r in rows] == [
        ("w1", "/stem/Conv", "/stem/Conv + node_of_r1", RAN_DENSE, False),
        ("w2_q", "node_of_c2", "Conv_5", PICKED, True),
        ("fc_t", "/fc/MatMul", None, NOT_ELIGIBLE, False),
        ("nowhere", None, None, NOT_ELIGIBLE, False),
    ]
    silent = weight_statuses(sparsity_from_log("[I] Engine built in 1 sec."), nodes, ["w1", "w2_q"])
    assert [r["status"] for r in silent] == [NOT_LOGGED, NOT_LOGGED]
    # without a plan: the weights of the layers TensorRT found eligible (not biases, scales or zero points)
    assert [(r["weight"], r["status"]) for r in engine_layers(sparsity, nodes, None)] == [("w1", RAN_DENSE), ("w2_q", PICKED)]
    # with a plan: its eligible weights first, then what TensorRT found that the plan did not list
    plan = {"eligible": ["fc_t", "w2_q"], "planned": ["w2_q"]}
    assert [(r["weight"], r["planned"], r["status"]) for r in engine_layers(sparsity, nodes, plan)] == [
        ("fc_t", False, NOT_ELIGIBLE), ("w2_q", True, PICKED), ("w1", False, RAN_DENSE)]


def test_markdown_renders_the_engine_layers():
    report = {"engine": {"file": "model.engine", "tensorrt": "10.3.0", "layers": [
        {"weight": "ip1.weight", "planned": True, "node": "/ip1/Gemm", "trt_layer": "/ip1/Gemm + /relu1/Relu",
         "status": PICKED},
        {"weight": "ip2.weight", "planned": False, "node": "/ip2/Gemm", "trt_layer": None, "status": NOT_ELIGIBLE}]}}
    text = render_markdown(report)
    assert "## Sparse kernels in the TensorRT engine (model.engine, TensorRT 10.3.0)" in text
    assert "- 1 picked sparse, 1 not eligible in TensorRT; of the 1 planned layers 1 picked sparse" in text
    assert "| `ip1.weight` | yes | `/ip1/Gemm` | `/ip1/Gemm + /relu1/Relu` | picked sparse |" in text
    assert "| `ip2.weight` |  | `/ip2/Gemm` | `-` | not eligible in TensorRT |" in text
    assert "Sparse kernels in the TensorRT engine" not in render_markdown({"engine": {"layers": []}})


FAKE_TRTEXEC = '''\
import sys, pathlib
print("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec " + " ".join(sys.argv[1:]))
if "--help" in sys.argv:
    sys.exit(0)
engine = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--saveEngine="))
pathlib.Path(engine).write_bytes(b"engine")
print(open(sys.argv[0] + ".log").read())
'''

LENET_LOG = textwrap.dedent("""\
    [12/03/2026-18:00:01] [I] [TRT] Detected 1 inputs and 1 output network tensors.
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) Layers eligible for sparse math: /conv2/Conv, /ip1/Gemm + /relu1/Relu
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) TRT inference plan picked sparse implementation for layers: /ip1/Gemm + /relu1/Relu
    [12/03/2026-18:00:10] [I] Engine built in 9.1 sec.
""")


def fake_trtexec_on_path(monkeypatch, directory: Path, log: str) -> None:
    """A stand-in answering like TensorRT 10.3's trtexec, printing `log` as its build log."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no Python package: the trtexec route
    directory.mkdir()
    path = directory / "trtexec"
    path.write_text(f"#!{sys.executable}\n" + FAKE_TRTEXEC)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (directory / "trtexec.log").write_text(log)
    monkeypatch.setenv("PATH", str(directory))


QUIET = dict(progress=False, latency_runs=3, log=lambda message: None)
AUTO_PLAN = dict(method="magnitude", pattern="2:4", plan="auto", plan_min_channels=16, plan_min_params=20_000,
                 epochs=0, sensitivity="off", stages=insert_stage(DEFAULT_STAGES, "engine", after="export"))


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_stage_reports_each_planned_layers_status(monkeypatch, tmp_path):
    fake_trtexec_on_path(monkeypatch, tmp_path / "bin", LENET_LOG)
    out = tmp_path / "out"
    compress(EXAMPLE, output=out, **AUTO_PLAN, **QUIET)
    saved = json.loads((out / "report.json").read_text())
    assert saved["nm_plan"]["planned"] == ["conv2.weight", "ip1.weight"]
    assert saved["engine"]["layers"] == [
        {"weight": "conv2.weight", "planned": True, "node": "/conv2/Conv", "trt_layer": "/conv2/Conv", "status": RAN_DENSE},
        {"weight": "ip1.weight", "planned": True, "node": "/ip1/Gemm", "trt_layer": "/ip1/Gemm + /relu1/Relu",
         "status": PICKED},
        {"weight": "ip2.weight", "planned": False, "node": "/ip2/Gemm", "trt_layer": None, "status": NOT_ELIGIBLE},
    ]
    md = (out / "report.md").read_text()
    assert "| `ip1.weight` | yes | `/ip1/Gemm` | `/ip1/Gemm + /relu1/Relu` | picked sparse |" in md
    assert "- 1 ran dense, 1 picked sparse, 1 not eligible in TensorRT; of the 2 planned layers 1 picked sparse" in md
    # the engine section follows the plan's
    assert md.index("## Sparse-kernel plan (--plan auto)") < md.index("## Sparse kernels in the TensorRT engine")


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_stage_without_sparsity_lines_says_not_in_the_log(monkeypatch, tmp_path):
    fake_trtexec_on_path(monkeypatch, tmp_path / "bin", "[12/03/2026-18:00:10] [I] Engine built in 9.1 sec.\n")
    report = compress(EXAMPLE, output=tmp_path / "out", **AUTO_PLAN, **QUIET)
    rows = report["engine"]["layers"]
    assert [(r["weight"], r["status"]) for r in rows] == [
        ("conv2.weight", NOT_LOGGED), ("ip1.weight", NOT_LOGGED), ("ip2.weight", NOT_LOGGED)]
    assert rows[0]["node"] == "/conv2/Conv" and rows[0]["trt_layer"] is None
    assert "- 3 not in the log; of the 2 planned layers 0 picked sparse" in (tmp_path / "out" / "report.md").read_text()
