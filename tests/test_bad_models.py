"""Malformed input models: one clear line on stderr, exit code 2, and the file left untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from compressor.errors import ModelLoadError, UnsupportedModelError
from compressor.onnx_import import load_onnx
from onnx_builders import conv_gemm_model

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unknown_op_model() -> onnx.ModelProto:
    model = conv_gemm_model()
    model.graph.node.insert(1, helper.make_node("FancyAct", ["c"], ["c2"], name="fancy"))
    model.graph.node[2].input[0] = "c2"
    return model


def custom_domain_model() -> onnx.ModelProto:
    model = conv_gemm_model()
    model.graph.node.insert(1, helper.make_node("Swizzle", ["c"], ["c2"], domain="com.example.vision"))
    model.graph.node[2].input[0] = "c2"
    model.opset_import.append(helper.make_opsetid("com.example.vision", 3))
    return model


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def bad_inputs(tmp_path):
    good = conv_gemm_model().SerializeToString()
    return {
        "directory": (tmp_path, "not a file"),
        "missing": (tmp_path / "nope.onnx", "no such file"),
        "truncated": (write(tmp_path, "truncated.onnx", good[: len(good) // 2]), "not a valid ONNX protobuf"),
        "text": (write(tmp_path, "readme.onnx", b"this is a text file, not a model\n" * 20), "not"),
        "empty": (write(tmp_path, "empty.onnx", b""), "not an ONNX model"),
        "unknown_op": (write(tmp_path, "unknown.onnx", unknown_op_model().SerializeToString()), "FancyAct (domain ai.onnx, opset 13)"),
        "custom_domain": (write(tmp_path, "custom.onnx", custom_domain_model().SerializeToString()), "Swizzle (domain com.example.vision, opset 3)"),
    }


@pytest.mark.parametrize("case", ["directory", "missing", "truncated", "text", "empty", "unknown_op", "custom_domain"])
def test_cli_rejects_bad_model_with_one_line(bad_inputs, case):
    path, expected = bad_inputs[case]
    before = digest(path) if path.is_file() else None
    result = run_cli("inspect", path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    if before is not None:
        assert digest(path) == before  # the input is never modified


def test_every_unsupported_op_is_listed_before_any_work(tmp_path):
    model = unknown_op_model()
    model.graph.node.append(helper.make_node("Swizzle", ["y"], ["z"], domain="com.example.vision"))
    model.opset_import.append(helper.make_opsetid("com.example.vision", 1))
    path = write(tmp_path, "two.onnx", model.SerializeToString())
    with pytest.raises(UnsupportedModelError) as err:
        load_onnx(path)
    message = str(err.value)
    assert "FancyAct" in message and "Swizzle" in message and "\n" not in message


def test_opset_older_than_9_is_refused(tmp_path):
    model = conv_gemm_model()
    model.opset_import[0].version = 7
    with pytest.raises(UnsupportedModelError, match="older than the oldest supported"):
        load_onnx(write(tmp_path, "old.onnx", model.SerializeToString()))


def test_dangling_input_is_a_load_error(tmp_path):
    model = conv_gemm_model()
    model.graph.node[0].input[0] = "does_not_exist"
    with pytest.raises(ModelLoadError, match="does_not_exist"):
        load_onnx(write(tmp_path, "dangling.onnx", model.SerializeToString()))


def test_unreadable_external_data_is_a_load_error(tmp_path):
    model = conv_gemm_model()
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    (tmp_path / "ext.onnx.data").unlink()
    result = run_cli("inspect", path)
    assert result.returncode == 2 and "external data" in result.stderr and "Traceback" not in result.stderr
