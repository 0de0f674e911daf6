"""Exporter: exact incremental copies of PostgreSQL tables into a lake of Iceberg tables, driven
by the watermark table etl.watermarks; `run_export` is the plain function behind one run, and
`exporter.maintenance.maintain_target` the one behind `animedb export maintain`."""

from exporter import _pyiceberg_import  # noqa: F401  (first: see its text)
from exporter.errors import ExportBusy, ExportError
from exporter.progress import Progress, RunSummary
from exporter.run import run_export

__all__ = ["ExportBusy", "ExportError", "Progress", "RunSummary", "run_export"]
