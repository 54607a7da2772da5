"""OLMP's part of the report: the threshold search as a table and a figure."""

from __future__ import annotations

from collections.abc import Mapping

from ...reporting import formatting as fmt
from ...reporting.formatting import cell, fixed
from ...reporting.plots import integer_ticks, shorten

SEARCH_PLOT = "search.png"


def search_markdown(search: Mapping, has_plot: bool) -> list[str]:
    """The constraint, the per-layer result and one row per search call (report.md lines)."""
    layers = search.get("layers") or []
    if not layers:
        return []
    constraint = search.get("constraint") or {}
    lines = [f"Objective: fewest remaining {'multiply-adds' if search.get('objective') == 'flops' else 'weights and biases'} "
             f"subject to {cell(constraint.get('rule', '?'))} on {cell(constraint.get('data', '?'))}, relative to "
             f"{'the dense model' if constraint.get('baseline') == 'dense' else 'the net just before each search call'}.", ""]
    if has_plot:
        lines += [f"![Threshold search]({SEARCH_PLOT})", ""]
    lines += ["| layer | weight + bias | kept | kept % | c-rate | threshold | MACs | MACs left |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for layer in layers:
        lines.append(f"| `{cell(layer.get('name', '?'))}` | {fmt.count(layer.get('params'))} | {fmt.count(layer.get('kept'))} "
                     f"| {fmt.percent(layer.get('kept_fraction'), 2)} | {fixed(layer.get('c_rate'), '.3f')} | {fixed(layer.get('threshold'), '.4g')} "
                     f"| {fmt.count(layer.get('macs'))} | {fmt.count(layer.get('remaining_macs'))} |")
    lines.append(f"| total | {fmt.count(search.get('params'))} | {fmt.count(search.get('kept'))} "
                 f"| {fmt.percent(search.get('kept_fraction'), 2)} | | | {fmt.count(search.get('macs'))} "
                 f"| {fmt.count(search.get('remaining_macs'))} |")
    calls, metric = search.get("searches") or [], str(constraint.get("metric", ""))
    fractions = frozenset({metric}) if constraint.get("in_points") else frozenset()
    if calls:
        lines += ["", "| call | step | layers searched | cost before | cost after | metric before | metric after | feasible | evaluations | replaced | time |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        for call in calls:
            lines.append(
                f"| {call.get('call')} | {call.get('step')} | {len(call.get('selected') or [])} | {fmt.percent(call.get('cost_before'), 2)} "
                f"| {fmt.percent(call.get('cost_after'), 2)} | {fmt.metric_value(metric, call.get('metric_before'), fractions)} "
                f"| {fmt.metric_value(metric, call.get('metric_after'), fractions)} | {'yes' if call.get('feasible') else 'no'} "
                f"| {call.get('evaluations')} | {call.get('replacements')} | {fixed(call.get('seconds'), '.1f')} s |")
    return lines


def search_figure(search: Mapping):
    """OLMP's per-layer kept fraction (log scale) and c-rate after each search call, against the
    training step of the call. None without search calls."""
    from matplotlib.figure import Figure

    calls = [c for c in search.get("searches") or [] if isinstance(c, Mapping)]
    layers = [str(layer.get("name", "")) for layer in search.get("layers") or []]
    if not calls or not layers:
        return None
    steps = [c.get("step", i) for i, c in enumerate(calls)]
    figure = Figure(figsize=(10.0, 3.8), layout="constrained")
    kept_ax, rate_ax = figure.subplots(1, 2)
    for i, name in enumerate(layers):
        kept = [100.0 * c["kept_fractions"][i] for c in calls]
        rates = [c["c_after"][i] for c in calls]
        kept_ax.plot(steps, kept, marker="o", markersize=3, label=shorten(name))
        rate_ax.plot(steps, rates, marker="o", markersize=3, label=shorten(name))
    kept_ax.set_yscale("log")
    kept_ax.set_ylabel("kept (% of weight + bias)")
    rate_ax.set_ylabel("c-rate (threshold = mean + c * std of |w|)")
    for ax in (kept_ax, rate_ax):
        ax.set_xlabel("training step of the search call")
        integer_ticks(ax.xaxis)
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7)
    rate_ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(f"OLMP threshold search ({search.get('objective', 'params')} objective)", fontsize=10)
    return figure
