"""Lambda entry point of the exporter: one `exporter.run_export` to the lake the template names
(ANIMEDB_LAKE_TARGET), as the exporter role, with DuckDB sized for the function; or, with the
event {"task": "maintain"} (the template's daily schedule), all of the lake's maintenance
(`exporter.maintenance.maintain_target`), which each run otherwise does a share of.

One run at a time: the template reserves a concurrency of one where the account allows it, and
run_export's advisory lock holds always (a second run stops at once, and is logged as skipped);
maintenance has an advisory lock of its own, and a run leaves the lake to it while it holds it.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from animedb import db
from exporter import ExportBusy, ExportError, run_export
from exporter.duck import DuckConfig
from exporter.maintenance import maintain_target
from exporter.progress import Progress, TableResult
from lambda_handlers import rds, runtime

TARGET_VARIABLE = "ANIMEDB_LAKE_TARGET"
# Lambda's own: the function's memory in MB.
MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
# DuckDB's share of the function's memory; the rest is Python, libpq and the upload buffers.
DUCKDB_MEMORY_SHARE = 0.6
# Lambda gives a full vCPU per 1,769 MB, up to 6.
MB_PER_VCPU = 1769
MAX_VCPUS = 6

log = logging.getLogger(__name__)


def duck_config() -> DuckConfig:
    """DuckDB's memory limit, threads and spill folder for this function: the ANIMEDB_DUCKDB_*
    variables when set, else derived from the function's memory. DuckDB's home needs nothing
    here: exporter.duck points it at the temporary folder when HOME is unset or read-only, as
    on Lambda."""
    configured = DuckConfig.from_environment()
    memory_text = os.environ.get(MEMORY_VARIABLE, "")
    memory_mb = int(memory_text) if memory_text.isdigit() else 0
    memory_limit = configured.memory_limit
    if memory_limit is None and memory_mb:
        memory_limit = f"{int(memory_mb * DUCKDB_MEMORY_SHARE)}MB"
    threads = configured.threads
    if threads is None and memory_mb:
        threads = max(1, min(MAX_VCPUS, os.cpu_count() or 1, math.ceil(memory_mb / MB_PER_VCPU)))
    # DuckDB spills into the run's own staging folder under /tmp unless told otherwise: a run
    # killed by the timeout leaves it behind, and the next run removes it
    return DuckConfig(
        memory_limit=memory_limit, threads=threads, temp_directory=configured.temp_directory
    )


class _Log(Progress):
    """What the CLI draws as bars, as log lines."""

    def table_done(self, result: TableResult) -> None:
        if result.deferred:
            log.info("%s deferred: %s", result.table, result.deferred)
        elif result.rows:
            log.info("%s: %d rows in %.1f s", result.table, result.rows, result.seconds)

    def message(self, text: str) -> None:
        log.info(rds.redact(text))


TASKS = ("run", "maintain")


def handler(event: object, context: object) -> dict[str, Any]:
    """One export run, or with {"task": "maintain"} the lake's maintenance. The run's schedule
    sends {}; the summary (RunSummary.to_json, or what maintenance did) is the result."""
    task = runtime.event_fields(event, frozenset({"task"}), "exporter").get("task", "run")
    if task not in TASKS:
        raise runtime.fail(f"exporter: task {task!r} is not one of {', '.join(TASKS)}")
    target = os.environ.get(TARGET_VARIABLE)
    if not target:
        raise runtime.fail(f"exporter: {TARGET_VARIABLE} is not set: the template sets it")
    try:
        config = duck_config()  # a bad ANIMEDB_DUCKDB_* setting: one line, nothing recorded
    except ExportError as exc:
        raise runtime.fail(f"exporter: {exc}") from exc

    def work(settings: rds.RdsSettings) -> dict[str, Any]:
        try:
            if task == "maintain":
                done = maintain_target(target, settings, progress=_Log(), duck_config=config)
                return {"maintenance": done.to_json(), "database": settings.describe()}
            summary = run_export(target, settings, progress=_Log(), duck_config=config)
        except ExportBusy as exc:
            # the run (or maintenance) in progress does this work too: skipped, not failed
            log.info("exporter skipped: %s", exc)
            return {"skipped": str(exc), "database": settings.describe()}
        return {**summary.to_json(), "database": settings.describe()}

    return runtime.invoke(f"exporter {task}", db.EXPORTER_ROLE, work, (ExportError,))
