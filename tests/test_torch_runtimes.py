"""The PyTorch runtimes' options: typed runtime options, the GPU latency protocol's defaults, a
session's own clock, torch.compile, and which Gemm/MatMul weights go to PyTorch's semi-structured
2:4 kernels (the choice and the rewiring are checked on the CPU; the kernels need a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import ConfigError
from compressor.onnx_import import load_onnx_proto
from compressor.runtimes import RUNTIMES, Runtime, RuntimeSession, get_runtime, semi_structured
from compressor.runtimes.base import parse_runtime_options
from compressor.runtimes.latency import (GPU_PROTOCOL, LatencyProtocol, default_protocol, measure_latency,
                                         run_timers)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"
CUDA = torch.cuda.is_available()


def two_of_four(weight: np.ndarray, axis: int) -> np.ndarray:
    """`weight` with the 2 smallest of every 4 consecutive entries along `axis` set to zero."""
    moved = np.moveaxis(weight, axis, -1).copy()
    groups = moved.reshape(-1, 4)
    smallest = np.argsort(np.abs(groups), axis=1)[:, :2]
    np.put_along_axis(groups, smallest, 0.0, axis=1)
    return np.moveaxis(groups.reshape(moved.shape), -1, axis)


def linear_stack(seed: int = 0) -> onnx.ModelProto:
    """x[N,128] -> g1 Gemm(transB=1, alpha 0.5, beta 2, 2:4) -> Relu -> g2 Gemm(transB=0, dense)
    -> Relu -> m3 MatMul(2:4) + bias -> g4 Gemm(N=8, 2:4) -> y[N,8]."""
    rng = np.random.default_rng(seed)
    w1 = two_of_four(rng.standard_normal((64, 128)).astype(np.float32) * 0.1, axis=1)  # [N, K]
    w2 = rng.standard_normal((64, 64)).astype(np.float32) * 0.1  # [K, N], dense
    w3 = two_of_four(rng.standard_normal((64, 32)).astype(np.float32) * 0.1, axis=0)  # [K, N]
    w4 = two_of_four(rng.standard_normal((8, 32)).astype(np.float32) * 0.1, axis=1)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (w1, "w1"), (rng.standard_normal(64).astype(np.float32), "b1"), (w2, "w2"), (w3, "w3"),
        (rng.standard_normal(32).astype(np.float32), "b3"), (w4, "w4")]]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="g1", transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2"], ["h2"], name="g2"),
        helper.make_node("Relu", ["h2"], ["r2"]),
        helper.make_node("MatMul", ["r2", "w3"], ["h3"], name="m3"),
        helper.make_node("Add", ["h3", "b3"], ["a3"]),
        helper.make_node("Gemm", ["a3", "w4"], ["y"], name="g4", transB=1),
    ]
    graph = helper.make_graph(nodes, "linear_stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def batched_matmul(seed: int = 1) -> onnx.ModelProto:
    """x[N,3,128] -> MatMul(B[128,64], 2:4 along K): a linear layer on a 3-D input, as exporters write it."""
    rng = np.random.default_rng(seed)
    w = two_of_four(rng.standard_normal((128, 64)).astype(np.float32) * 0.1, axis=0)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "batched",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


# ---- runtime options -------------------------------------------------------------------------

def test_runtime_options_are_typed_and_checked():
    assert get_runtime("torch-cpu").options_dict() == {"compile": "off"}
    assert get_runtime("torch-cpu", options={"compile": "max-autotune"}).options.compile == "max-autotune"
    cuda = get_runtime("torch-cuda", options=parse_runtime_options(["cuda-graph=yes", "semi_structured=1"]))
    assert cuda.options.cuda_graph is True and cuda.options.semi_structured is True
    assert cuda.options.timing == "cuda-events" and cuda.device_kind == "GPU"
    assert get_runtime("onnxruntime-cpu").options_dict() == {}
    with pytest.raises(ConfigError, match=r"runtime 'torch-cpu' has no option 'cuda_graph' \(options: compile\)"):
        get_runtime("torch-cpu", options={"cuda_graph": "true"})
    with pytest.raises(ConfigError, match="no option 'x' \\(options: none\\)"):
        get_runtime("onnxruntime-cpu", options={"x": "1"})
    with pytest.raises(ConfigError, match="cuda_graph must be true or false, got 'maybe'"):
        get_runtime("torch-cuda", options={"cuda_graph": "maybe"})
    with pytest.raises(ConfigError, match="compile must be one of off, default"):
        get_runtime("torch-cpu", options={"compile": "fast"})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_runtime_options(["cuda_graph"])


def test_protocol_defaults_follow_the_device():
    """deploy.md §6: on a GPU, at least 50 warm-up runs and 200 ms, then at least 1000 runs and 10 s."""
    assert default_protocol("CPU") == LatencyProtocol()
    gpu = default_protocol("GPU")
    assert gpu == GPU_PROTOCOL and gpu.warmup_runs >= 50 and gpu.warmup_seconds >= 0.2
    assert gpu.min_runs >= 1000 and gpu.seconds >= 10
    assert default_protocol("GPU", seconds=3.0).seconds == 3.0
    capped = default_protocol("GPU", max_runs=200)
    assert capped.max_runs == capped.min_runs == 200


def test_samples_are_what_the_timers_return():
    """A session that times itself (CUDA events) gives the samples; the budget runs on the host clock."""
    fake = iter(range(1000, 10**9, 1000))
    samples = run_timers({"a": lambda: 5_000_000, "b": lambda: 7_000_000}, LatencyProtocol.fixed(4, warmup=2),
                         clock=lambda: next(fake))
    assert samples == {"a": [5_000_000] * 4, "b": [7_000_000] * 4}


class _DeviceClockRuntime(Runtime):
    """A runtime whose sessions report their own clock and details, like torch-cuda with CUDA events."""

    def open(self, model):
        inner = get_runtime("onnxruntime-cpu", threads=1).open(model)
        return _DeviceClockSession(inner)

    def describe(self):
        return {"device": "Test", "device_name": "", "versions": {}, "threads": self.threads}


class _DeviceClockSession(RuntimeSession):
    clock = "test events"

    def __init__(self, inner):
        self.inner, self.input_names, self.output_names = inner, inner.input_names, inner.output_names

    def run(self, feeds, outputs=None):
        return self.inner.run(feeds, outputs)

    def timer(self, feeds):
        def timed():
            self.run(feeds)
            return 2_000_000

        return timed

    def details(self):
        return {"kernels": "test"}


def test_latency_stats_carry_the_session_clock_and_details(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(linear_stack(), str(path))
    with RUNTIMES.registered("device-clock", _DeviceClockRuntime):
        stats = measure_latency({"a": path}, {"x": np.ones((2, 128), np.float32)}, runtime="device-clock",
                                protocol=LatencyProtocol.fixed(3))
    a = stats["a"]
    assert a.clock == "test events" and a.p50_ms == 2.0 and a.details == {"kernels": "test"}
    assert a.to_dict()["clock"] == "test events" and a.to_dict()["details"] == {"kernels": "test"}


@pytest.mark.slow
def test_torch_compile_gives_the_same_outputs_on_the_cpu():
    feeds = {"input": np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)}
    eager = get_runtime("torch-cpu", threads=1).open(EXAMPLE)
    feeds = {eager.input_names[0]: feeds["input"]}
    compiled = get_runtime("torch-cpu", threads=1, options={"compile": "default"}).open(EXAMPLE)
    assert compiled.details() == {"compile": "default"}
    np.testing.assert_allclose(compiled.run(feeds)[0], eager.run(feeds)[0], rtol=1e-4, atol=1e-5)


# ---- semi-structured 2:4 kernels: which layers, and the rewiring -----------------------------

def statuses(model: onnx.ModelProto, dtype=torch.float16, backend="cutlass") -> dict[str, str]:
    module = load_onnx_proto(model)
    return {c.node: c.status for c in semi_structured.plan(module, dtype, backend)}


def test_plan_gives_2_4_linear_layers_of_supported_shapes_to_the_kernels():
    got = statuses(linear_stack())
    assert got["g1"] == got["m3"] == semi_structured.SPARSE
    assert got["g2"].startswith("not 2:4 along K (") and "groups of 4 hold more than 2 non-zeros" in got["g2"]
    assert got["g4"] == "shape N=8, K=32: cutlass needs multiples of 32 (N) and 64 (K)"
    # cuSPARSELt's FP16 tile is smaller (16 x 16) but N=8 is still below it
    assert statuses(linear_stack(), backend="cusparselt")["g4"].startswith("shape N=8, K=32: cusparselt needs multiples of 16")
    assert statuses(batched_matmul())["mm"] == semi_structured.SPARSE


def test_plan_keeps_convolutions_and_unsupported_dtypes_dense():
    from onnx_builders import conv_gemm_model

    got = statuses(conv_gemm_model())
    assert got["conv"] == "Conv: PyTorch's semi-structured kernels cover linear products only"
    assert statuses(linear_stack(), dtype=torch.float64)["g1"] == "cutlass has no float64 semi-structured kernel"


def test_plan_refuses_gemm_with_transposed_a():
    model = linear_stack()
    g1 = next(n for n in model.graph.node if n.name == "g1")
    g1.attribute.append(helper.make_attribute("transA", 1))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 128  # A is [K, M] now
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "N"
    assert statuses(model)["g1"] == "Gemm with transA=1"


class _DenseStandIn:
    """Stands in for a semi-structured tensor class on the CPU: the 'compressed' weight is the dense
    [N, K] matrix it was made from, so F.linear computes what the kernels would."""

    made: list[torch.Tensor] = []
    _DTYPE_SHAPE_CONSTRAINTS = semi_structured.backend_class("cutlass")._DTYPE_SHAPE_CONSTRAINTS

    @classmethod
    def from_dense(cls, weight: torch.Tensor) -> torch.Tensor:
        cls.made.append(weight)
        return weight


@pytest.mark.parametrize("build, rows", [(linear_stack, (5, 128)), (batched_matmul, (5, 3, 128))])
def test_rewired_layers_compute_the_graph(monkeypatch, build, rows):
    """alpha and beta of Gemm, MatMul's [K, N] weight, a bias added after, a 3-D input: the swapped
    functions give onnxruntime's outputs when the kernel is an exact dense product."""
    _DenseStandIn.made = []
    monkeypatch.setattr(semi_structured, "backend_class", lambda backend: _DenseStandIn)
    model = build()
    module = load_onnx_proto(model).eval()
    choices = semi_structured.plan(module, torch.float16, "cutlass")
    count = semi_structured.apply(module, choices, torch.float32, "cutlass")
    assert count == sum(c.sparse for c in choices) == len(_DenseStandIn.made) > 0
    for weight in _DenseStandIn.made:  # every weight given to the kernels is [N, K] and 2:4 along K
        groups = weight.reshape(weight.shape[0], -1, 4)
        assert int(((groups != 0).sum(dim=2) > 2).sum()) == 0
    x = np.random.default_rng(2).standard_normal(rows).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_replacing_an_unknown_node_is_an_error():
    module = load_onnx_proto(linear_stack())
    with pytest.raises(KeyError, match="no node 'nope'"):
        module.replace_step_function("nope", lambda *a: a)


# ---- on a GPU --------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU and a CUDA build of PyTorch (this machine has none)")


@needs_cuda
@pytest.mark.parametrize("options", [{}, {"cuda_graph": True}, {"timing": "host"}])
def test_torch_cuda_matches_onnxruntime(tmp_path, options):
    path = tmp_path / "m.onnx"
    onnx.save_model(linear_stack(), str(path))
    x = {"x": np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32)}
    want = get_runtime("onnxruntime-cpu").open(path).run(x)[0]
    session = get_runtime("torch-cuda", options=options).open(path)
    np.testing.assert_allclose(session.run(x)[0], want, rtol=2e-2, atol=2e-2)
    stats = measure_latency({"a": path}, x, runtime=get_runtime("torch-cuda", options=options),
                            protocol=LatencyProtocol.fixed(20, warmup=5))
    assert stats["a"].clock == ("host wall time" if options.get("timing") == "host" else "CUDA events (GPU compute time)")


@needs_cuda
def test_semi_structured_kernels_on_the_gpu(tmp_path):
    if torch.cuda.get_device_capability(0) < (8, 0):
        pytest.skip("semi-structured kernels need compute capability 8.0")
    path = tmp_path / "m.onnx"
    onnx.save_model(linear_stack(), str(path))
    x = {"x": np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32)}
    want = get_runtime("onnxruntime-cpu").open(path).run(x)[0]
    session = get_runtime("torch-cuda", options={"semi_structured": True}).open(path)
    np.testing.assert_allclose(session.run(x)[0], want, rtol=3e-2, atol=3e-2)
    kernels = session.details()["semi_structured"]
    assert kernels["sparse_layers"] == 2
    assert {layer["node"] for layer in kernels["layers"] if layer["status"] == semi_structured.SPARSE} == {"g1", "m3"}


@pytest.mark.slow
def test_gpu_benchmark_script_dry_run(tmp_path):
    """bench/gpu_sparse.py on the CPU: both networks exported, a 2:4 copy written, each timed
    against itself and its 2:4 copy; the JSON says it was a dry run (no GPU figure)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    ran = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_sparse.py"), "--dry-run", "--batches", "1",
                          "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["runtime"] == "torch-cpu"
    assert [r["network"].split()[0] for r in report["results"]] == ["ufld-r18", "yolo-style"]
    for result in report["results"]:
        assert set(result["models"]) == {"dense", "dense (control)", "2:4 dense"}
        assert result["pruned_layers"] > 20
        assert result["models"]["2:4 dense"]["vs_dense"]["verdict"]


def test_onnxruntime_tensorrt_options_reach_the_provider(tmp_path):
    runtime = get_runtime("ort-trt", options={"sparsity": "off"})
    trt_options = runtime.provider_options(tmp_path)[0]
    assert trt_options["trt_sparsity_enable"] is False and trt_options["trt_fp16_enable"] is True
    assert trt_options["trt_engine_cache_path"] == str(tmp_path) and runtime.device_kind == "GPU"
    assert default_protocol(runtime.device_kind) == GPU_PROTOCOL
