"""PNG figures for the report: per-layer sparsity and, when present, the optimisation trace.

Drawn with matplotlib's object API on an Agg canvas, so the caller's pyplot state and backend are
never touched and no display is needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from compressor.files import write_atomic
from compressor.reporting.formatting import BUILTIN_FRACTIONS, fraction_metrics, is_number, is_percent_metric, percent

SPARSITY_PLOT = "sparsity.png"
TRACE_PLOT = "trace.png"

PRUNED_COLOR = "#3b75af"
DENSE_COLOR = "#9e9e9e"
TARGET_COLOR = "#d62728"
MAX_NAMED_TICKS = 60  # beyond this many layers the x axis shows indices only
TICK_NAME_CHARS = 30


def is_left_dense(layer: Mapping) -> bool:
    """A layer the plan did not prune: no target (or a zero target); its note says why."""
    target = layer.get("target")
    return not is_number(target) or target <= 0


def write_plots(report: Mapping, out_dir: Path) -> list[Path]:
    """Write every figure the report has data for into ``out_dir``; returns the files written."""
    return [_save(figure, Path(out_dir) / name) for name, figure in report_figures(report).items()]


def report_figures(report: Mapping) -> dict:
    """File name -> matplotlib Figure, for every figure the report has data for (not yet drawn)."""
    figures = {
        SPARSITY_PLOT: sparsity_figure(report),
        TRACE_PLOT: trace_figure(report.get("trace") or [], fraction_metrics(report)),
    }
    return {name: figure for name, figure in figures.items() if figure is not None}


def sparsity_figure(report: Mapping):
    """Bars of achieved sparsity per layer in execution order, the plan's target as a red tick,
    left-dense layers shaded grey. None when the report has no layers."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layers = list(report.get("layers") or [])
    if not layers:
        return None
    n = len(layers)
    figure = Figure(figsize=(min(16.0, max(7.0, 2.5 + 0.3 * n)), 5.0), layout="constrained")
    ax = figure.add_subplot()
    for i, layer in enumerate(layers):
        achieved = 100.0 * float(layer.get("sparsity") or 0.0)
        if is_left_dense(layer):
            # a full-height shaded column, so a dense layer (0% bar) is still visible
            ax.axvspan(i - 0.45, i + 0.45, color=DENSE_COLOR, alpha=0.25, hatch="//", linewidth=0)
            ax.bar(i, achieved, width=0.8, color=DENSE_COLOR)
        else:
            ax.bar(i, achieved, width=0.8, color=PRUNED_COLOR)
            ax.hlines(100.0 * layer["target"], i - 0.42, i + 0.42, colors=TARGET_COLOR, linewidth=2.2, zorder=3)
    legend = [Patch(color=PRUNED_COLOR, label="achieved"), Line2D([], [], color=TARGET_COLOR, linewidth=2.2, label="target")]
    if any(is_left_dense(layer) for layer in layers):
        legend.append(Patch(facecolor=DENSE_COLOR, alpha=0.4, hatch="//", label="left dense (see the layer table)"))
    overall = report.get("sparsity")
    if is_number(overall):
        ax.axhline(100.0 * overall, color="black", linestyle="--", linewidth=1)
        legend.append(Line2D([], [], color="black", linestyle="--", linewidth=1, label=f"overall {percent(overall, 2)}"))
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("sparsity (% of weights that are zero)")
    ax.set_xlabel("layer, in execution order")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if n <= MAX_NAMED_TICKS:
        ax.set_xticks(range(n), [f"{i + 1} {shorten(str(layer.get('name', '')))}" for i, layer in enumerate(layers)],
                      rotation=90, fontsize=7)
    else:
        step = math.ceil(n / 40)
        ax.set_xticks(range(0, n, step), [str(i + 1) for i in range(0, n, step)], fontsize=7)
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    figure.suptitle(_sparsity_title(report), fontsize=10, wrap=True)  # a figure title is not clipped by the legend
    return figure


def trace_keys(trace: Sequence[Mapping]) -> list[str]:
    """The numeric per-epoch quantities, in first-seen order ("epoch" itself excluded)."""
    keys: list[str] = []
    for record in trace:
        keys += [k for k, v in record.items() if k != "epoch" and is_number(v) and k not in keys]
    return keys


def trace_figure(trace: Sequence[Mapping], fractions: frozenset[str] = BUILTIN_FRACTIONS):
    """One small plot per numeric key of the per-epoch records. With several training phases
    (e.g. ADMM then fine-tuning, each counting epochs from 1) the x axis counts epochs across
    phases and each phase gets its own colour. None when there is nothing numeric to plot."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    trace = [r for r in trace if isinstance(r, Mapping)]
    keys = trace_keys(trace)
    if not keys:
        return None
    phases = list(dict.fromkeys(r.get("phase") for r in trace))
    several = len(phases) > 1
    xs = list(range(1, len(trace) + 1)) if several else [r.get("epoch", i + 1) for i, r in enumerate(trace)]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False)
    colors = [PRUNED_COLOR, "#e377c2", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    for index, key in enumerate(keys):
        ax = axes[index // cols][index % cols]
        for p, phase in enumerate(phases):
            points = [(x, r[key]) for x, r in zip(xs, trace) if r.get("phase") == phase and is_number(r.get(key))]
            if points:
                ax.plot([x for x, _ in points], [y for _, y in points], marker="o" if len(trace) <= 30 else None,
                        markersize=3, color=colors[p % len(colors)], label=str(phase))
        integer_ticks(ax.xaxis)
        if all(is_percent_metric(key, r[key], fractions) for r in trace if is_number(r.get(key))):
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch, across phases" if several else "epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if several and index == 0:
            ax.legend(fontsize=7, frameon=False)
    for index in range(len(keys), rows * cols):
        axes[index // cols][index % cols].set_visible(False)
    figure.suptitle("optimisation trace", fontsize=10)
    return figure


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only, for axes that count epochs or steps. ``min_n_ticks=1``: with
    the default (2) a single point's narrow view holds one integer, and matplotlib then falls back
    to fractional ticks (0.95, 1.00, 1.05 for a one-epoch run)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _sparsity_title(report: Mapping) -> str:
    parts = [str(report[k]) for k in ("method", "pattern") if report.get(k)]
    if report.get("scope"):
        parts.append(f"{report['scope']} scope")
    title = ", ".join(parts) or "per-layer sparsity"
    overall, target = report.get("sparsity"), report.get("target_sparsity")
    if is_number(overall):
        title += f": overall sparsity {percent(overall, 2)}"
        if is_number(target):
            title += f" (target {percent(target)})"
    return title


def shorten(name: str) -> str:
    if len(name) <= TICK_NAME_CHARS:
        return name
    head = 8  # keep both ends: exporters put the distinguishing part anywhere
    return name[:head] + "…" + name[-(TICK_NAME_CHARS - head - 1):]


def save_figure(figure, path: Path) -> Path | None:
    """Save a Figure as PNG atomically; None (nothing written) when there is no figure."""
    return None if figure is None else _save(figure, path)


def _save(figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return write_atomic(path, buffer.getvalue())
