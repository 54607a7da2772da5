"""`compress bench`: models timed side by side on the CPU, ratios with intervals, JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from cli import main
from compressor.runtimes.latency import parse_batches

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "examples" / "lenet5_digits.onnx"


def tiny_classifier(path: Path) -> Path:
    """The LeNet example's input and output, computed by one 784x10 Gemm: far less work."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((784, 10)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_bench_compares_a_dense_model_with_a_smaller_one(tmp_path):
    tiny = tiny_classifier(tmp_path / "tiny.onnx")
    result = CliRunner().invoke(main, ["bench", str(LENET), str(tiny), "--batch", "1,8", "--seconds", "0.5",
                                       "--json", str(tmp_path / "bench.json"), "--plot", str(tmp_path / "bench.png")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["runtime"] == "onnxruntime-cpu" and saved["machine"]["python"] and saved["date"]
    assert saved["command"].startswith("compress bench") and saved["threads"] >= 1
    assert [row["batch"] for row in saved["batches"]] == [1, 8]
    for row in saved["batches"]:
        first, second = row["models"]
        assert "vs_first" not in first and first["latency"]["runs"] == second["latency"]["runs"] >= 20
        versus = second["vs_first"]
        low, high = versus["interval"]
        assert low <= versus["ratio"] <= high
        assert versus["verdict"] == "faster" and low > 1  # one Gemm against LeNet's convolutions
        assert second["throughput_per_s"] > first["throughput_per_s"]
        assert row["inputs"] == {"input": [row["batch"], 1, 28, 28]}
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "faster (95% interval" in result.output and "tiny.onnx" in result.output


def test_bench_refuses_what_it_cannot_do_in_one_line(tmp_path):
    cases = [
        (["bench", str(LENET), "--runtime", "nope"], "unknown runtime 'nope'"),
        (["bench", str(LENET), "--batch", "1,x"], "--batch takes sizes"),
        (["bench", str(tmp_path / "missing.onnx")], "no such file"),
        (["bench", str(LENET), "--runs", "0"], "--runs must be at least 1"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_bench_on_a_runtime_that_is_not_here_says_what_is_missing():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu")
    result = CliRunner().invoke(main, ["bench", str(LENET), "--runtime", "ort-cuda", "--runs", "3"])
    assert result.exit_code == 2 and "onnxruntime-gpu" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_batch_sizes_parse():
    assert parse_batches("1,8, 32") == (1, 8, 32)


def test_variants_time_each_model_again_under_other_runtime_options(tmp_path):
    """--variant: the same files under other runtime options, in the same rounds (how a 2:4 file on
    dense and on sparse kernels is compared on a GPU); here torch-cpu under an explicit compile=off."""
    from deploy.bench import bench

    model = tiny_classifier(tmp_path / "tiny.onnx")
    result = bench([model], runtime="torch-cpu", variants=[{"compile": "off"}], protocol=None, seconds=0.05)
    labels = [e["model"] for e in result["batches"][0]["models"]]
    assert labels == ["tiny.onnx", "tiny.onnx [compile=off]"]
    assert result["variants"] == [{"compile": "off"}]
    assert result["batches"][0]["models"][1]["vs_first"]["verdict"]
    out = CliRunner().invoke(main, ["bench", str(model), "--runtime", "torch-cpu", "--variant", "compile=fast", "--runs", "3"])
    assert out.exit_code == 2 and "compile must be one of" in out.output
