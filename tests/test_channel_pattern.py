"""The coupled `channel` pattern: channel groups from the graph's analysis planned at a target
(or at a multiply-add budget), masked on every weight that holds them, in the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner

from cli import main
from compressor import compress
from compressor.onnx_import import load_onnx
from compressor.sparsity import parse_pattern, plan_layers
from compressor.sparsity.channel_groups import attach, coupled_masks, plan_channels
from compressor.sparsity.plan import compute_masks
from compressor.structure import analyze_channels

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"


@pytest.fixture(scope="module")
def lenet():
    module = load_onnx(EXAMPLE)
    analysis = analyze_channels(onnx.load(str(EXAMPLE)), {"input": np.zeros((1, 1, 28, 28), np.float32)})
    return module, analysis


def channel_plan(module, analysis, sparsity=0.5, round_to=8, target_flops=None, **plan_options):
    pattern = parse_pattern("channel")
    layer_plan = plan_layers(module.weights, pattern=pattern, sparsity=sparsity, **plan_options)
    channels = plan_channels(analysis, module.weights, layer_plan.targets, layer_plan.skipped, round_to=round_to,
                             target_flops=target_flops)
    attach(layer_plan, channels, module.weights)
    return layer_plan, pattern


def test_lenet_groups_follow_the_layer_plan(lenet):
    module, analysis = lenet
    layer_plan, _ = channel_plan(module, analysis)
    channels = layer_plan.channels
    by_producer = {g.producers: g for g in channels.groups}
    conv2, ip1 = by_producer[("conv2.weight",)], by_producer[("ip1.weight",)]
    # 50 - round(25) = 25 kept, rounded to a multiple of 8 -> 24; 500 -> 250 -> 248
    assert (conv2.size, conv2.keep, ip1.size, ip1.keep) == (50, 24, 500, 248)
    assert {w for w, _, _ in conv2.weights} == {"conv2.weight", "ip1.weight"}
    # conv1 is the first conv (kept dense by default): its channels stay; the logits are the graph's output
    assert any("first conv kept dense" in why for why in channels.kept_whole.values())
    assert any("graph output 'logits'" in " ".join(why) for why in channels.blocked.values())
    # a dense layer still loses the input slices of pruned channels: ip2 has a target, conv1 none
    assert set(layer_plan.targets) == {"conv2.weight", "ip1.weight", "ip2.weight"}
    assert layer_plan.targets["conv2.weight"] == pytest.approx(1 - 24 / 50)
    assert layer_plan.targets["ip1.weight"] == pytest.approx(1 - (248 / 500) * (24 / 50))
    assert "conv1.weight" in layer_plan.skipped


def test_masks_remove_whole_channels_on_every_side(lenet):
    module, analysis = lenet
    layer_plan, pattern = channel_plan(module, analysis)
    weights = {n: module.parameter(n).detach() for n in layer_plan.targets}
    masks = compute_masks(weights, module.weights, layer_plan, pattern)
    conv2_rows = masks["conv2.weight"].reshape(50, -1)
    kept = conv2_rows.all(dim=1)
    assert int(kept.sum()) == 24 and bool((conv2_rows.any(dim=1) == kept).all())  # whole filters
    # ip1 reads the flattened 50x4x4 map: channel c is columns 16c..16c+15, masked exactly when c is
    ip1 = masks["ip1.weight"]
    ip1_columns = ip1[ip1.any(dim=1)].all(dim=0).reshape(50, 16)  # among ip1's own kept rows
    assert torch.equal(ip1_columns.all(dim=1), kept) and torch.equal(ip1_columns.any(dim=1), kept)
    # the removed channels are the weakest by the summed squares of their filter and their columns
    score = (weights["conv2.weight"].reshape(50, -1) ** 2).sum(1) + (weights["ip1.weight"] ** 2).sum(0).reshape(50, 16).sum(1)
    assert set(torch.topk(score, 24).indices.tolist()) == set(torch.nonzero(kept).flatten().tolist())


def test_target_flops_keeps_that_fraction_of_multiply_adds(lenet):
    module, analysis = lenet
    for fraction in (0.5, 0.3):
        layer_plan, _ = channel_plan(module, analysis, sparsity=0.5, round_to=1, target_flops=fraction,
                                     keep_ends_dense=False)
        macs = layer_plan.channels.macs
        assert abs(macs["kept"] / macs["dense"] - fraction) < 0.02  # one channel at a time lands on the target
    # rounded to 8, a uniform ratio overshoots on narrow layers; blocks of 8 taken one at a time still reach it
    layer_plan, _ = channel_plan(module, analysis, sparsity=0.5, round_to=8, target_flops=0.5, keep_ends_dense=False)
    macs = layer_plan.channels.macs
    assert abs(macs["kept"] / macs["dense"] - 0.5) < 0.05
    assert all(g.keep % 8 == 0 or g.keep == g.size for g in layer_plan.channels.groups)
    with pytest.raises(Exception, match="--target-flops must be in"):
        channel_plan(module, analysis, target_flops=1.5)


def test_residual_groups_are_masked_alike_on_every_branch(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT))
    from deploy.zoo.export import export_reference
    from deploy.zoo.models.resnet import resnet18

    torch.manual_seed(0)
    path = export_reference(resnet18(num_classes=10, width=8), tmp_path / "r.onnx", (1, 3, 32, 32), 17)
    module = load_onnx(path)
    analysis = analyze_channels(onnx.load(str(path)), {module.input_names[0]: np.zeros((1, 3, 32, 32), np.float32)})
    layer_plan, pattern = channel_plan(module, analysis, round_to=1, keep_ends_dense=False)
    weights = {n: module.parameter(n).detach() for n in layer_plan.targets}
    masks = coupled_masks(weights, layer_plan.channels)
    residual = [g for g in layer_plan.channels.groups if len(g.producers) >= 3]
    assert residual, "a residual stage's convs produce one coupled group"
    for group in residual:
        kept_rows = [masks[p].reshape(masks[p].shape[0], -1).any(dim=1) for p in group.producers]
        assert all(torch.equal(kept_rows[0], rows) for rows in kept_rows)  # the same channels on every branch
        assert int(kept_rows[0].sum()) == group.keep


def test_pipeline_prunes_channel_groups_and_reports_the_channel_plan(tmp_path):
    report = compress(EXAMPLE, method="magnitude", pattern="channel", sparsity=0.5, epochs=1, data="digits", limit=200,
                      output=tmp_path / "out", progress=False, latency_runs=5, log=lambda m: None)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    groups = saved["plan"]["channels"]["groups"]
    assert {tuple(g["producers"]) for g in groups} == {("conv2.weight",), ("ip1.weight",)}
    assert all(g["kept"] % 8 == 0 for g in groups)
    assert report["params"]["prunable_nonzero"] < report["params"]["prunable"] * 0.5  # both sides of each layer shrink
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## Channel groups (--pattern channel)" in md and "| 1 | /conv2/Conv | 50 | 24 |" in md
    # the exported file is the slim graph: conv2 keeps 24 filters, ip1 248 rows of 24*16 inputs, ip2 reads 248
    written = {t.name: tuple(t.dims) for t in onnx.load(str(tmp_path / "out" / "model.onnx")).graph.initializer}
    assert written["conv2.weight"] == (24, 20, 5, 5) and written["ip1.weight"] == (248, 384) and written["ip2.weight"] == (10, 248)
    slim = saved["slim"]
    assert slim["channels_removed"] == (50 - 24) + (500 - 248) and slim["parity"]["max_relative_error"] < 1e-4
    assert saved["params"]["total"] == slim["params_after"] < saved["params"]["dense_total"]
    assert saved["file_bytes"]["compressed"] < 0.5 * saved["file_bytes"]["dense"]
    assert saved["export_parity"] < 1e-4  # the masked file against the module; the slim one against the masked file above
    assert "## Channels removed from the graph" in md


@pytest.mark.parametrize("args, message", [
    (["--pattern", "unstructured", "--target-flops", "0.5"], "is not it (use --pattern channel)"),
    (["--pattern", "channel", "--target-flops", "0.5", "--sparsity", "0.3"], "not both"),
    (["--pattern", "channel", "--round-to", "0"], "--round-to must be auto or 1 or more, got 0"),
    (["--pattern", "channel", "--round-to", "eight"], "--round-to must be auto or 1 or more, got 'eight'"),
    (["--pattern", "channel:importance=bn"], "channel importance must be l2 or l1"),
])
def test_channel_options_fail_before_any_work(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", str(EXAMPLE), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_planned_multiply_adds_are_what_the_slim_graph_computes_through_concatenations(tmp_path):
    """The YOLO-style network's C2f blocks concatenate several groups into one conv's input: each
    group removes its own share of that axis. The plan's count of kept multiply-adds must be the
    slim file's (it once multiplied the shares, so --target-flops 0.5 stopped at 53% of the graph)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from compressor.layer_costs import layer_costs
    from compressor.pipeline import DEFAULT_STAGES
    from deploy.zoo.export import export_reference
    from deploy.zoo.models.yolo import YOLO

    torch.manual_seed(0)
    shape = (1, 3, 64, 64)
    path = export_reference(YOLO(input_size=shape[2:]).eval(), tmp_path / "yolo.onnx", shape, 17)
    report = compress(path, method="magnitude", pattern="channel", target_flops=0.5, epochs=0, sensitivity="off",
                      error_budget=0.0, keep_ends_dense=False, random_samples=2, output=tmp_path / "out",
                      progress=False, stages=tuple(s for s in DEFAULT_STAGES if s != "measure"), log=lambda m: None)
    planned = report["plan"]["channels"]["macs"]
    seen: dict[str, int] = {}
    for group in report["plan"]["channels"]["groups"]:
        for weight_axis in group["weights"]:
            seen[weight_axis] = seen.get(weight_axis, 0) + 1
    assert max(seen.values()) >= 3  # a C2f output conv reads three or more pruned groups on its input axis
    dense = layer_costs(load_onnx(path), list(shape))
    slim = layer_costs(load_onnx(tmp_path / "out" / "model.onnx"), list(shape))
    layers = [name for name in dense if dense[name].macs]
    assert sum(dense[n].macs for n in layers) == pytest.approx(planned["dense"], rel=1e-9)
    assert sum(slim[n].macs for n in layers) == pytest.approx(planned["kept"], rel=1e-9)
    assert abs(planned["kept"] / planned["dense"] - 0.5) < 0.02


@pytest.mark.parametrize("avx512, multiple", [(True, 16), (False, 8)])
def test_round_to_auto_takes_the_measuring_runtimes_channel_block(tmp_path, monkeypatch, avx512, multiple):
    """onnxruntime's CPU convolutions work in blocks of 16 channels on AVX-512 and 8 otherwise
    (MLAS's NCHWc layout): `--round-to auto` rounds kept counts to the block of the runtime the
    run measures on, and says so in the report."""
    from compressor.runtimes import get_runtime, onnxruntime_cpu

    monkeypatch.setattr(onnxruntime_cpu, "cpu_has", lambda feature: avx512 and feature == "AVX512F")
    assert get_runtime("onnxruntime-cpu").channel_multiple()[0] == multiple
    assert get_runtime("torch-cpu").channel_multiple()[0] == 8  # a runtime without a known block: the common 8
    compress(EXAMPLE, method="magnitude", pattern="channel", sparsity=0.5, round_to="auto", epochs=0, data="digits",
             limit=100, output=tmp_path / "out", progress=False, latency_runs=5, log=lambda m: None)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    channels = saved["plan"]["channels"]
    assert channels["round_to"] == multiple
    assert all(g["kept"] % multiple == 0 for g in channels["groups"]) and channels["groups"]
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert f"--round-to auto: kept channel counts are multiples of {multiple}" in md
    assert f"kept counts multiples of {multiple}" in md
