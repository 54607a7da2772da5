"""Number formatting, and readings of the report dict, shared by the Markdown report and the console summary."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..objectives import ClassificationObjective, DistillationObjective
from ..runtimes.verdict import FASTER, MIN_SAMPLES, TOO_FEW, VERDICTS


def _builtin_fractions() -> frozenset[str]:
    specs = {**ClassificationObjective().metric_specs(), **DistillationObjective(classifier=True).metric_specs()}
    return frozenset(name for name, spec in specs.items() if spec.unit == "fraction")


# Reports written before metric specs were recorded: the built-in objectives' specs apply.
BUILTIN_FRACTIONS = _builtin_fractions()
# report["after_pruning"]["stage"] -> how the summaries name the moment its metrics were taken
AFTER_PRUNING_LABELS = {"hard-pruned": "after hard pruning, before retraining",
                        "one-shot": "after one-shot pruning, before fine-tuning"}
# the keys methods wrote before "after_pruning" (SLR/ADMM, magnitude), and the stage each means
LEGACY_AFTER_PRUNING_KEYS = (("hard_pruned_metrics", "hard-pruned"), ("one_shot_metrics", "one-shot"))


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fraction_metrics(report: Mapping | None) -> frozenset[str]:
    """Names of the metrics the task declared as fractions (shown as percentages): from the
    report's metric specs (report["metrics"]["specs"])."""
    specs = ((report or {}).get("metrics") or {}).get("specs")
    if not isinstance(specs, Mapping):
        return BUILTIN_FRACTIONS
    return frozenset(name for name, spec in specs.items() if isinstance(spec, Mapping) and spec.get("unit") == "fraction")


def is_percent_metric(name: str, value, fractions: frozenset[str] = BUILTIN_FRACTIONS) -> bool:
    """A fraction metric: declared so, per output ("accuracy/logits"), or a trace column derived
    from one ("val_accuracy", "hard_prune_top1_agreement")."""
    if not (is_number(value) and 0.0 <= value <= 1.0):
        return False
    base = name.split("/", 1)[0]
    return base in fractions or any(base.endswith("_" + f) for f in fractions)


def percent(value, digits: int = 1) -> str:
    return "—" if not is_number(value) else f"{100.0 * value:.{digits}f}%"


def metric_value(name: str, value, fractions: frozenset[str] = BUILTIN_FRACTIONS) -> str:
    if not is_number(value):
        return "—"
    if is_percent_metric(name, value, fractions):
        return percent(value, 2)
    return _general(value)


def metric_delta(name: str, dense, compressed, fractions: frozenset[str] = BUILTIN_FRACTIONS) -> str:
    """Compressed minus dense: percentage points for percentage metrics, else a signed number."""
    if not (is_number(dense) and is_number(compressed)):
        return ""
    if is_percent_metric(name, dense, fractions) and is_percent_metric(name, compressed, fractions):
        return f"{100.0 * (compressed - dense):+.2f} pp"
    return _general(compressed - dense, signed=True)


def main_metric(metrics: Mapping | None) -> str | None:
    """The metric the summaries lead with: the task's primary metric when the report names it,
    else the first fraction metric, else the first one present in both dense and compressed."""
    if not metrics:
        return None
    dense, compressed = metrics.get("dense") or {}, metrics.get("compressed") or {}
    shared = [k for k, v in dense.items() if is_number(v) and is_number(compressed.get(k))]
    if metrics.get("primary") in shared:
        return metrics["primary"]
    fractions = fraction_metrics({"metrics": metrics})
    return next((k for k in shared if k in fractions), shared[0] if shared else None)


def shared_metric_names(metrics: Mapping | None) -> list[str]:
    """Metric names in the dense model's order, then any only the compressed model has."""
    if not metrics:
        return []
    dense, compressed = metrics.get("dense") or {}, metrics.get("compressed") or {}
    names = [k for k, v in dense.items() if is_number(v) or is_number(compressed.get(k))]
    return names + [k for k, v in compressed.items() if k not in dense and is_number(v)]


# report["after_pruning"]["recalibrated"]: the same moment after BatchNorm recalibration (--recalibrate-bn)
RECALIBRATED_LABEL = "after pruning and BatchNorm recalibration, before retraining"


def after_pruning(report: Mapping) -> dict | None:
    """``{"stage", "metrics"}``: the metrics right after pruning, before any retraining, from
    ``report["after_pruning"]`` or else the legacy keys; None when the report has neither."""
    value = report.get("after_pruning")
    if isinstance(value, Mapping) and isinstance(value.get("metrics"), Mapping):
        return dict(value)
    for key, stage in LEGACY_AFTER_PRUNING_KEYS:
        if isinstance(report.get(key), Mapping):
            return {"stage": stage, "metrics": report[key]}
    return None


def after_pruning_label(pruned: Mapping) -> str:
    """The method's own words for the moment (MetricsAfterPruning.description), else by stage."""
    stage = pruned.get("stage")
    return (pruned.get("description") or AFTER_PRUNING_LABELS.get(stage)
            or (f"after pruning ({stage})" if stage else "after pruning"))


def count(value) -> str:
    return f"{value:,}" if is_number(value) else "—"


def short_count(value) -> str:
    """11689512 -> 11.69M; for the narrow console table."""
    if not is_number(value):
        return "—"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def file_size(num_bytes) -> str:
    if not is_number(num_bytes):
        return "—"
    size = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def milliseconds(value) -> str:
    if not is_number(value):
        return "—"
    return f"{value:.3f} ms" if value < 10 else f"{value:.2f} ms"


def ratio(value, sign: str = "×") -> str:
    if not is_number(value):
        return "—"
    return "inf" if math.isinf(value) else f"{value:.2f}{sign}"


def scientific(value) -> str:
    return f"{value:.2e}" if is_number(value) else "—"


def seconds(value) -> str:
    return f"{value:.2f} s" if is_number(value) else "—"


def _general(value, signed: bool = False) -> str:
    """Four significant digits (0.05, 0.1234, 1.2e-05, 2.345e+04)."""
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def fixed(value, spec: str) -> str:
    return format(value, spec) if is_number(value) else "—"


def cell(text) -> str:
    """Markdown-table-safe: a pipe would end the cell, a newline the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def latency_verdict(latency: Mapping, sign: str = "×", dash: str = "–") -> str:
    """The ratio of medians in words, never a speed-up unless its interval clears 1 (issue 11):
    '1.37× faster (95% interval 1.20–1.55×)', 'no measurable difference (ratio 1.02×, 95% interval
    0.91–1.14×)'; '' without a ratio."""
    ratio_value = latency.get("speedup")
    if not is_number(ratio_value):
        return ""
    words, interval = latency.get("verdict"), latency.get("speedup_interval")
    shown = ratio(ratio_value, sign)
    if words == TOO_FEW or (words in VERDICTS and not interval):
        runs = (latency.get("dense") or {}).get("runs")
        return f"no verdict (ratio {shown}, {runs} runs; a verdict needs {MIN_SAMPLES})"
    if words not in VERDICTS:  # reports from before verdicts: a bare ratio is not a claim
        return f"ratio {shown}, no interval recorded"
    confidence = latency.get("confidence")
    level = f"{confidence * 100:g}%" if is_number(confidence) else "confidence"
    span = f"{level} interval {interval[0]:.2f}{dash}{interval[1]:.2f}{sign}"
    if words == FASTER:
        return f"{shown} faster ({span})"
    return f"{words} (ratio {shown}, {span})"
