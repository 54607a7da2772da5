"""The TensorRT exporter without TensorRT: build settings per TensorRT generation, trtexec's command
line, the build log and trtexec's summary read from recorded outputs, and the `engine` command,
including its one-line answer on a machine that has neither the package nor the binary.

The sample outputs below are written in the formats TensorRT 8.x-10.x print (deploy.md §3-§4; the
same lines appear verbatim in NVIDIA/TensorRT issues #1403, #2169, #4054), with our own layer names.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from cli import main
from compressor.errors import ConfigError, EngineError, MissingToolError
from compressor.files import sha256_file
from compressor.pipeline import DEFAULT_STAGES, compress, insert_stage
from exporters.tensorrt import (
    ModelFacts, TrtVersion, decide, facts_of, parse_version, profile_shapes, sparsity_from_log,
    summary_from_trtexec, trtexec_argv, version_from_trtexec,
)
from exporters.tensorrt.engine import choose_route, make_engine

TRT10, TRT1012, TRT11 = TrtVersion(10, 3, 0), TrtVersion(10, 12, 0), TrtVersion(11, 4, 1)
FP32 = ModelFacts("float32", False, {"x": (1, 3, 8, 8)})
FP16 = ModelFacts("float16", False, {"x": (1, 3, 8, 8)})
QDQ = ModelFacts("float32", True, {"x": (1, 3, 8, 8)})


def conv_model(dtype=TensorProto.FLOAT, qdq=False, batch: int | str = 1) -> onnx.ModelProto:
    np_type = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}[dtype]
    weight = numpy_helper.from_array(np.ones((8, 4, 3, 3), np_type), "w")
    nodes, inits, source = [], [weight], "x"
    if qdq:
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        source = "xd"
    nodes.append(helper.make_node("Conv", [source, "w"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", dtype, [batch, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", dtype, [batch, 8, 6, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# --- versions ---------------------------------------------------------------------------------------

def test_versions_from_the_package_and_from_trtexec():
    assert parse_version("10.3.0.26") == TrtVersion(10, 3, 0)
    assert parse_version("11.4.1.post1") == TrtVersion(11, 4, 1)
    assert version_from_trtexec("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --help") == TRT10
    assert version_from_trtexec("&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec") == TrtVersion(8, 6, 1)
    # the explicit version line wins over the packed banner
    assert version_from_trtexec("[TensorRT v100300]\n[I] TensorRT version: 10.3.1") == TrtVersion(10, 3, 1)
    with pytest.raises(EngineError, match="no TensorRT version"):
        version_from_trtexec("usage: trtexec")
    with pytest.raises(EngineError, match="too old"):
        decide(TrtVersion(8, 6, 1), "fp16", FP32)


# --- build settings per generation ------------------------------------------------------------------

def test_trt10_uses_precision_and_sparse_flags_on_a_weakly_typed_network():
    d = decide(TRT10, "fp16", FP32)
    assert d.builder_flags == ("FP16", "SPARSE_WEIGHTS") and d.network_flags == () and d.sparse
    assert not d.strongly_typed and d.notes == ()
    assert decide(TRT10, "int8", QDQ).builder_flags == ("INT8", "FP16", "SPARSE_WEIGHTS")
    assert decide(TRT10, "fp16", FP32, sparse=False).builder_flags == ("FP16",)
    assert "deprecates weak typing" in decide(TRT1012, "fp16", FP32).notes[0]


def test_trt10_sparse_needs_a_reduced_precision():
    auto = decide(TRT10, "fp32", FP32)  # sparse left to the default: dropped, with the reason
    assert auto.builder_flags == () and not auto.sparse
    assert auto.notes == ("SPARSE_WEIGHTS left off: 2:4 sparse kernels on TensorRT 10.3.0 need --precision fp16 or int8",)
    with pytest.raises(EngineError, match="need --precision fp16 or int8"):
        decide(TRT10, "fp32", FP32, sparse=True)


def test_int8_only_through_qdq_in_both_generations():
    for version in (TRT10, TRT11):
        with pytest.raises(EngineError, match="needs a Q/DQ-quantized ONNX") as err:
            decide(version, "int8", FP32)
        assert "\n" not in str(err.value)


def test_trt11_takes_precision_from_the_onnx_types():
    d = decide(TRT11, "fp16", FP16)
    assert d.builder_flags == ("SPARSE_WEIGHTS",) and d.strongly_typed and d.precision == "fp16"
    assert decide(TRT11, "int8", QDQ).builder_flags == ("SPARSE_WEIGHTS",)  # no INT8 flag in 11.x
    with pytest.raises(EngineError, match="needs an ONNX with float16 weights .this one has float32.: write a float16 "
                                          "copy .exporters.fp16.write_float16.* or convert it with python -m modelopt"):
        decide(TRT11, "fp16", FP32)
    # fp32 asked for, FP16 file: the file decides, and says so
    relabelled = decide(TRT11, "fp32", FP16)
    assert relabelled.precision == "fp16" and any("float16 weights" in n for n in relabelled.notes)
    quantized = decide(TRT11, "fp32", QDQ)
    assert quantized.precision == "int8" and quantized.sparse and any("Q/DQ nodes" in n for n in quantized.notes)
    plain = decide(TRT11, "fp32", FP32)
    assert plain.builder_flags == () and not plain.sparse
    with pytest.raises(EngineError, match="need float16 weights in the ONNX or Q/DQ INT8"):
        decide(TRT11, "fp32", FP32, sparse=True)


def test_unknown_precision_is_refused():
    with pytest.raises(EngineError, match="unknown precision 'bf16'"):
        decide(TRT10, "bf16", FP32)


# --- the ONNX's facts and the input shapes ----------------------------------------------------------

def test_facts_read_weight_type_qdq_and_symbolic_dims():
    facts = facts_of(conv_model(TensorProto.FLOAT16, batch="N"))
    assert facts.weight_float == "float16" and not facts.has_qdq and facts.inputs == {"x": (-1, 4, 8, 8)}
    quantized = facts_of(conv_model(qdq=True))
    assert quantized.has_qdq and quantized.weight_float == "float32" and quantized.dynamic_inputs == {}


def test_profiles_static_dynamic_batch_and_refusals():
    assert profile_shapes({"x": (1, 4, 8, 8)}) == {}
    assert profile_shapes({"x": (-1, 4, 8, 8)}, max_batch=32) == {"x": ((1, 4, 8, 8), (32, 4, 8, 8), (32, 4, 8, 8))}
    assert profile_shapes({"x": (-1, 3, -1, -1)}, {"": [2, 3, 288, 800]}) == {"x": ((2, 3, 288, 800),) * 3}
    with pytest.raises(ConfigError, match="symbolic dimensions \\?x3x\\?x\\?: give --input-shape x:Nx3xNxN"):
        profile_shapes({"x": (-1, 3, -1, -1)})
    with pytest.raises(ConfigError, match="does not fit"):
        profile_shapes({"x": (1, 3, 8, 8)}, {"x": [1, 4, 8, 8]})
    with pytest.raises(ConfigError, match="not an input"):
        profile_shapes({"x": (1, 3, 8, 8)}, {"y": [1, 3, 8, 8]})


# --- trtexec's command line -------------------------------------------------------------------------

def test_trtexec_argv_for_trt10_fp16_sparse_with_a_profile(tmp_path):
    argv = trtexec_argv(tmp_path / "trtexec", tmp_path / "m.onnx", tmp_path / "m.engine", decide(TRT10, "fp16", FP32),
                        profiles={"x": ((1, 4, 8, 8), (32, 4, 8, 8), (32, 4, 8, 8))}, workspace_mb=2048,
                        timing_cache=tmp_path / "t.cache")
    assert argv == [str(tmp_path / "trtexec"), f"--onnx={tmp_path / 'm.onnx'}", f"--saveEngine={tmp_path / 'm.engine'}",
                    "--fp16", "--sparsity=enable", "--minShapes=x:1x4x8x8", "--optShapes=x:32x4x8x8",
                    "--maxShapes=x:32x4x8x8", "--memPoolSize=workspace:2048M",
                    f"--timingCacheFile={tmp_path / 't.cache'}", "--skipInference", "--verbose"]


def test_trtexec_argv_for_trt11_has_no_precision_options(tmp_path):
    argv = trtexec_argv(tmp_path / "trtexec", tmp_path / "m.onnx", tmp_path / "m.engine", decide(TRT11, "int8", QDQ),
                        profiles={"x": ((1, 4, 8, 8),) * 3, "y": ((1, 2),) * 3}, measure=True)
    assert argv[3:] == ["--sparsity=enable", "--shapes=x:1x4x8x8,y:1x2", "--verbose"]
    assert not {"--fp16", "--int8", "--best"} & set(argv)


# --- logs -------------------------------------------------------------------------------------------

TRTEXEC_BUILD_LOG = textwrap.dedent("""\
    [12/03/2026-18:00:01] [I] [TRT] Detected 1 inputs and 2 output network tensors.
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) Layers eligible for sparse math: /layer3/conv1/Conv + /layer3/relu/Relu, /layer4/conv2/Conv, /fc/Gemm
    [12/03/2026-18:00:09] [I] [TRT] (Sparsity) TRT inference plan picked sparse implementation for layers: /layer4/conv2/Conv
    [12/03/2026-18:00:10] [I] Engine built in 9.1 sec.
""")

PYTHON_LOGGER_LOG = textwrap.dedent("""\
    [VERBOSE] Total Activation Memory: 7864832
    [INFO] (Sparsity) Layers eligible for sparse math: Conv_0
    [INFO] (Sparsity) TRT inference plan picked sparse implementation for layers:
""")

TRTEXEC_SUMMARY = textwrap.dedent("""\
    [12/03/2026-18:00:20] [I] === Performance summary ===
    [12/03/2026-18:00:20] [I] Throughput: 501.618 qps
    [12/03/2026-18:00:20] [I] Latency: min = 1.81982 ms, max = 3.1843 ms, mean = 2.05464 ms, median = 2.02905 ms, percentile(90%) = 2.1 ms, percentile(95%) = 2.2 ms, percentile(99%) = 2.29761 ms
    [12/03/2026-18:00:20] [I] Enqueue Time: min = 0.1 ms, max = 0.4 ms, mean = 0.15 ms, median = 0.14 ms, percentile(90%) = 0.2 ms, percentile(95%) = 0.25 ms, percentile(99%) = 0.3 ms
    [12/03/2026-18:00:20] [I] H2D Latency: min = 0.3 ms, max = 0.5 ms, mean = 0.35 ms, median = 0.34 ms, percentile(90%) = 0.4 ms, percentile(95%) = 0.42 ms, percentile(99%) = 0.45 ms
    [12/03/2026-18:00:20] [I] GPU Compute Time: min = 1.5 ms, max = 2.5 ms, mean = 1.6 ms, median = 1.58 ms, percentile(90%) = 1.7 ms, percentile(95%) = 1.75 ms, percentile(99%) = 1.9 ms
    [12/03/2026-18:00:20] [I] D2H Latency: min = 0.01 ms, max = 0.02 ms, mean = 0.011 ms, median = 0.011 ms, percentile(90%) = 0.012 ms, percentile(95%) = 0.013 ms, percentile(99%) = 0.015 ms
    [12/03/2026-18:00:20] [I] Total Host Walltime: 3.00198 s
    [12/03/2026-18:00:20] [I] Total GPU Compute Time: 2.41 s
""")


def test_sparsity_lines_from_trtexec_and_from_the_python_logger():
    report = sparsity_from_log(TRTEXEC_BUILD_LOG)
    assert report.logged
    assert report.eligible == ("/layer3/conv1/Conv + /layer3/relu/Relu", "/layer4/conv2/Conv", "/fc/Gemm")
    assert report.picked == ("/layer4/conv2/Conv",)
    assert report.ran_dense == ("/layer3/conv1/Conv + /layer3/relu/Relu", "/fc/Gemm")
    empty_pick = sparsity_from_log(PYTHON_LOGGER_LOG)
    assert empty_pick.eligible == ("Conv_0",) and empty_pick.picked == () and empty_pick.ran_dense == ("Conv_0",)
    assert not sparsity_from_log("[I] Engine built in 1 sec.").logged


def test_trtexec_summary():
    summary = summary_from_trtexec("[I] Latency: min = 9 ms, max = 9 ms, mean = 9 ms, median = 9 ms\n" + TRTEXEC_SUMMARY)
    assert summary.throughput_qps == pytest.approx(501.618)
    host = summary.stats["Latency"]  # the line before the summary block is not read
    assert (host.min, host.mean, host.median, host.max) == (1.81982, 2.05464, 2.02905, 3.1843)
    assert host.percentiles == {90.0: 2.1, 95.0: 2.2, 99.0: 2.29761}
    assert summary.stats["GPU Compute Time"].median == 1.58 and summary.stats["H2D Latency"].max == 0.5
    assert summary.totals_s == {"Total Host Walltime": 3.00198, "Total GPU Compute Time": 2.41}
    assert summary.host_bound is False
    assert summary_from_trtexec(TRTEXEC_BUILD_LOG) is None


# --- the command ------------------------------------------------------------------------------------

@pytest.fixture
def no_tensorrt(monkeypatch, tmp_path):
    """The machine as it is here: no `tensorrt` package, nothing named trtexec on PATH."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` raise ImportError
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_engine_without_tensorrt_names_what_is_missing(no_tensorrt, tmp_path):
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    result = CliRunner().invoke(main, ["engine", str(model)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "the Python package `tensorrt` is not installed" in lines[0]
    assert "the `trtexec` binary is not on PATH" in lines[0]
    with pytest.raises(MissingToolError, match="--trtexec .*no such file"):
        choose_route(tmp_path / "nowhere" / "trtexec")
    not_executable = tmp_path / "trtexec"
    not_executable.write_text("#!/bin/sh\n")
    denied = CliRunner().invoke(main, ["engine", str(model), "--trtexec", str(not_executable)])
    assert denied.exit_code == 2 and denied.output == f"error: cannot run {not_executable}: Permission denied\n"


FAKE_TRTEXEC = '''\
import sys, pathlib
print("&&&& RUNNING TensorRT.trtexec [TensorRT vBANNER] # trtexec " + " ".join(sys.argv[1:]))
if "--help" in sys.argv:
    sys.exit(0)
pathlib.Path(sys.argv[0] + ".argv").write_text("\\n".join(sys.argv[1:]))
if any(a.startswith("--onnx=") and "broken" in a for a in sys.argv):
    print("[E] [TRT] ModelImporter.cpp:949: ERROR: input: broken")
    sys.exit(1)
engine = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--saveEngine="))
pathlib.Path(engine).write_bytes(b"engine")
print(open(sys.argv[0] + ".log").read())
if "--skipInference" not in sys.argv:
    print(open(sys.argv[0] + ".summary").read())
'''


def fake_trtexec(directory, banner="100300"):
    """A stand-in that answers like TensorRT 10.3's trtexec (or the version in `banner`): banner, the
    engine file, the verbose log."""
    path = directory / "trtexec"
    path.write_text(f"#!{sys.executable}\n" + FAKE_TRTEXEC.replace("BANNER", banner))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (directory / "trtexec.log").write_text(TRTEXEC_BUILD_LOG)
    (directory / "trtexec.summary").write_text(TRTEXEC_SUMMARY)
    return path


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_through_trtexec(no_tensorrt, tmp_path):
    binary = fake_trtexec(tmp_path)
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(batch="N"), str(model))
    result = CliRunner().invoke(main, ["engine", str(model), "--trtexec", str(binary), "--max-batch", "8",
                                       "--workspace-mb", "512"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.engine").read_bytes() == b"engine"
    assert not list(tmp_path.glob(".m.engine*"))  # the temporary name was moved into place
    argv = (tmp_path / "trtexec.argv").read_text().splitlines()
    assert "--fp16" in argv and "--sparsity=enable" in argv and "--memPoolSize=workspace:512M" in argv
    assert "--minShapes=x:1x4x8x8" in argv and "--optShapes=x:8x4x8x8" in argv
    assert "TensorRT 10.3.0, trtexec, fp16" in result.output
    assert "3 layers eligible, 1 picked sparse kernels" in result.output
    assert "  sparse  /layer4/conv2/Conv" in result.output and "  dense   /fc/Gemm" in result.output

    broken = tmp_path / "broken.onnx"
    onnx.save(conv_model(), str(broken))
    failed = CliRunner().invoke(main, ["engine", str(broken), "--trtexec", str(binary)])
    assert failed.exit_code == 2
    assert failed.output.strip() == "error: trtexec failed (exit 1): [TRT] ModelImporter.cpp:949: ERROR: input: broken"
    assert not (tmp_path / "broken.engine").exists()


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_measure_prints_trtexecs_summary(no_tensorrt, tmp_path, monkeypatch):
    binary = fake_trtexec(tmp_path)
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    result = CliRunner().invoke(main, ["engine", str(model), "--trtexec", str(binary), "--measure", "--no-sparse"])
    assert result.exit_code == 0, result.output
    assert "--skipInference" not in (tmp_path / "trtexec.argv").read_text().splitlines()
    assert "flags: FP16)" in result.output and "2:4" not in result.output
    assert "host latency: median 2.029 ms, mean 2.055, min 1.820, max 3.184, p90 2.100, p95 2.200, p99 2.298 (ms)" in result.output
    assert "gpu compute time: median 1.580 ms" in result.output and "throughput: 501.6 inferences/s" in result.output
    assert "host-bound" not in result.output
    # the package's route has no trtexec to time with
    monkeypatch.setattr("exporters.tensorrt.engine.import_tensorrt", lambda: None)  # as if installed
    with pytest.raises(ConfigError, match="--measure times the engine with trtexec"):
        make_engine(model, measure=True)


def if_model() -> onnx.ModelProto:
    """A float32 model with an If: a subgraph, which the float16 writer refuses."""
    def branch(name, value):
        const = helper.make_node("Constant", [], [f"{name}_out"], value=numpy_helper.from_array(np.full(4, value, np.float32)))
        return helper.make_graph([const], name, [], [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", 2.0))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_trt11_fp16_builds_from_a_float16_copy(no_tensorrt, tmp_path):
    binary = fake_trtexec(tmp_path, banner="110401")
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    before = sha256_file(model)
    outcome = make_engine(model, precision="fp16", trtexec=binary)
    copy = tmp_path / "m.fp16.onnx"
    assert outcome.built_from == copy and outcome.engine == tmp_path / "m.engine"
    assert outcome.decision.version == TRT11 and outcome.decision.precision == "fp16"
    argv = (tmp_path / "trtexec.argv").read_text().splitlines()
    assert argv[0] == f"--onnx={copy}" and "--sparsity=enable" in argv and "--fp16" not in argv
    converted = onnx.load(str(copy))
    assert [t.data_type for t in converted.graph.initializer] == [TensorProto.FLOAT16]
    np.testing.assert_array_equal(numpy_helper.to_array(converted.graph.initializer[0]), np.ones((8, 4, 3, 3), np.float16))
    assert [v.type.tensor_type.elem_type for v in [*converted.graph.input, *converted.graph.output]] == [TensorProto.FLOAT] * 2
    assert sha256_file(model) == before  # the file given is left as it was
    assert not list(tmp_path.glob(".m.*"))  # no temporary left over
    # the command says which file it built from
    result = CliRunner().invoke(main, ["engine", str(model), "--trtexec", str(binary)])
    assert result.exit_code == 0, result.output
    assert f"built from: {copy} (its float16 copy: TensorRT 11.4.1" in result.output
    # TensorRT 10 still takes the float32 file with --fp16, and a float16 file is built from as it is
    half = tmp_path / "h.onnx"
    onnx.save(conv_model(TensorProto.FLOAT16), str(half))
    assert make_engine(half, trtexec=binary).built_from == half and not (tmp_path / "h.fp16.onnx").exists()
    (tmp_path / "bin10").mkdir()
    ten = fake_trtexec(tmp_path / "bin10")
    assert make_engine(model, tmp_path / "ten.engine", trtexec=ten).built_from == model
    assert not (tmp_path / "ten.fp16.onnx").exists()


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_trt11_fp16_refuses_what_the_writer_cannot_convert(no_tensorrt, tmp_path):
    binary = fake_trtexec(tmp_path, banner="110401")
    model = tmp_path / "branchy.onnx"
    onnx.save(if_model(), str(model))
    with pytest.raises(EngineError) as err:
        make_engine(model, precision="fp16", trtexec=binary)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("FP16 on TensorRT 11.4.1 needs float16 weights and branchy.onnx could not be converted "
                              "(float16 conversion: subgraphs are not converted (If node 'y')); or convert it with "
                              "python -m modelopt.onnx.autocast")
    assert not (tmp_path / "branchy.fp16.onnx").exists() and not (tmp_path / "branchy.engine").exists()
    assert not (tmp_path / "trtexec.argv").exists()  # trtexec was only asked for its version


def test_engine_refusal_is_one_line(no_tensorrt, tmp_path):
    binary = fake_trtexec(tmp_path)
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    result = CliRunner().invoke(main, ["engine", str(model), "--trtexec", str(binary), "--precision", "int8"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "needs a Q/DQ-quantized ONNX" in result.output


def test_python_build(tmp_path, monkeypatch):
    trt = pytest.importorskip("tensorrt", reason="the Python build needs the tensorrt package (GPU machines)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("a TensorRT build needs a CUDA GPU")
    # 11.x builds FP16 only from FP16 weights; 10.x takes the flag
    version = parse_version(trt.__version__)
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(TensorProto.FLOAT16 if version.strongly_typed_only else TensorProto.FLOAT), str(model))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # the package's route, not a trtexec
    outcome = make_engine(model, precision="fp16", timing_cache=tmp_path / "t.cache", workspace_mb=256)
    assert outcome.route == "python" and outcome.engine == tmp_path / "m.engine"
    assert (tmp_path / "t.cache").stat().st_size > 0
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(outcome.engine.read_bytes())
    assert engine is not None and engine.num_io_tensors == 2


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lenet5_digits.onnx"
QUIET = dict(progress=False, latency_runs=3, log=lambda message: None)
WITH_ENGINE = insert_stage(DEFAULT_STAGES, "engine", after="export")


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_stage_builds_next_to_the_pruned_onnx(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_trtexec(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))  # found on PATH, as on a Jetson
    report = compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, output=tmp_path / "out",
                      stages=WITH_ENGINE, **QUIET)
    assert (tmp_path / "out" / "model.engine").read_bytes() == b"engine"
    assert f"--onnx={tmp_path / 'out' / '.partial' / 'model.onnx'}" in (bin_dir / "trtexec.argv").read_text().splitlines()
    entry = report["engine"]
    assert entry["built_from"] == "model.onnx"
    assert entry["tensorrt"] == "10.3.0" and entry["route"] == "trtexec" and entry["builder_flags"] == ["FP16", "SPARSE_WEIGHTS"]
    assert entry["sparse_picked"] == ["/layer4/conv2/Conv"] and entry["sparse_ran_dense"][-1] == "/fc/Gemm"
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["engine"] == entry


def test_engine_stage_without_tensorrt_fails_the_run_cleanly(no_tensorrt, tmp_path):
    with pytest.raises(MissingToolError, match="`tensorrt` is not installed and the `trtexec` binary"):
        compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, output=tmp_path / "out", stages=WITH_ENGINE, **QUIET)
    assert not (tmp_path / "out" / "model.onnx").exists() and not (tmp_path / "out" / "model.engine").exists()


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_run_with_engine_trt_builds_it_and_checks_for_tensorrt_first(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "--sparsity", "0.5", "--epochs", "0", "--engine", "trt",
                                       "-o", str(tmp_path / "none"), "-q", "--latency-runs", "3"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "`trtexec` binary is not on PATH" in result.stderr
    assert not (tmp_path / "none").exists()  # refused before any work: nothing written, nothing trained
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_trtexec(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    report = compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, output=tmp_path / "out", engine="trt", **QUIET)
    assert (tmp_path / "out" / "model.engine").read_bytes() == b"engine" and report["engine"]["route"] == "trtexec"


@pytest.mark.skipif(os.name != "posix", reason="the stand-in trtexec is a script run through its #! line")
def test_engine_stage_on_trt11_builds_from_the_float16_copy(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_trtexec(bin_dir, banner="110401")
    monkeypatch.setenv("PATH", str(bin_dir))
    report = compress(EXAMPLE, method="magnitude", sparsity=0.5, epochs=0, output=tmp_path / "out",
                      stages=WITH_ENGINE, **QUIET)
    entry = report["engine"]
    assert entry["built_from"] == "model.fp16.onnx" and entry["tensorrt"] == "11.4.1" and entry["precision"] == "fp16"
    assert f"--onnx={tmp_path / 'out' / '.partial' / 'model.fp16.onnx'}" in (bin_dir / "trtexec.argv").read_text().splitlines()
    half = onnx.load(str(tmp_path / "out" / "model.fp16.onnx"))  # moved into the output with the run
    assert {t.data_type for t in half.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)} == {TensorProto.FLOAT16}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["engine"]["built_from"] == "model.fp16.onnx"


# ---- the "tensorrt" runtime (short name "trt") -----------------------------------------------

class _FakeEnum:
    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, _FakeEnum) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


class _FakeTrt:
    """The slice of the `tensorrt` module the runtime reads I/O tensors with (TensorRT 10+ API names)."""

    class TensorIOMode:
        INPUT, OUTPUT = _FakeEnum("INPUT"), _FakeEnum("OUTPUT")


class _FakeEngine:
    def __init__(self, tensors):
        self._tensors = tensors  # (name, mode, dtype name)
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i):
        return self._tensors[i][0]

    def get_tensor_mode(self, name):
        return next(_FakeEnum(m) for n, m, _ in self._tensors if n == name)

    def get_tensor_dtype(self, name):
        return next(_FakeEnum(d) for n, _, d in self._tensors if n == name)


def test_trt_runtime_reads_the_engines_io_tensors():
    from exporters.tensorrt.runtime import IOTensor, io_tensors

    engine = _FakeEngine([("images", "INPUT", "HALF"), ("boxes", "OUTPUT", "FLOAT"), ("count", "OUTPUT", "INT64")])
    assert io_tensors(engine, _FakeTrt) == [IOTensor("images", True, "float16"), IOTensor("boxes", False, "float32"),
                                            IOTensor("count", False, "int64")]
    with pytest.raises(EngineError, match="type FP8, which this runtime cannot bind"):
        io_tensors(_FakeEngine([("x", "INPUT", "FP8")]), _FakeTrt)


def test_trt_runtime_options_and_names():
    from compressor.runtimes import RUNTIMES, get_runtime
    from exporters.tensorrt.runtime import shape_key

    assert RUNTIMES.get("trt") is RUNTIMES.get("tensorrt")
    runtime = get_runtime("trt", options={"precision": "fp32", "sparse": "off", "workspace_mb": "512"})
    assert runtime.options_dict() == {"precision": "fp32", "sparse": "off", "workspace_mb": 512, "timing_cache": ""}
    assert runtime.device_kind == "GPU" and runtime.timing_cache.name == "timing.cache"
    with pytest.raises(ConfigError, match="precision must be one of fp32, fp16, int8"):
        get_runtime("trt", options={"precision": "fp8"})
    assert shape_key({"a": np.zeros((2, 3)), "b": np.zeros(4)}, ["b", "a"]) == ((4,), (2, 3))


def test_trt_runtime_without_tensorrt_is_one_line(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    model = tmp_path / "m.onnx"
    onnx.save_model(conv_model(), str(model))
    result = CliRunner().invoke(main, ["bench", str(model), "--runtime", "trt"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: the tensorrt runtime runs engines through TensorRT's Python API, and the "
                                     "Python package `tensorrt` is not installed: pip install 'onnx-compressor[tensorrt]' "
                                     "on a machine with an NVIDIA GPU")
