"""compressor.reporting: report.md with its PNG figures, and the console summary."""

from __future__ import annotations

import copy
import json
import struct

import pytest

from compressor.reporting import console_summary, render_markdown, write_markdown_report
from compressor.reporting.formatting import main_metric, metric_delta, metric_value
from compressor.methods.olmp.report import search_figure
from compressor.reporting.plots import TRACE_PLOT, report_figures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _layer(name, op, shape, target, sparsity, note=None):
    params = 1
    for d in shape:
        params *= d
    return {"name": name, "node": name.removesuffix(".weight"), "op": op, "shape": shape, "params": params,
            "target": target, "sparsity": sparsity, "note": note}


def _stats(p50, p90):
    return {"mean_ms": p50 * 1.05, "p50_ms": p50, "p90_ms": p90, "p99_ms": p90 * 1.2, "min_ms": p50 * 0.9,
            "max_ms": p90 * 1.3, "runs": 30, "threads": 2, "batch": 1}


@pytest.fixture
def report():
    """A report as the pipeline writes it (every optional key present)."""
    return {
        "method": "magnitude", "pattern": "unstructured", "scope": "layer", "target_sparsity": 0.9, "sparsity": 0.9001,
        "model": "models/net.onnx",
        "params": {"total": 11689512, "nonzero": 1530012, "prunable": 11679912, "prunable_nonzero": 1520412},
        "compression_ratio": 7.64,
        "layers": [
            _layer("conv1.weight", "Conv", [64, 3, 7, 7], None, 0.0, "first conv left dense by default"),
            _layer("layer1.0.conv1.weight", "Conv", [64, 64, 3, 3], 0.9, 0.9),
            _layer("layer1.0.conv2|odd name", "Conv", [64, 64, 3, 3], 0.9, 0.8999),
            _layer("fc.weight", "Gemm", [10, 512], None, 0.0, "last classifier left dense by default"),
        ],
        "metrics": {"dense": {"accuracy": 0.982, "loss": 0.05}, "compressed": {"accuracy": 0.978, "loss": 0.061},
                    "split": "validation (1000 samples)", "kind": "task"},
        "one_shot_metrics": {"accuracy": 0.61, "loss": 1.2},
        "export_parity": 1.2e-06,
        "export_parity_inputs": "8 samples of the validation data (digits)",
        "latency_ms": {"dense": _stats(3.21, 3.5), "compressed": _stats(3.15, 3.4), "speedup": 1.019,
                       "speedup_interval": [0.912, 1.138], "verdict": "no measurable difference", "confidence": 0.95,
                       "margin": 0.02, "device": "CPU (onnxruntime 1.31.1, 2 threads)",
                       "protocol": {"warmup_runs": 10, "warmup_seconds": 0.2, "seconds": 2.0, "min_runs": 20,
                                    "max_runs": 20000, "max_seconds": 60.0, "rounds": 30, "threads": 2,
                                    "order": "rotated each round",
                                    "bootstrap": {"paired": True, "resamples": 2000, "seed": 0}}},
        "file_bytes": {"dense": 46861312, "compressed": 46870000},
        "timings": {"import_s": 0.8, "prune_s": 0.1, "train_s": 30.2, "export_s": 1.1, "evaluate_s": 2.0,
                    "latency_s": 4.0, "total_s": 38.2},
        "outputs": {"onnx": "out/model.onnx", "report_json": "out/report.json", "report_md": "out/report.md"},
        "data": {"description": "digits, 8x8 greyscale", "train": 1437, "val": 360, "labelled": True},
        "training": {"epochs": 3, "optimizer": "adam", "lr": 0.001},
        "notes": ["first conv left dense by default", "no labelled data: metrics are fidelity to the dense model"],
        "trace": [{"phase": "finetune", "epoch": e, "train_loss": 1.0 / e, "val_accuracy": 0.9 + 0.02 * e} for e in (1, 2, 3)],
    }


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_markdown_and_figures_written(report, tmp_path):
    md_path = write_markdown_report(report, tmp_path)
    assert md_path == tmp_path / "report.md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "sparsity.png", "trace.png"]  # no temp files left
    for png in ("sparsity.png", "trace.png"):
        width, height = _png_size(tmp_path / png)
        assert width > 400 and height > 200
    md = md_path.read_text(encoding="utf-8")
    for expected in [
        "# Compression report: magnitude, unstructured",
        "| accuracy | 98.20% | 97.80% | -0.40 pp |",
        "| loss | 0.05 | 0.061 | +0.011 |",
        "| accuracy, after one-shot pruning, before fine-tuning | 98.20% | 61.00% | -37.20 pp |",  # legacy key
        "| parameters, total | 11,689,512 | 11,689,512 |",
        "| parameters, nonzero | — | 1,530,012 |",
        "| compression ratio (total / nonzero) | — | 7.64× |",
        "| ONNX file size | 44.69 MiB | 44.70 MiB | +0.0% |",
        "| latency p50 (CPU) | 3.210 ms | 3.150 ms | no measurable difference (ratio 1.02×, 95% interval 0.91–1.14×) |",
        "Dense p50 / compressed p50: **no measurable difference (ratio 1.02×, 95% interval 0.91–1.14×)**.",
        "then 30 timed rounds (budget 2.0 s, 20 to 20000 rounds), the model that runs first rotated each round; 2 threads.",
        "percentile bootstrap of the ratio of medians, paired by round, 2000 resamples, seed 0.",
        "| latency p90 (CPU) | 3.500 ms | 3.400 ms |",
        "not smaller on disk",  # lesson 7: say why the file did not shrink
        "CPU (onnxruntime 1.31.1, 2 threads): host wall time",
        "module, on the same 8 samples of the validation data (digits): max relative error **1.20e-06**",
        "![Per-layer sparsity](sparsity.png)",
        "| 1 | `conv1.weight` | Conv | 64×3×7×7 | 9,408 | dense | 0.00% | first conv left dense by default |",
        "| 2 | `layer1.0.conv1.weight` | Conv | 64×64×3×3 | 36,864 | 90.0% | 90.00% |  |",
        "`layer1.0.conv2\\|odd name`",  # a pipe in a name must not split the table cell
        "![Optimisation trace](trace.png)",
        "| finetune | 3 | 0.3333 | 96.00% |",
        "- Data: digits, 8x8 greyscale (1,437 train, 360 val, labelled)",
        "- Training: epochs 3, optimizer adam, lr 0.001",
        "- no labelled data: metrics are fidelity to the dense model",
        "| train | 30.20 s |",
        "| total | 38.20 s |",
        "- compressed model: `out/model.onnx`",
    ]:
        assert expected in md, expected
    # sections in reading order
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Latency", "## Export parity", "## Layers", "## Optimisation trace",
                        "## Data and training", "## Notes", "## Timings", "## Outputs"]


def test_rewrite_replaces_and_json_round_trip_renders_the_same(report, tmp_path):
    (tmp_path / "report.md").write_text("old")
    write_markdown_report(report, tmp_path)
    first = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert first != "old"
    assert render_markdown(json.loads(json.dumps(report)), {"sparsity.png", "trace.png"}) == first


def test_report_without_optional_keys(tmp_path):
    md_path = write_markdown_report({"method": "magnitude", "pattern": "2:4"}, tmp_path)
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# Compression report: magnitude, 2:4")
    assert "##" not in md and "png" not in md
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
    assert console_summary({}).strip() == "compression"


def test_missing_sections_are_left_out(report, tmp_path):
    for key in ("trace", "latency_ms", "one_shot_metrics", "export_parity", "data", "training", "notes"):
        del report[key]
    report["metrics"]["compressed"]["loss"] = None  # an unavailable value renders as a dash
    md = write_markdown_report(report, tmp_path).read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "sparsity.png"]
    assert "## Latency" not in md and "trace" not in md and "## Notes" not in md and "## Export parity" not in md
    assert "| loss | 0.05 | — |  |" in md
    del report["export_parity_inputs"]
    report["export_parity"] = 2e-7  # a report from before export_parity_inputs: claims nothing about the inputs
    assert "module, on the same inputs: max relative error **2.00e-07**" in render_markdown(report)


def test_several_training_phases_plot(report, tmp_path):
    report["trace"] = [{"phase": "admm", "epoch": e, "train_loss": 2.0 / e, "residual": 1.0 / e} for e in (1, 2)]
    report["trace"] += [{"phase": "finetune", "epoch": e, "train_loss": 0.5 / e} for e in (1, 2)]
    md = write_markdown_report(report, tmp_path).read_text(encoding="utf-8")
    assert _png_size(tmp_path / "trace.png")[0] > 400
    assert "| phase | epoch | train_loss | residual |" in md
    assert "| finetune | 2 | 0.25 | — |" in md


def counting_axes_ticks(figure) -> list[tuple[str, list[str]]]:
    """Draw the figure; (x label, tick labels in view) of every axis that counts epochs or steps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure).draw()
    ticks = []
    for ax in figure.axes:
        if ax.get_visible() and ax.get_xlabel().startswith(("epoch", "training step")):
            lo, hi = ax.get_xlim()
            ticks.append((ax.get_xlabel(), [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]))
    return ticks


def is_whole_number(text: str) -> bool:
    return text.replace("\u2212", "-").lstrip("-").isdigit()  # matplotlib writes minus as U+2212


def test_one_epoch_and_one_search_call_get_whole_number_ticks(report):
    report["trace"] = [{"phase": "finetune", "epoch": 1, "train_loss": 0.4, "lr": 1e-3, "val_accuracy": 0.9}]
    olmp = {"objective": "params", "layers": [{"name": "fc.weight"}],
            "searches": [{"step": 7, "kept_fractions": [0.2], "c_after": [1.5]}]}
    figures = report_figures(report)
    trace = counting_axes_ticks(figures[TRACE_PLOT])
    search = counting_axes_ticks(search_figure(olmp))  # OLMP's figure is drawn by its report section
    assert [x for x, _ in trace] == ["epoch"] * 3  # train_loss, lr, val_accuracy
    assert [x for x, _ in search] == ["training step of the search call"] * 2
    for _, labels in trace + search:
        assert labels and all(is_whole_number(t) for t in labels), labels  # matplotlib alone: 0.95, 1.00, 1.05
    assert all("1" in labels for _, labels in trace) and all("7" in labels for _, labels in search)


def test_after_pruning_row_is_labelled_by_its_stage(report):
    report["after_pruning"] = {"stage": "hard-pruned", "metrics": {"accuracy": 0.4, "loss": 2.5}}
    md = render_markdown(report)  # the contract key wins over the legacy one_shot_metrics
    assert "| accuracy, after hard pruning, before retraining | 98.20% | 40.00% | -58.20 pp |" in md
    assert "| loss, after hard pruning, before retraining | 0.05 | 2.5 | +2.45 |" in md
    assert "one-shot" not in md
    assert "40.00% after hard pruning, before retraining (-58.20 pp)" in console_summary(report)
    del report["after_pruning"], report["one_shot_metrics"]
    report["hard_pruned_metrics"] = {"accuracy": 0.3}  # what SLR/ADMM wrote before after_pruning
    assert "| accuracy, after hard pruning, before retraining | 98.20% | 30.00% | -68.20 pp |" in render_markdown(report)
    del report["hard_pruned_metrics"]
    assert "after" not in render_markdown(report).split("## Latency")[0] and "after" not in console_summary(report)


def test_console_summary_has_the_key_figures(report):
    report["outputs"]["plots"] = ["out/sparsity.png", "out/trace.png"]
    text = console_summary(report)
    lines = text.splitlines()
    assert len(lines) <= 14 and text.isascii()
    assert lines[0] == "magnitude, unstructured, layer scope: net.onnx"
    for expected in [
        "target 90.0%, achieved 90.01% of prunable weights",
        "11.69M total, 1.53M nonzero (7.64x compression)",
        "accuracy       98.20% -> 97.80% (-0.40 pp), validation (1000 samples)",
        "               61.00% after one-shot pruning, before fine-tuning (-37.20 pp)",
        "3.210 ms -> 3.150 ms, no measurable difference (ratio 1.02x, 95% interval 0.91-1.14x)",
        "CPU (onnxruntime 1.31.1, 2 threads)",
        "44.69 MiB -> 44.70 MiB",
        "1.20e-06 max relative error",
        "model          out/model.onnx",
        "report         out/report.md (+ report.json, sparsity.png, trace.png)",
    ]:
        assert expected in text, expected


def test_fidelity_metrics():
    metrics = {"dense": {"loss": 0.0, "relative_l2": 0.0, "top1_agreement": 1.0, "cosine": 1.0},
               "compressed": {"loss": 0.3, "relative_l2": 0.082, "top1_agreement": 0.93, "cosine": 0.9966}}
    assert main_metric(metrics) == "top1_agreement"  # agreement leads, even listed after loss
    assert main_metric({"dense": {"loss": 1.0}, "compressed": {"loss": 2.0}}) == "loss"
    assert main_metric({"dense": {"accuracy": 0.9}, "compressed": {}}) is None
    assert metric_value("top1_agreement", 0.93) == "93.00%"
    assert metric_value("cosine", 0.9966) == "0.9966"  # a fraction, but not a percentage
    assert metric_delta("top1_agreement", 1.0, 0.93) == "-7.00 pp"
    assert metric_delta("relative_l2", 0.0, 0.082) == "+0.082"
    summary = console_summary({"method": "slr", "metrics": {**copy.deepcopy(metrics), "split": "random inputs (64 samples)"}})
    assert "top1_agreement  100.00% -> 93.00% (-7.00 pp), random inputs (64 samples)" in summary


@pytest.mark.parametrize("latency, text", [
    ({"speedup": 1.37, "speedup_interval": [1.2, 1.55], "verdict": "faster", "confidence": 0.95},
     "1.37x faster (95% interval 1.20-1.55x)"),
    ({"speedup": 0.8, "speedup_interval": [0.75, 0.85], "verdict": "slower", "confidence": 0.95},
     "slower (ratio 0.80x, 95% interval 0.75-0.85x)"),
    ({"speedup": 1.37, "speedup_interval": None, "verdict": "too few runs",
      "dense": {**_stats(3.21, 3.5), "runs": 5}},
     "no verdict (ratio 1.37x, 5 runs; a verdict needs 10)"),
    ({"speedup": 1.37}, "ratio 1.37x, no interval recorded"),  # a report from before verdicts
])
def test_a_speed_up_is_claimed_only_with_an_interval_clear_of_one(report, latency, text):
    report["latency_ms"] = {"dense": _stats(3.21, 3.5), "compressed": _stats(2.34, 3.4), **latency}
    summary = console_summary(report)
    assert text in summary
    assert "speed-up" not in summary and "speed-up" not in render_markdown(report)
    assert text.replace("x", "×").replace("-", "–") in render_markdown(report)
