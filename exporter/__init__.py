"""Exporter: exact incremental copies of PostgreSQL tables into a Parquet lake (DuckDB), driven
by the watermark table etl.watermarks; `run_export` is the plain function behind one run."""

from exporter.errors import ExportBusy, ExportError
from exporter.run import RunSummary, run_export

__all__ = ["ExportBusy", "ExportError", "RunSummary", "run_export"]
