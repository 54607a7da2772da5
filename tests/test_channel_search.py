"""Channel counts by search: the NCS search over kept counts, each layer's fraction of its channel
product, the per-layer latency table, and OLMP on channel groups in the pipeline (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from cli import main
from compressor import compress
from compressor.onnx_import import load_onnx
from compressor.runtimes import get_runtime
from compressor.runtimes.layer_latency import LatencyTable, LayerCurve, build_latency_table
from compressor.sparsity.channel_groups import kept_fractions
from compressor.sparsity.channel_search import keeps_of, search_keeps
from compressor.structure import analyze_channels

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"


def test_keeps_are_rounded_and_never_empty():
    sizes = [(0, 64), (1, 10), (2, 500)]
    assert keeps_of(np.array([0.5, 0.5, 0.5]), sizes, 8) == {0: 32, 1: 8, 2: 248}  # 5 of 10 rounds up to one block of 8
    assert keeps_of(np.array([0.01, 0.01, 0.01]), sizes, 1) == {0: 1, 1: 1, 2: 5}


def test_kept_fractions_multiply_axes_and_add_shares_of_one_axis():
    """a: 64 outputs (group 0); b reads group 0 and writes group 1; dw: depthwise, group 1 on its
    output axis only; cat: reads the concatenation of groups 0 and 1 (64 + 32 inputs), so their
    removed channels add up on one axis; fc: reads group 1 flattened, 4 positions per channel."""
    c = lambda n: tuple((i,) for i in range(n))  # noqa: E731 - one index per channel
    shapes = {"a": (64, 3, 3, 3), "b": (32, 64, 3, 3), "dw": (32, 1, 3, 3), "cat": (16, 96, 1, 1), "fc": (10, 128)}
    groups = [(64, 32, [("a", 0, c(64)), ("b", 1, c(64)), ("cat", 1, c(64))]),
              (32, 8, [("b", 0, c(32)), ("dw", 0, c(32)), ("cat", 1, tuple((64 + i,) for i in range(32))),
                       ("fc", 1, tuple(tuple(range(4 * i, 4 * i + 4)) for i in range(32)))])]
    got = kept_fractions(groups, shapes)
    assert got == {"a": 0.5, "b": pytest.approx(0.5 * 0.25), "dw": 0.25,
                   "cat": pytest.approx((32 + 8) / 96), "fc": pytest.approx(0.25)}


def test_search_finds_the_cheapest_counts_within_the_bound():
    """Cost: kept channels weighted 1 and 3; bound: at least 96 channels kept in all. The optimum
    keeps the cheap group whole-ish and cuts the expensive one to the bound."""
    sizes = [(0, 64), (1, 64)]

    def cost(keeps):
        return keeps[0] * 1.0 + keeps[1] * 3.0

    def violation(keeps):
        return max(0.0, 96 - (keeps[0] + keeps[1])) / 96

    outcome = search_keeps(sizes, cost, violation, objective="test", round_to=8, budget=400, seed=1)
    assert outcome.violation == 0 and outcome.keeps[0] + outcome.keeps[1] >= 96
    assert all(k % 8 == 0 for k in outcome.keeps.values())
    assert outcome.keeps[0] == 64 and outcome.keeps[1] <= 40  # the expensive group carries the cut
    assert outcome.cost / outcome.dense_cost < 0.7 and outcome.feasible_seen > 1


def test_search_keeps_the_dense_counts_when_nothing_else_fits():
    outcome = search_keeps([(0, 16)], lambda k: float(k[0]), lambda k: 0.0 if k[0] == 16 else 1.0,
                           objective="test", round_to=1, budget=50)
    assert outcome.keeps == {0: 16} and outcome.cost == outcome.dense_cost


def test_latency_table_predicts_from_layer_curves():
    table = LatencyTable("r", {"a": LayerCurve("a", "A", "out", [(0.5, 1.0), (1.0, 3.0)]),
                               "b": LayerCurve("b", "B", "none", [(1.0, 2.0)])}, dense_ms=6.0, rest_ms=1.0)
    assert table.predict({}) == pytest.approx(6.0)
    assert table.predict({"a": 0.75}) == pytest.approx(1.0 + 2.0 + 2.0)  # interpolated between the points
    assert table.predict({"a": 0.1}) == pytest.approx(1.0 + 1.0 + 2.0)  # clamped below the smallest point


def test_latency_table_of_lenet_on_onnxruntime(tmp_path):
    module = load_onnx(EXAMPLE)
    feeds = {"input": np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)}
    analysis = analyze_channels(onnx.load(str(EXAMPLE)), feeds)
    shrinkable = {"conv1.weight": (False, True), "conv2.weight": (True, True), "ip1.weight": (True, True),
                  "ip2.weight": (True, False)}
    table = build_latency_table(EXAMPLE, analysis, module.weights, get_runtime("onnxruntime-cpu", threads=1),
                                shrinkable, feeds)
    assert set(table.curves) == set(module.weights)
    conv2 = table.curves["conv2.weight"]
    assert conv2.sides == "both" and [p for p, _ in conv2.points] == [0.25, 0.5, 0.75, 1.0]
    assert all(ms > 0 for _, ms in conv2.points)
    assert conv2.points[0][1] < conv2.points[-1][1]  # a quarter of conv2's channel product runs faster than all of it
    assert table.dense_ms > 0 and table.rest_ms >= 0
    assert table.predict({}) == pytest.approx(max(table.dense_ms, sum(c.at(1.0) for c in table.curves.values())))


@pytest.mark.slow
def test_olmp_searches_channel_counts_and_exports_the_slim_graph(tmp_path):
    report = compress(EXAMPLE, method="olmp", pattern="channel", objective="flops", max_accuracy_drop=2.0,
                      search_budget=15, search_calls=2, epochs=1, retrain_epochs=0, data="digits", limit=300,
                      output=tmp_path / "out", progress=False, latency_runs=5, log=lambda m: None)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    search = saved["plan"]["channels"]["search"]
    assert search["objective"] == "flops" and search["cost_ratio"] < 1.0
    assert search["evaluations"] <= 30 and "2 points below" in search["constraint"]
    assert saved["olmp_channels"]["objective"] == "flops"
    assert saved["slim"]["channels_removed"] > 0 and saved["slim"]["parity"]["max_relative_error"] < 1e-4
    assert report["params"]["total"] < report["params"]["dense_total"]


def test_latency_objective_needs_the_channel_pattern(tmp_path):
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "--method", "olmp", "--objective", "latency",
                                       "--epochs", "1", "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 2 and "--objective latency needs --pattern channel" in result.output


@pytest.mark.slow
def test_latency_objective_is_checked_against_the_measured_model(tmp_path):
    compress(EXAMPLE, method="olmp", pattern="channel", objective="latency", max_accuracy_drop=3.0, search_budget=11,
             search_calls=2, epochs=1, retrain_epochs=0, data="digits", limit=300, output=tmp_path / "out",
             progress=False, latency_runs=20, log=lambda m: None)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    search = saved["plan"]["channels"]["search"]
    table = search["latency_table"]
    assert search["objective"] == "latency" and search["unit"].startswith("ms, predicted p50 on onnxruntime-cpu")
    assert {layer["weight"] for layer in table["layers"]} == {"conv1.weight", "conv2.weight", "ip1.weight", "ip2.weight"}
    assert 0 < search["cost"] <= search["dense_cost"] + 1e-12
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Latency search on onnxruntime-cpu: predicted p50" in md and "predicted/measured" in md
