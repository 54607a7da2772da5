"""The human-readable report: ``report.md`` with PNG figures, and the console summary."""

from compressor.reporting.console import console_summary
from compressor.reporting.markdown import REPORT_MD, render_markdown, write_markdown_report
from compressor.reporting.plots import SPARSITY_PLOT, TRACE_PLOT, write_plots

__all__ = [
    "REPORT_MD",
    "SPARSITY_PLOT",
    "TRACE_PLOT",
    "console_summary",
    "render_markdown",
    "write_markdown_report",
    "write_plots",
]
