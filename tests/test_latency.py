"""compressor.runtimes.latency: timing in a runtime (onnxruntime on the CPU here), interleaved, with percentile statistics."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compressor.errors import CompressorError
from compressor.runtimes.latency import LatencyStats, measure_latency, run_interleaved, speedup

WIDTH = 256
BATCH = 64


def _save(model: onnx.ModelProto, path):
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _matmul_chain(path, depth: int = 6):
    """x[N,256] -> depth x MatMul(256x256): ~50 MFLOP at batch 64, far above session overhead."""
    rng = np.random.default_rng(0)
    nodes, inits, name = [], [], "x"
    for i in range(depth):
        inits.append(numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) / 16).astype(np.float32), f"w{i}"))
        out = "y" if i == depth - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [name, f"w{i}"], [out], name=f"mm{i}"))
        name = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _identity(path):
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("latency")
    return {"big": _matmul_chain(root / "big.onnx"), "small": _identity(root / "small.onnx")}


def _feeds():
    return {"x": np.random.default_rng(1).standard_normal((BATCH, WIDTH)).astype(np.float32)}


def test_bigger_model_is_slower_and_stats_are_ordered(two_models):
    stats = measure_latency(two_models, _feeds(), warmup=3, runs=30, threads=1, max_seconds=None)
    assert set(stats) == {"big", "small"}
    big, small = stats["big"], stats["small"]
    assert big.p50_ms > 3 * small.p50_ms  # ~50 MFLOP against a copy
    for s in (big, small):
        assert 0 < s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
        assert s.min_ms <= s.mean_ms <= s.max_ms
        assert (s.runs, s.threads, s.batch) == (30, 1, BATCH)
    assert speedup(big, small) == pytest.approx(big.p50_ms / small.p50_ms)
    assert json.loads(json.dumps(big.to_dict()))["p50_ms"] == big.p50_ms  # goes into report.json as is


def test_time_budget_keeps_the_minimum_runs(two_models):
    stats = measure_latency(two_models, _feeds(), warmup=1, runs=1000, threads=1, max_seconds=0.0)
    assert stats["big"].runs == stats["small"].runs == 5


def test_runs_are_interleaved_after_warmup():
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    samples = run_interleaved(runners, warmup=2, runs=4, max_seconds=None)
    assert calls == ["a", "b", "c"] * 6  # 2 warm-up rounds, then 4 timed rounds
    assert {name: len(s) for name, s in samples.items()} == {"a": 4, "b": 4, "c": 4}


def test_time_budget_with_a_fake_clock():
    """Each call takes 1 s on the fake clock: the 1.5 s budget cuts warm-up to one round and timing
    to MIN_RUNS rounds, the same for every runner."""
    now = [0]
    calls = []

    def runner(name):
        def run():
            calls.append(name)
            now[0] += 10**9
        return run

    samples = run_interleaved({"a": runner("a"), "b": runner("b")}, warmup=10, runs=100, max_seconds=1.5,
                              clock=lambda: now[0])
    assert calls[:2] == ["a", "b"] and len(calls) == 2 + 2 * 5
    assert samples == {"a": [10**9] * 5, "b": [10**9] * 5}


def test_stats_from_known_samples():
    stats = LatencyStats.from_samples([5_000_000, 1_000_000, 3_000_000, 2_000_000, 4_000_000], threads=None, batch=1)
    assert (stats.min_ms, stats.p50_ms, stats.max_ms, stats.mean_ms) == (1.0, 3.0, 5.0, 3.0)
    assert stats.p90_ms == pytest.approx(4.6) and stats.p99_ms == pytest.approx(4.96)
    assert speedup(stats, LatencyStats.from_samples([1_500_000], None, 1)) == pytest.approx(2.0)


def test_bad_arguments(two_models, tmp_path):
    with pytest.raises(CompressorError, match=r"needs inputs \['x'\]"):
        measure_latency(two_models, {"other": np.zeros((1, WIDTH), np.float32)}, max_seconds=None)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(CompressorError, match="cannot load"):
        measure_latency({"junk": junk}, _feeds())
    with pytest.raises(CompressorError, match="cannot run"):  # wrong width for the MatMul
        measure_latency({"big": two_models["big"]}, {"x": np.zeros((1, 3), np.float32)}, warmup=1)
    with pytest.raises(ValueError):
        run_interleaved({"a": lambda: None}, runs=0)
