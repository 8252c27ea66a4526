"""Reports: polars aggregation of the store, paired statistics, tables, plots and one HTML file.

``build_report(outs, ...)`` reads the stores and computes every table; ``write_report(report, dest,
formats)`` writes them. ``pipeline.commands.report`` is the CLI around the two.
"""

from pipeline.report.build import Report, build_report
from pipeline.report.output import FORMATS, write_report

__all__ = ["FORMATS", "Report", "build_report", "write_report"]
