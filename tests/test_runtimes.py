"""compressor.runtimes: the registry, the onnxruntime CPU runtime against a bare onnxruntime
session, one-line errors, and a runtime registered by a test that latency and the pipeline use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from cli import main
from compressor import compress
from compressor.errors import ConfigError, InferenceError
from compressor.runtimes import RUNTIMES, Runtime, RuntimeSession, get_runtime
from compressor.runtimes.latency import LatencyProtocol, device_label, measure_latency, pinned_threads
from onnx_builders import conv_gemm_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(conv_gemm_model(), str(path))
    return path


def _x(batch: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 3, 8, 8)).astype(np.float32)


def _direct(path) -> np.ndarray:
    """The independent oracle: onnxruntime itself, default options."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": _x()})[0]


def test_registry_lists_onnxruntime_cpu():
    assert "onnxruntime-cpu" in RUNTIMES.names()
    runtime = get_runtime("onnxruntime-cpu", threads=2)
    assert isinstance(runtime, Runtime) and runtime.name == "onnxruntime-cpu" and runtime.threads == 2


def test_unknown_runtime_is_a_one_line_error(model_path):
    with pytest.raises(ConfigError, match=r"^unknown runtime 'nope'; available: .*onnxruntime-cpu") as err:
        get_runtime("nope")
    assert "\n" not in str(err.value)
    result = CliRunner().invoke(main, ["run", str(model_path), "--runtime", "nope", "-q", "-o", str(model_path.parent / "o")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {err.value}"]
    assert not (model_path.parent / "o").exists()  # refused before any work


@pytest.mark.parametrize("source", ["path", "str", "bytes", "proto"])
def test_session_matches_onnxruntime(model_path, source):
    model = {"path": model_path, "str": str(model_path), "bytes": model_path.read_bytes(),
             "proto": onnx.load(str(model_path))}[source]
    session = get_runtime("onnxruntime-cpu").open(model)
    assert isinstance(session, RuntimeSession)
    assert (session.input_names, session.output_names) == (["x"], ["y"])
    got = session.run({"x": _x()})
    assert len(got) == 1
    np.testing.assert_allclose(got[0], _direct(model_path), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(session.run({"x": _x()}, outputs=["y"])[0], got[0])


def test_model_past_the_protobuf_limit_goes_through_a_temporary_file(model_path, tmp_path, monkeypatch):
    """Stands in for a ModelProto over 2 GiB: the limit lowered, the copy must be written to disk."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(onnx.checker, "MAXIMUM_PROTOBUF", 100)
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    session = get_runtime("onnxruntime-cpu").open(onnx.load(str(model_path)))
    assert list(scratch.iterdir())  # the copy lives as long as the session
    np.testing.assert_allclose(session.run({"x": _x()})[0], _direct(model_path), rtol=1e-6, atol=1e-6)
    del session
    assert not list(scratch.iterdir())


def test_library_errors_are_one_line(model_path):
    runtime = get_runtime("onnxruntime-cpu")
    with pytest.raises(InferenceError, match=r"^onnxruntime: ") as err:
        runtime.open(b"not a model")
    assert "\n" not in str(err.value)
    with pytest.raises(InferenceError) as err:
        runtime.open(model_path).run({"x": np.zeros((2, 4, 8, 8), np.float32)})
    assert str(err.value) == "onnxruntime: invalid dimensions for input x: index 1 got 4, expected 3"


def test_describe_says_device_versions_and_threads():
    description = get_runtime("onnxruntime-cpu", threads=3).describe()
    assert description["device"] == "CPU" and isinstance(description["device_name"], str)
    assert description["versions"] == {"onnxruntime": ort.__version__}
    assert description["threads"] == 3
    assert get_runtime("onnxruntime-cpu").describe()["threads"] is None
    assert device_label({"device": "CPU", "device_name": "", "versions": {"onnxruntime": "1.31.1"}, "threads": 2}) == \
        "CPU (onnxruntime 1.31.1, 2 threads)"
    assert device_label({"device": "CPU", "device_name": "Xeon", "versions": {"onnxruntime": "1.31.1"}, "threads": None}) == \
        "CPU (Xeon, onnxruntime 1.31.1, default threads)"


def test_only_the_runtime_module_makes_onnxruntime_sessions():
    sources = [ROOT / "cli.py", *(p for folder in ("compressor", "exporters", "deploy") for p in (ROOT / folder).rglob("*.py"))]
    makers = sorted(str(p.relative_to(ROOT)) for p in sources if "InferenceSession(" in p.read_text(encoding="utf-8"))
    assert makers == ["compressor/runtimes/onnxruntime_cpu.py"]  # the GPU runtimes call its onnxruntime_session


class CountingRuntime(Runtime):
    """onnxruntime on the CPU underneath, counting what it is asked to do, on a pretend device."""

    calls: list[str] = []

    def open(self, model):
        CountingRuntime.calls.append("open")
        return _CountingSession(get_runtime("onnxruntime-cpu", threads=self.threads).open(model))

    def describe(self) -> dict:
        return {"device": "Abacus", "device_name": "", "versions": {"beads": "2.0"}, "threads": self.threads}


class _CountingSession(RuntimeSession):
    def __init__(self, inner: RuntimeSession):
        self.inner, self.input_names, self.output_names = inner, inner.input_names, inner.output_names

    def run(self, feeds, outputs=None):
        CountingRuntime.calls.append("run")
        return self.inner.run(feeds, outputs)


@pytest.fixture
def counting():
    CountingRuntime.calls = []
    with RUNTIMES.registered("counting", CountingRuntime):
        yield CountingRuntime.calls
    assert "counting" not in RUNTIMES


def test_latency_measures_through_a_registered_runtime(model_path, counting):
    stats = measure_latency({"a": model_path, "b": model_path}, {"x": _x()}, runtime="counting",
                            protocol=LatencyProtocol.fixed(5, warmup=2), threads=1)
    assert counting.count("open") == 2
    assert counting.count("run") == 2 * (2 + 5)  # each model: warm-up, then timed runs
    assert stats["a"].runs == stats["b"].runs == 5 and stats["a"].threads == 1


def test_pipeline_reports_the_runtime_it_measured_in(model_path, tmp_path, counting):
    out = tmp_path / "out"
    report = compress(model_path, runtime="counting", output=out, progress=False, latency_runs=5, log=lambda m: None)
    assert counting.count("run") >= 2 * 5
    latency = json.loads((out / "report.json").read_text())["latency_ms"]
    assert latency["runtime"] == "counting" == report["latency_ms"]["runtime"]
    threads = pinned_threads()  # the protocol pins the thread count and the label records it
    assert latency["device"] == f"Abacus (beads 2.0, {threads} threads)"
    assert latency["dense"]["threads"] == latency["protocol"]["threads"] == threads
    md = (out / "report.md").read_text(encoding="utf-8")
    assert re.search(r"\| latency p50 \(Abacus\) \|", md)
    assert f"Abacus (beads 2.0, {threads} threads): host wall time of one counting run" in md
    assert "onnxruntime-cpu run" not in md and "(CPU)" not in md


def test_default_pipeline_latency_names_onnxruntime_cpu(model_path, tmp_path):
    report = compress(model_path, output=tmp_path / "out", progress=False, latency_runs=5, log=lambda m: None)
    assert report["latency_ms"]["runtime"] == "onnxruntime-cpu"
    assert report["latency_ms"]["device"].startswith("CPU (") and f"onnxruntime {ort.__version__}" in report["latency_ms"]["device"]
    assert "| latency p50 (CPU) |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_gpu_runtimes_name_the_missing_piece(tmp_path):
    """Without onnxruntime-gpu (this machine), opening a model on a GPU runtime is one line that
    says what to install; the short names of `compress bench` reach the same runtimes."""
    import onnxruntime as ort

    from compressor.errors import MissingToolError
    from compressor.runtimes.onnxruntime_gpu import CUDA, TENSORRT, missing_provider

    assert RUNTIMES.get("ort-cpu") is RUNTIMES.get("onnxruntime-cpu")
    assert RUNTIMES.get("ort-trt") is RUNTIMES.get("onnxruntime-trt")
    cpu_only = ["CPUExecutionProvider"]
    assert "pip install 'onnx-compressor[gpu]'" in missing_provider(CUDA, cpu_only)
    assert "libnvinfer" in missing_provider(TENSORRT, [CUDA, "CPUExecutionProvider"])
    assert missing_provider(CUDA, [CUDA, "CPUExecutionProvider"]) is None
    if CUDA in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu: nothing is missing")
    for name in ("onnxruntime-cuda", "ort-trt"):
        with pytest.raises(MissingToolError) as caught:
            get_runtime(name).open(b"not even a model")
        assert "\n" not in str(caught.value) and "onnxruntime-gpu" in str(caught.value)


def test_torch_cpu_runs_the_imported_model_like_onnxruntime():
    example = ROOT / "examples" / "lenet5_digits.onnx"
    feeds = {"input": np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)}
    session = get_runtime("torch-cpu", threads=1).open(example)
    name = session.input_names[0]
    feeds = {name: feeds["input"]}
    got = session.run(feeds)
    want = get_runtime("onnxruntime-cpu").open(example).run(feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert get_runtime("torch-cpu").describe()["versions"]["torch"]
    stats = measure_latency({"a": example, "b": example}, feeds, runtime="torch-cpu", protocol=LatencyProtocol.fixed(6, 1))
    assert stats["a"].runs == stats["b"].runs == 6


def test_torch_cuda_without_a_gpu_names_what_is_missing():
    import torch

    from compressor.errors import MissingToolError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(MissingToolError, match="needs a CUDA GPU"):
        get_runtime("torch-cuda").open(ROOT / "examples" / "lenet5_digits.onnx")


def test_pipeline_measures_each_batch_size_asked_for(model_path, tmp_path, counting):
    out = tmp_path / "out"
    report = compress(model_path, runtime="counting", latency_batches=(1, 3), output=out, progress=False,
                      latency_runs=5, log=lambda m: None)
    latency = report["latency_ms"]
    assert [b["batch"] for b in latency["by_batch"]] == [1, 3]
    assert [b["dense"]["batch"] for b in latency["by_batch"]] == [1, 3]
    assert latency["batch"] == 1 and latency["dense"] == latency["by_batch"][0]["dense"]
    for entry in latency["by_batch"]:  # every batch size has its own control and verdict
        assert entry["verdict"] and entry["control"]["ratio"] > 0 and entry["clock"] == "host wall time"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| batch | dense p50 | compressed p50 | dense p50 / compressed p50 | same-file control |" in md
    assert re.search(r"^\| 3 \| [\d.]+ ms \| [\d.]+ ms \| ", md, re.M)


def test_latency_options_fail_before_any_work(model_path, tmp_path):
    runner = CliRunner()
    for args, message in [(["--latency-batch", "1,0"], "--latency-batch sizes must be 1 or more"),
                          (["--runtime", "torch-cpu", "--runtime-option", "cuda_graph=true"], "has no option 'cuda_graph'"),
                          (["--runtime-option", "threads"], "expected KEY=VALUE")]:
        result = runner.invoke(main, ["run", str(model_path), "-o", str(tmp_path / "o"), *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_a_model_fixed_to_its_batch_is_timed_at_that_batch_only(tmp_path, counting):
    model = conv_gemm_model()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 2  # declared batch 2
    path = tmp_path / "fixed.onnx"
    onnx.save_model(model, str(path))
    report = compress(path, runtime="counting", latency_batches=(1, 4), output=tmp_path / "out", progress=False,
                      latency_runs=5, log=lambda m: None)
    latency = report["latency_ms"]
    assert latency["batch"] == 2 and "by_batch" not in latency
    assert any("Latency at batch 2 only" in note and "--latency-batch 1,4 not measured" in note for note in report["notes"])
    quiet = compress(path, runtime="counting", output=tmp_path / "out2", progress=False, latency_runs=5, log=lambda m: None)
    assert quiet["latency_ms"]["batch"] == 2 and not any("Latency at batch" in note for note in quiet["notes"])
