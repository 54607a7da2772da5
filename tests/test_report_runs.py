"""What report.json and report.md say about real small runs on digits: the lr each epoch trained
at, what the export check ran on, the accuracy right after pruning, whole-number epoch ticks."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from compressor import compress
from compressor.reporting.plots import TRACE_PLOT, report_figures
from onnx_builders import conv_gemm_model
from test_reporting import counting_axes_ticks, is_whole_number

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lenet5_digits.onnx"
DIGITS = dict(data="digits", lr=1e-3, limit=300, progress=False, latency_runs=3, log=lambda message: None)


def saved(report: dict) -> tuple[dict, str]:
    """report.json and report.md as the run wrote them."""
    outputs = report["outputs"]
    return json.loads(Path(outputs["report_json"]).read_text()), Path(outputs["report_md"]).read_text(encoding="utf-8")


def section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def magnitude(tmp_path_factory):
    """report.json and report.md of magnitude runs with 1 and 2 epochs of cosine fine-tuning (sparsity
    0.97: one-shot pruning costs accuracy that fine-tuning recovers, so the two summary rows differ)."""
    out = tmp_path_factory.mktemp("magnitude")
    return {epochs: saved(compress(EXAMPLE, method="magnitude", sparsity=0.97, epochs=epochs, output=out / str(epochs), **DIGITS))
            for epochs in (1, 2)}


@pytest.mark.parametrize("epochs, lrs, cells", [(1, [1e-3], ["0.001"]), (2, [1e-3, 5e-4], ["0.001", "0.0005"])])
def test_trace_lr_is_the_lr_each_epoch_trained_at(magnitude, epochs, lrs, cells):
    report, md = magnitude[epochs]
    # before the fix the last epoch showed the cosine schedule's end: 0
    assert [r["lr"] for r in report["trace"]] == [pytest.approx(lr) for lr in lrs]
    table = [line.split(" | ") for line in section(md, "Optimisation trace").splitlines() if line.startswith("| ")]
    lr_column = table[0].index("lr")
    assert [row[lr_column] for row in table[1:]] == cells


def test_parity_section_names_the_validation_samples(magnitude, tmp_path):
    report, md = magnitude[1]
    assert report["export_parity_inputs"] == "8 samples of the validation data (digits)"
    assert "on the same 8 samples of the validation data (digits): max relative error" in section(md, "Export parity")
    assert "random" not in section(md, "Export parity")

    path = tmp_path / "m.onnx"
    onnx.save_model(conv_gemm_model(), str(path))
    _, free_md = saved(compress(path, method="magnitude", sparsity=0.5, output=tmp_path / "free",
                                **{k: v for k, v in DIGITS.items() if k not in ("data", "limit")}))
    assert "on the same 8 random inputs: max relative error" in section(free_md, "Export parity")


def test_one_epoch_run_plots_whole_epochs(magnitude):
    report, _ = magnitude[1]
    axes = counting_axes_ticks(report_figures(report)[TRACE_PLOT])
    assert len(axes) == len([k for k, v in report["trace"][0].items() if k not in ("phase", "epoch")])  # every numeric key
    for xlabel, labels in axes:
        assert xlabel == "epoch" and labels and all(is_whole_number(t) for t in labels), labels
        assert "1" in labels


def after_pruning_row(report: dict, md: str, label: str) -> str:
    """The summary row of the accuracy after pruning, checked against report.json's numbers."""
    dense, pruned = report["metrics"]["dense"]["accuracy"], report["after_pruning"]["metrics"]["accuracy"]
    assert pruned != report["metrics"]["compressed"]["accuracy"]  # else the row could show the wrong one unnoticed
    row = f"| accuracy, {label} | {100 * dense:.2f}% | {100 * pruned:.2f}% | {100 * (pruned - dense):+.2f} pp |"
    assert row in section(md, "Summary").splitlines()
    return row


def test_summary_shows_accuracy_after_one_shot_pruning(magnitude):
    report, md = magnitude[1]
    assert report["after_pruning"] == {"stage": "one-shot", "metrics": report["one_shot_metrics"],
                                       "description": "after one-shot pruning, before fine-tuning"}
    after_pruning_row(report, md, "after one-shot pruning, before fine-tuning")


def test_summary_shows_accuracy_after_hard_pruning(tmp_path):
    report, md = saved(compress(EXAMPLE, method="slr", sparsity=0.97, epochs=1, retrain_epochs=1, output=tmp_path / "slr", **DIGITS))
    # SLR recalibrates the folded convs' statistics by default: reported beside the hard-pruned figure
    recalibrated = report["after_pruning"].get("recalibrated")
    assert 0.0 <= recalibrated["accuracy"] <= 1.0
    assert report["after_pruning"] == {"stage": "hard-pruned", "metrics": report["hard_pruned_metrics"],
                                       "description": "after hard pruning, before retraining", "recalibrated": recalibrated}
    after_pruning_row(report, md, "after hard pruning, before retraining")
