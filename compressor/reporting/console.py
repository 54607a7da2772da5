"""The few lines the `compress run` command prints when it finishes (ASCII, fixed-width labels)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from compressor.reporting import formatting as fmt

LABEL_WIDTH = 15  # wider labels (a long metric name) widen the column


def console_summary(report: Mapping) -> str:
    """Method, sparsity, compression, the main metric, latency, parity and the files written."""
    rows: list[tuple[str, str]] = []
    sparsity = []
    if fmt.is_number(report.get("target_sparsity")):
        sparsity.append(f"target {fmt.percent(report['target_sparsity'])}")
    if fmt.is_number(report.get("target_flops")):
        macs = ((report.get("plan") or {}).get("channels") or {}).get("macs") or {}
        kept = f" ({fmt.percent(macs['kept'] / macs['dense'])} kept)" if macs.get("dense") else ""
        sparsity.append(f"target {fmt.percent(report['target_flops'])} of multiply-adds{kept}")
    if fmt.is_number(report.get("sparsity")):
        sparsity.append(f"achieved {fmt.percent(report['sparsity'], 2)} of prunable weights")
    if sparsity:
        rows.append(("sparsity", ", ".join(sparsity)))

    params = report.get("params") or {}
    slim = report.get("slim")
    if slim and fmt.is_number(params.get("dense_nonzero")) and fmt.is_number(params.get("total")):
        rows.append(("parameters", f"{fmt.short_count(params['dense_nonzero'])} -> {fmt.short_count(params['total'])} "
                                   f"({fmt.ratio(report.get('compression_ratio'), 'x')} smaller), "
                                   f"{slim.get('channels_removed')} channels removed from the graph"))
    elif fmt.is_number(params.get("total")) and fmt.is_number(params.get("nonzero")):
        text = f"{fmt.short_count(params['total'])} total, {fmt.short_count(params['nonzero'])} nonzero"
        if fmt.is_number(report.get("compression_ratio")):
            text += f" ({fmt.ratio(report['compression_ratio'], 'x')} compression)"
        rows.append(("parameters", text))

    metrics = report.get("metrics") or {}
    fractions = fmt.fraction_metrics(report)
    name = fmt.main_metric(metrics)
    if name:
        d, c = metrics["dense"][name], metrics["compressed"][name]
        text = f"{fmt.metric_value(name, d, fractions)} -> {fmt.metric_value(name, c, fractions)} ({fmt.metric_delta(name, d, c, fractions)})"
        if metrics.get("split"):
            text += f", {metrics['split']}"
        rows.append((name, text))
        pruned = fmt.after_pruning(report)
        value = pruned["metrics"].get(name) if pruned else None
        if fmt.is_number(value):  # what retraining started from: the cost of pruning itself
            rows.append(("", f"{fmt.metric_value(name, value, fractions)} {fmt.after_pruning_label(pruned)} "
                             f"({fmt.metric_delta(name, d, value, fractions)})"))
        recalibrated = (pruned.get("recalibrated") or {}).get(name) if pruned else None
        if fmt.is_number(recalibrated):
            rows.append(("", f"{fmt.metric_value(name, recalibrated, fractions)} {fmt.RECALIBRATED_LABEL} "
                             f"({fmt.metric_delta(name, d, recalibrated, fractions)})"))

    latency = report.get("latency_ms") or {}
    dense_p50 = (latency.get("dense") or {}).get("p50_ms")
    comp_p50 = (latency.get("compressed") or {}).get("p50_ms")
    if fmt.is_number(dense_p50) and fmt.is_number(comp_p50):
        text = f"{fmt.milliseconds(dense_p50)} -> {fmt.milliseconds(comp_p50)}"
        verdict = fmt.latency_verdict(latency, sign="x", dash="-")
        if verdict:
            text += f", {verdict}"
        batch = latency.get("batch")
        rows.append(("latency p50" + (f" (batch {batch})" if batch is not None and batch != 1 else ""), text))
        for more in (latency.get("by_batch") or [])[1:]:
            line = f"{fmt.milliseconds((more.get('dense') or {}).get('p50_ms'))} -> {fmt.milliseconds((more.get('compressed') or {}).get('p50_ms'))}"
            words = fmt.latency_verdict(more, sign="x", dash="-")
            rows.append((f"  batch {more.get('batch')}", f"{line}, {words}" if words else line))
        if latency.get("device"):
            rows.append(("", str(latency["device"]) + (f", {latency['clock']}" if latency.get("clock") else "")))

    sizes = report.get("file_bytes") or {}
    if fmt.is_number(sizes.get("dense")) and fmt.is_number(sizes.get("compressed")):
        rows.append(("file size", f"{fmt.file_size(sizes['dense'])} -> {fmt.file_size(sizes['compressed'])}"))

    parity = report.get("export_parity")
    if isinstance(parity, Mapping):
        parity = parity.get("max_relative_error")
    if fmt.is_number(parity):
        rows.append(("export parity", f"{fmt.scientific(parity)} max relative error (onnxruntime vs module)"))

    rows += _output_rows(report.get("outputs") or {})

    head = ", ".join(str(report[k]) for k in ("method", "pattern") if report.get(k)) or "compression"
    if report.get("scope"):
        head += f", {report['scope']} scope"
    if report.get("model"):
        head += f": {Path(str(report['model'])).name}"
    width = max([LABEL_WIDTH] + [len(label) + 2 for label, _ in rows])
    lines = [head] + [f"  {label:<{width}}{value}".rstrip() for label, value in rows]
    return "\n".join(lines).replace("—", "-")


def _output_rows(outputs: Mapping) -> list[tuple[str, str]]:
    """The model's full path, then the report's, with the files beside it named briefly."""
    rows = []
    if outputs.get("onnx"):
        rows.append(("model", str(outputs["onnx"])))
    others = [str(outputs[k]) for k in ("report_json",) if outputs.get(k)]
    plots = outputs.get("plots") or []
    others += [str(p) for p in (plots if isinstance(plots, (list, tuple)) else [plots])]
    main = outputs.get("report_md") or (others.pop(0) if others else None)
    if main:
        folder = Path(str(main)).parent
        names = [Path(p).name if Path(p).parent == folder else p for p in others if p != str(main)]
        rows.append(("report", str(main) + (f" (+ {', '.join(names)})" if names else "")))
    return rows
