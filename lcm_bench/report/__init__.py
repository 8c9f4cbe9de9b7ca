"""Reports rebuilt from records alone: paper-style tables, figures, sample grids, Markdown and HTML."""

from lcm_bench.report.document import write_report

__all__ = ["write_report"]
