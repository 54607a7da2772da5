"""``report.md``: the human-readable report, rendered from the pipeline's report dict.

Every section reads only the keys it needs and is left out when they are missing, so an early
failure or a future method with fewer figures still gets a report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from compressor.reporting import formatting as fmt
from compressor.files import write_text_atomic
from compressor.reporting.plots import SPARSITY_PLOT, TRACE_PLOT, is_left_dense, trace_keys, write_plots

REPORT_MD = "report.md"
MAX_TRACE_ROWS = 50  # longer traces are shown as the plot only
SAME_SIZE_TOLERANCE = 0.02  # file sizes this close count as "not smaller on disk"


def write_markdown_report(report: Mapping, out_dir: Path) -> Path:
    """Write ``report.md`` and its PNG figures into ``out_dir``; returns the path of ``report.md``."""
    out_dir = Path(out_dir)
    plots = {p.name for p in write_plots(report, out_dir)}
    return write_text_atomic(out_dir / REPORT_MD, render_markdown(report, plots))


def render_markdown(report: Mapping, plots: set[str] = frozenset()) -> str:
    """The Markdown text; ``plots`` names the PNG files present beside it (linked relatively)."""
    sections = [
        _title(report),
        _summary(report),
        _latency(report),
        _parity(report),
        _slim(report),
        _per_output(report),
        _protection(report.get("protection") or {}),
        _nm_plan(report.get("nm_plan")),
        _channel_plan((report.get("plan") or {}).get("channels"), report.get("latency_ms")),
        _engine_layers(report.get("engine")),
        _layers(report, SPARSITY_PLOT in plots),
        *_method_sections(report),
        _trace(report, TRACE_PLOT in plots),
        _data_and_training(report),
        _notes(report),
        _timings(report),
        _outputs(report, plots),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _title(report: Mapping) -> str:
    method, pattern = report.get("method", "?"), report.get("pattern", "?")
    lines = [f"# Compression report: {method}, {pattern}"]
    if report.get("model"):
        lines += ["", f"Model: `{report['model']}`"]
    facts = []
    if fmt.is_number(report.get("sparsity")):
        facts.append(f"achieved sparsity **{fmt.percent(report['sparsity'], 2)}** of prunable weights")
    if fmt.is_number(report.get("target_sparsity")):
        facts.append(f"target {fmt.percent(report['target_sparsity'])}")
    if fmt.is_number(report.get("target_flops")):
        facts.append(f"target {fmt.percent(report['target_flops'])} of multiply-adds")
    if report.get("scope"):
        facts.append(f"{report['scope']} scope")
    if fmt.is_number(report.get("compression_ratio")):
        facts.append(f"compression ratio **{fmt.ratio(report['compression_ratio'])}** (parameters / nonzero)")
    if facts:
        lines.append("")
        lines.append(f"Method **{method}**, pattern **{pattern}**: " + ", ".join(facts) + ".")
    return "\n".join(lines)


def _summary(report: Mapping) -> str:
    fractions = fmt.fraction_metrics(report)
    rows: list[tuple[str, str, str, str]] = []
    metrics = report.get("metrics") or {}
    dense_m, comp_m = metrics.get("dense") or {}, metrics.get("compressed") or {}
    for name in fmt.shared_metric_names(metrics):
        d, c = dense_m.get(name), comp_m.get(name)
        rows.append((name, fmt.metric_value(name, d, fractions), fmt.metric_value(name, c, fractions), fmt.metric_delta(name, d, c, fractions)))
    pruned = fmt.after_pruning(report)
    if pruned is not None:
        label = fmt.after_pruning_label(pruned)
        for name, value in pruned["metrics"].items():
            if fmt.is_number(value):
                d = dense_m.get(name)
                rows.append((f"{name}, {label}", fmt.metric_value(name, d, fractions), fmt.metric_value(name, value, fractions),
                             fmt.metric_delta(name, d, value, fractions)))
        for name, value in (pruned.get("recalibrated") or {}).items():
            if fmt.is_number(value):
                d = dense_m.get(name)
                rows.append((f"{name}, {fmt.RECALIBRATED_LABEL}", fmt.metric_value(name, d, fractions),
                             fmt.metric_value(name, value, fractions), fmt.metric_delta(name, d, value, fractions)))

    params = report.get("params") or {}
    if params:
        total, nonzero = params.get("total"), params.get("nonzero")
        dense_nonzero = params.get("dense_nonzero")  # optional: zeros already in the input model
        dense_total = params.get("dense_total", total)  # differs when channels were removed from the graph
        rows.append(("parameters, total", fmt.count(dense_total), fmt.count(total),
                     _percent_change(dense_total, total) if dense_total != total else ""))
        rows.append(("parameters, nonzero", fmt.count(dense_nonzero), fmt.count(nonzero), _percent_change(dense_nonzero or total, nonzero)))
        if "prunable" in params:
            rows.append(("prunable weights, nonzero", fmt.count(params.get("dense_prunable_nonzero")),
                         f"{fmt.count(params.get('prunable_nonzero'))} of {fmt.count(params['prunable'])}", ""))
    if fmt.is_number(report.get("compression_ratio")):
        dense_ratio = _ratio_or_none(params.get("dense_total", params.get("total")), params.get("dense_nonzero"))
        rows.append(("compression ratio (total / nonzero)", fmt.ratio(dense_ratio), fmt.ratio(report["compression_ratio"]), ""))

    sizes = report.get("file_bytes") or {}
    if sizes:
        d, c = sizes.get("dense"), sizes.get("compressed")
        rows.append(("ONNX file size", fmt.file_size(d), fmt.file_size(c), _percent_change(d, c)))

    latency = report.get("latency_ms") or {}
    dense_l, comp_l = latency.get("dense") or {}, latency.get("compressed") or {}
    if dense_l or comp_l:
        where = _device_kind(latency)
        where = f" ({where})" if where else ""
        rows.append((f"latency p50{where}", fmt.milliseconds(dense_l.get("p50_ms")), fmt.milliseconds(comp_l.get("p50_ms")),
                     fmt.latency_verdict(latency)))
        rows.append((f"latency p90{where}", fmt.milliseconds(dense_l.get("p90_ms")), fmt.milliseconds(comp_l.get("p90_ms")), ""))
    if not rows:
        return ""

    lines = ["## Summary", "", "| | dense | compressed | change |", "|---|---:|---:|---:|"]
    lines += [f"| {fmt.cell(a)} | {b} | {c} | {d} |" for a, b, c, d in rows]
    below = []
    if metrics.get("split") or metrics.get("kind"):
        kind = {"task": "task metrics against labels", "fidelity": "fidelity to the dense model"}.get(
            metrics.get("kind"), metrics.get("kind"))
        below.append("Metrics: " + ", ".join(str(x) for x in (kind, metrics.get("split")) if x) + ".")
    if _not_smaller_on_disk(report):
        below.append("The compressed file is not smaller on disk: it stores pruned weights as explicit zeros in the "
                     "dense layout (what TensorRT reads). The saving is in nonzero parameters, above.")
    if below:
        lines += [""] + below
    return "\n".join(lines)


def _latency(report: Mapping) -> str:
    latency = report.get("latency_ms") or {}
    stats = [(label, latency.get(label)) for label in ("dense", "compressed") if isinstance(latency.get(label), Mapping)]
    if not stats:
        return ""
    first = stats[0][1]
    runtime = f"{latency['runtime']} " if latency.get("runtime") else ""
    clock = latency.get("clock") or first.get("clock") or "host wall time"
    context = [f"{clock} of one {runtime}run"]
    if latency.get("runtime_options"):
        context.append("options " + ", ".join(f"{k}={v}" for k, v in latency["runtime_options"].items()))
    if first.get("batch") is not None:
        context.append(f"batch {first['batch']}")
    context.append("dense and compressed timed interleaved (the first rotating each round), after warm-up")
    lines = ["## Latency", ""]
    if latency.get("device"):
        lines.append(f"{latency['device']}: " + ", ".join(context) + ".")
    else:
        lines.append(", ".join(context).capitalize() + ".")
    lines += ["", "| model | p50 | p90 | p99 | mean | min | max | runs |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, s in stats:
        cells = [fmt.milliseconds(s.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms")]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {s.get('runs', '—')} |")
    verdict = fmt.latency_verdict(latency)
    if verdict:
        lines += ["", f"Dense p50 / compressed p50: **{verdict}**."]
    by_batch = [b for b in latency.get("by_batch") or [] if isinstance(b, Mapping)]
    if len(by_batch) > 1:
        lines += ["", "| batch | dense p50 | compressed p50 | dense p50 / compressed p50 | same-file control |",
                  "|---:|---:|---:|---|---:|"]
        for b in by_batch:
            control = (b.get("control") or {}).get("ratio")
            lines.append(f"| {b.get('batch')} | {fmt.milliseconds((b.get('dense') or {}).get('p50_ms'))} | "
                         f"{fmt.milliseconds((b.get('compressed') or {}).get('p50_ms'))} | {fmt.cell(fmt.latency_verdict(b))} | "
                         f"{f'{control:.3f}' if fmt.is_number(control) else '—'} |")
    if verdict:
        protocol = _protocol_text(latency.get("protocol"), latency.get("margin"), latency.get("control"))
        if protocol:
            lines += ["", protocol]
    return "\n".join(lines)


def _protocol_text(protocol, margin, control=None) -> str:
    """How the figures were taken, so that a reader can judge the verdict."""
    if not isinstance(protocol, Mapping):
        return ""
    parts = [f"Warm-up: at least {protocol.get('warmup_runs')} rounds and {protocol.get('warmup_seconds')} s; "
             f"then {protocol.get('rounds')} timed rounds (budget {protocol.get('seconds')} s, "
             f"{protocol.get('min_runs')} to {protocol.get('max_runs')} rounds), the model that runs first "
             f"{protocol.get('order', 'rotated each round')}; {protocol.get('threads') or 'default'} threads."]
    boot = protocol.get("bootstrap") or {}
    if boot:
        how = "paired by round" if boot.get("paired") else "each model resampled independently"
        parts.append(f"Interval: percentile bootstrap of the ratio of medians, {how}, {boot.get('resamples')} "
                     f"resamples, seed {boot.get('seed')}.")
    if isinstance(control, Mapping) and fmt.is_number(control.get("ratio")):
        interval = control.get("interval")
        span = f", interval {interval[0]:.3f}–{interval[1]:.3f}" if interval else ""
        parts.append(f"Same-file control ({control.get('what', 'the dense file timed again')}): ratio "
                     f"{control['ratio']:.3f}{span}; the margin below is at least what it reached.")
    if fmt.is_number(margin):
        parts.append(f"A ratio is called faster or slower only when the interval excludes 1 and it differs from 1 "
                     f"by at least {margin * 100:.3g}%.")
    return " ".join(parts)


def _parity(report: Mapping) -> str:
    parity = report.get("export_parity")
    if isinstance(parity, Mapping):  # a ParityResult.to_dict()
        parity = parity.get("max_relative_error")
    if not fmt.is_number(parity):
        return ""
    inputs = report.get("export_parity_inputs") or "inputs"  # reports from before the key: nothing known
    return ("## Export parity\n\nThe exported file in onnxruntime against the compressed PyTorch module, on the same "
            f"{inputs}: max relative error **{fmt.scientific(parity)}** (max |difference| / max |output|).")


def _slim(report: Mapping) -> str:
    """--pattern channel: what the physical removal did to the graph, and its own parity check."""
    slim = report.get("slim")
    if not isinstance(slim, Mapping):
        return ""
    parity = (slim.get("parity") or {}).get("max_relative_error")
    refused = sum(len((g or {}).get("refused") or {}) for g in (slim.get("groups") or {}).values())
    lines = ["## Channels removed from the graph", "",
             f"- {slim.get('channels_removed')} channels removed in {len(slim.get('groups') or {})} groups; parameters "
             f"{fmt.count(slim.get('params_before'))} -> {fmt.count(slim.get('params_after'))}",
             f"- Constants of removed channels folded into the next layer's bias: {slim.get('constants_folded')}; "
             f"negligible ones dropped: {slim.get('constants_dropped')}; channels kept because they could not go: {refused}",
             f"- The slim file against the masked one in onnxruntime: max relative error **{fmt.scientific(parity)}**"]
    lines += [f"- {fmt.cell(note)}" for note in slim.get("notes") or []]
    return "\n".join(lines)


def _per_output(report: Mapping) -> str:
    """Fidelity per output and its worst channel: a collapse in one head cannot hide in an average."""
    metrics = report.get("metrics") or {}
    compressed = metrics.get("compressed") or {}
    outputs = [k.split("/", 1)[1] for k in compressed if k.startswith("relative_l2/")]
    if not outputs:
        return ""
    lines = ["## Fidelity per output", "", "Against the dense model, on the evaluation samples.", "",
             "| output | relative L2 | cosine | worst channel rel. L2 |", "|---|---:|---:|---:|"]
    for name in outputs:
        lines.append(f"| `{fmt.cell(name)}` | {fmt.fixed(compressed.get('relative_l2/' + name), '.4f')} | "
                     f"{fmt.fixed(compressed.get('cosine/' + name), '.4f')} | {fmt.fixed(compressed.get('worst_channel_relative_l2/' + name), '.4f')} |")
    return "\n".join(lines)


def _protection(protection: Mapping) -> str:
    """Which layers were kept dense because they must not be pruned, and how that was found."""
    fixed, sensitivity = protection.get("fixed") or {}, protection.get("sensitivity")
    budget_kept = protection.get("budget_kept") or {}
    if not fixed and not sensitivity:
        return ""
    lines = ["## Protected layers", ""]
    lines.append(f"- Fixed (not learned) weights kept dense: {len(fixed)}" + (": " + ", ".join(f"`{n}`" for n in list(fixed)[:8]) if fixed else "")
                 + (" …" if len(fixed) > 8 else ""))
    if sensitivity:
        flagged = sensitivity.get("flagged") or []
        lines.append(f"- Sensitivity pass: {len(sensitivity.get('layers') or [])} layers pruned one at a time on "
                     f"{sensitivity.get('samples')} samples in {fmt.fixed(sensitivity.get('seconds'), '.1f')} s; {len(flagged)} break an output "
                     f"channel group alone (relative L2 above {sensitivity.get('max_relative_l2')})"
                     + (" and stay dense" if protection.get("enforced") else " (reported only: training follows)"))
    if protection.get("budget"):
        lines.append(f"- Error budget {protection['budget']:g} (one-shot: nothing trains afterwards): {len(budget_kept)} more layers "
                     "kept dense so the predicted joint error of the pruned ones fits it")
    lines.append("- Each layer's reason is in the layer table below.")
    return "\n".join(lines)


def _nm_plan(nm_plan: Mapping | None) -> str:
    """--plan auto: how many layers the layout allows and how many are expected to run sparse."""
    if not nm_plan:
        return ""
    t = nm_plan.get("thresholds") or {}
    eligible, planned = nm_plan.get("eligible") or [], nm_plan.get("planned") or []
    total = len(eligible) + len(set(nm_plan.get("skipped") or {}) - set(eligible))
    lines = ["## Sparse-kernel plan (--plan auto)", "",
             f"- Pattern {nm_plan.get('pattern')}: {len(eligible)} of {total} prunable layers eligible (layout rule), "
             f"{len(planned)} planned (expected to run sparse on TensorRT)",
             f"- Thresholds: at least {t.get('min_channels')} input and output channels"
             + (f", multiples of {t['channel_multiple']}" if t.get("channel_multiple") else "")
             + f", at least {t.get('min_params')} weights per layer",
             "- Each skipped layer's reason is in the layer table below."]
    return "\n".join(lines)


def _channel_plan(channels: Mapping | None, latency: Mapping | None = None) -> str:
    """--pattern channel: the coupled channel groups pruned, with their counts, and why the others stay;
    with a latency search, its predicted latency next to the one the measure stage found."""
    if not channels:
        return ""
    groups = channels.get("groups") or []
    macs = channels.get("macs") or {}
    lines = ["## Channel groups (--pattern channel)", ""]
    if fmt.is_number(macs.get("dense")) and macs.get("dense"):
        lines.append(f"- Multiply-adds per sample: {macs['dense'] / 1e6:.2f} M dense -> {macs['kept'] / 1e6:.2f} M kept "
                     f"({macs['kept'] / macs['dense']:.1%})")
    search = channels.get("search") or {}
    table = search.get("latency_table") or {}
    measured = ((latency or {}).get("compressed") or {}).get("p50_ms")
    dense_measured = ((latency or {}).get("dense") or {}).get("p50_ms")
    if table and fmt.is_number(search.get("cost")):
        line = (f"- Latency search on {table.get('runtime')}: predicted p50 {fmt.milliseconds(search['cost'])} "
                f"(dense {fmt.milliseconds(table.get('dense_ms'))} when the table was built)")
        if fmt.is_number(measured) and (latency or {}).get("batch") in (1, None):
            line += (f"; measured at the end {fmt.milliseconds(measured)} (dense {fmt.milliseconds(dense_measured)}), "
                     f"predicted/measured {search['cost'] / measured:.2f}")
        lines.append(line)
    kept_whole, blocked = channels.get("kept_whole") or {}, channels.get("blocked") or {}
    rounded = f", kept counts multiples of {channels['round_to']}" if channels.get("round_to") else ""
    lines.append(f"- {len(groups)} groups pruned, {len(kept_whole)} kept whole, {len(blocked)} blocked by the graph"
                 + rounded)
    reasons: dict[str, int] = {}
    for why in blocked.values():
        for reason in why[:1]:
            reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda item: -item[1])[:5]:
        lines.append(f"  - blocked ({n}): {fmt.cell(reason)}")
    for reason in sorted(set(kept_whole.values()))[:5]:
        lines.append(f"  - kept whole: {fmt.cell(reason)}")
    if groups:
        lines += ["", "| group | producers | channels | kept | weights holding them |", "|---:|---|---:|---:|---|"]
        for g in groups:
            lines.append(f"| {g.get('id')} | {fmt.cell(g.get('label'))} | {g.get('channels')} | {g.get('kept')} | "
                         f"{fmt.cell(', '.join(g.get('weights') or []))} |")
    return "\n".join(lines)


def _engine_layers(engine: Mapping | None) -> str:
    """The engine stage's verdict per weight: which TensorRT layer holds it and whether it ran sparse."""
    rows = (engine or {}).get("layers") or []
    if not rows:
        return ""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    planned = [row for row in rows if row.get("planned")]
    lines = [f"## Sparse kernels in the TensorRT engine ({engine.get('file')}, TensorRT {engine.get('tensorrt')})", "",
             "- " + ", ".join(f"{n} {status}" for status, n in counts.items())
             + (f"; of the {len(planned)} planned layers {sum(r['status'] == 'picked sparse' for r in planned)} "
                "picked sparse" if planned else ""),
             "", "| weight | planned | ONNX node | TensorRT layer | status |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {_cell(row['weight'])} | {'yes' if row.get('planned') else ''} | {_cell(row.get('node') or '-')} "
                     f"| {_cell(row.get('trt_layer') or '-')} | {row['status']} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    escaped = str(text).replace("|", "\\|")  # a pipe would end the table cell
    return f"`{escaped}`"


def _layers(report: Mapping, has_plot: bool) -> str:
    layers = report.get("layers") or []
    if not layers:
        return ""
    lines = ["## Layers", ""]
    if has_plot:
        lines += [f"![Per-layer sparsity]({SPARSITY_PLOT})", ""]
    lines += ["| # | layer | op | shape | params | target | achieved | note |", "|---:|---|---|---|---:|---:|---:|---|"]
    for i, layer in enumerate(layers, 1):
        shape = "×".join(str(d) for d in layer.get("shape") or []) or "—"
        target = "dense" if is_left_dense(layer) else fmt.percent(layer["target"])
        lines.append(
            f"| {i} | `{fmt.cell(layer.get('name', '?'))}` | {fmt.cell(layer.get('op', ''))} | {shape} | {fmt.count(layer.get('params'))} "
            f"| {target} | {fmt.percent(layer.get('sparsity'), 2)} | {fmt.cell(layer.get('note') or '')} |"
        )
    return "\n".join(lines)


def _method_sections(report: Mapping) -> list[str]:
    """The method's own sections (OLMP's threshold search), already rendered by the method."""
    return [f"## {s['title']}\n\n{s['markdown']}".rstrip() for s in report.get("sections") or []
            if isinstance(s, Mapping) and s.get("title")]


def _trace(report: Mapping, has_plot: bool) -> str:
    trace = [r for r in report.get("trace") or [] if isinstance(r, Mapping)]
    if not trace:
        return ""
    lines = ["## Optimisation trace", ""]
    if has_plot:
        lines += [f"![Optimisation trace]({TRACE_PLOT})", ""]
    keys = trace_keys(trace)
    if keys and len(trace) <= MAX_TRACE_ROWS:
        phases = any("phase" in r for r in trace)
        head = (["phase"] if phases else []) + ["epoch"] + keys
        lines += ["| " + " | ".join(fmt.cell(k) for k in head) + " |", "|" + ("---|" if phases else "") + "---:|" * (len(keys) + 1)]
        for i, record in enumerate(trace, 1):
            cells = ([fmt.cell(record.get("phase", ""))] if phases else []) + [str(record.get("epoch", i))]
            cells += [fmt.metric_value(k, record.get(k), fmt.fraction_metrics(report)) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines).rstrip()


def _data_and_training(report: Mapping) -> str:
    data, training = report.get("data") or {}, report.get("training") or {}
    if not data and not training:
        return ""
    lines = ["## Data and training", ""]
    if data:
        text = str(data.get("description", "")).strip()
        counts = [f"{fmt.count(data[k])} {k}" for k in ("train", "val") if fmt.is_number(data.get(k))]
        if "labelled" in data:
            counts.append("labelled" if data["labelled"] else "unlabelled")
        lines.append("- Data: " + (text or "—") + (f" ({', '.join(counts)})" if counts else ""))
    if training:
        lines.append("- Training: " + ", ".join(f"{k} {_plain(v)}" for k, v in training.items()))
    return "\n".join(lines)


def _notes(report: Mapping) -> str:
    notes = [str(n) for n in report.get("notes") or [] if str(n).strip()]
    return "## Notes\n\n" + "\n".join(f"- {n}" for n in notes) if notes else ""


def _timings(report: Mapping) -> str:
    timings = {k: v for k, v in (report.get("timings") or {}).items() if fmt.is_number(v)}
    if not timings:
        return ""
    lines = ["## Timings", "", "| stage | time |", "|---|---:|"]
    lines += [f"| {fmt.cell(k.removesuffix('_s'))} | {fmt.seconds(v)} |" for k, v in timings.items()]
    return "\n".join(lines)


def _outputs(report: Mapping, plots: set[str]) -> str:
    labels = {"onnx": "compressed model", "report_json": "report (JSON)", "report_md": "report (Markdown)", "plots": "plots"}
    lines = []
    listed: set[str] = set()
    for key, value in (report.get("outputs") or {}).items():
        paths = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        if paths:
            lines.append(f"- {labels.get(key, key)}: " + ", ".join(f"`{p}`" for p in paths))
            listed.update(Path(p).name for p in paths)
    extra = sorted(p for p in plots if p not in listed)
    if extra:
        lines.append("- figures beside this report: " + ", ".join(f"`{p}`" for p in extra))
    return "## Outputs\n\n" + "\n".join(lines) if lines else ""


def _device_kind(latency: Mapping) -> str:
    """'CPU' from a device label such as 'CPU (Intel Xeon ..., onnxruntime 1.31.1, 4 threads)'; else the runtime's name."""
    device = str(latency.get("device") or "").split(" (", 1)[0].strip()
    return device or str(latency.get("runtime") or "")


def _percent_change(before, after) -> str:
    if not (fmt.is_number(before) and fmt.is_number(after)) or not before:
        return ""
    return f"{100.0 * (after - before) / before:+.1f}%"


def _ratio_or_none(total, nonzero):
    return total / nonzero if fmt.is_number(total) and fmt.is_number(nonzero) and nonzero else None


def _not_smaller_on_disk(report: Mapping) -> bool:
    sizes = report.get("file_bytes") or {}
    d, c, ratio = sizes.get("dense"), sizes.get("compressed"), report.get("compression_ratio")
    if not (fmt.is_number(d) and fmt.is_number(c) and fmt.is_number(ratio)) or not d:
        return False
    return ratio > 1.05 and c >= d * (1 - SAME_SIZE_TOLERANCE)


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)
