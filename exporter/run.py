"""One export run, all-or-nothing: the plain function the CLI and the Lambda handler call.

1. bounds for every table, then a pending run with its windows, committed;
2. each window through DuckDB to Parquet, at a key that depends only on run id and table;
3. the run's manifest, last;
4. watermarks advanced and the run marked committed, in one PostgreSQL transaction.
A crash anywhere leaves a pending run, which the next run resumes with the same windows (so a
retry overwrites files, never duplicates them); readers trust manifests only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from animedb import db
from exporter import duck, lake, protocol
from exporter.errors import ExportError
from exporter.tables import ExportedTable, load_tables

DEFAULT_SETTLE = dt.timedelta(seconds=1)
PAUSE_VARIABLE = "ANIMEDB_EXPORT_PAUSE_AT"
STEPS = ("after_pending", "during_files", "after_files", "after_manifest")


@dataclass
class TableResult:
    table: str
    load_type: str
    lo: str
    hi: str
    deferred: str | None = None
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class RunSummary:
    run_id: int
    target: str
    resumed: bool
    bound_time: str
    manifest: str
    seconds: float
    tables: list[TableResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.rows
        return data


class Progress:
    """What a run reports while it works; the CLI draws it, Lambda and --quiet ignore it."""

    wants_rows = False  # whether to watch a running COPY's row count (costs a connection)

    def table_started(self, table: str, estimated_rows: int | None) -> None: ...

    def rows_copied(self, table: str, rows: int) -> None: ...

    def table_done(self, result: TableResult) -> None: ...

    def message(self, text: str) -> None: ...


def _pause_if_asked(step: str) -> None:
    """Fault injection for the crash and fault tests: ANIMEDB_EXPORT_PAUSE_AT=<step> stops the
    run at that protocol step until it is killed; <step>:<seconds> pauses, then goes on."""
    asked, _, seconds = os.environ.get(PAUSE_VARIABLE, "").partition(":")
    if asked == step:
        print(f"paused at {step}", file=sys.stderr, flush=True)
        time.sleep(float(seconds) if seconds else 3600)


def _encode(value: int | dt.datetime) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _literal(value: int | dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
    return str(int(value))


def window_query(table: ExportedTable, window: protocol.Window, catalog: str = "pg") -> str:
    """The select DuckDB sends to PostgreSQL (filters pushed down to the cursor's index)."""
    cursor = f'"{table.cursor_column}"'
    if window.load_type == "id":
        condition = f"{cursor} > {_literal(window.lo)} and {cursor} <= {_literal(window.hi)}"
    else:
        condition = f"{cursor} >= {_literal(window.lo)} and {cursor} < {_literal(window.hi)}"
    return f"select * from {table.duckdb_name(catalog)} where {condition}"


class _CopyWatcher:
    """Rows a running COPY has sent, read from pg_stat_progress_copy by a side connection."""

    def __init__(self, settings: db.Settings, progress: Progress, table: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(settings, progress, table), daemon=True
        )

    def _watch(self, settings: db.Settings, progress: Progress, table: str) -> None:
        try:
            with protocol.connect(settings, "progress") as conn:
                while not self._stop.wait(0.5):
                    row = conn.execute(
                        "select sum(p.tuples_processed) from pg_stat_progress_copy p"
                        " join pg_stat_activity a on a.pid = p.pid"
                        " where a.application_name = %s",
                        (duck.READER_APPLICATION,),
                    ).fetchone()
                    if row and row[0] is not None:
                        progress.rows_copied(table, int(row[0]))
        except (ExportError, psycopg.Error):
            return  # progress is a courtesy; the export itself reports real failures

    def __enter__(self) -> _CopyWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _first_load(window: protocol.Window) -> bool:
    """A window that starts at the beginning of the table: all of it is read."""
    if isinstance(window.lo, dt.datetime):
        return window.lo <= protocol.EPOCH
    return window.lo == 0


def _estimate(
    conn: psycopg.Connection[TupleRow], table: ExportedTable, window: protocol.Window
) -> int | None:
    """Rows to expect, when cheap to know: the planner's estimate for a first full load."""
    if not _first_load(window):
        return None
    row = conn.execute(
        "select reltuples::bigint from pg_class where oid = %s::regclass", (table.name,)
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


def _export_table(
    con: Any,
    target: lake.Lake,
    run: protocol.PendingRun,
    table: ExportedTable,
    window: protocol.Window,
) -> tuple[int, dict[str, Any] | None]:
    """Export one window; (rows, manifest entry of its file or None when it held no rows)."""
    key = lake.data_key(table.folder, run.load_date, run.run_id)
    staged = target.staging_path(key)
    try:
        rows = duck.copy_to_parquet(
            con, window_query(table, window), staged, parallel_scan=_first_load(window)
        )
        if rows == 0:
            target.delete(key)  # a retry of this run may find a file an earlier try wrote
            return 0, None
        size, checksum = staged.stat().st_size, lake.sha256_of(staged)
        target.put_file(staged, key)
    finally:
        staged.unlink(missing_ok=True)
    return rows, {"path": key, "rows": rows, "bytes": size, "sha256": checksum}


def _start_or_resume(
    conn: psycopg.Connection[TupleRow],
    target: lake.Lake,
    tables: list[ExportedTable],
    settle: dt.timedelta,
    progress: Progress,
) -> protocol.PendingRun:
    run = protocol.pending_run(conn)
    if run is not None:
        if run.target != target.uri:
            raise ExportError(
                f"run {run.run_id} to {run.target} did not finish: run the exporter with "
                f"--target {run.target} to complete it, or `exporter abandon {run.run_id}`"
            )
        progress.message(f"resuming run {run.run_id} with its recorded windows")
        return run
    bounds = protocol.read_time_bound(conn, settle)
    protocol.read_id_bounds(conn, tables, bounds)
    if bounds.blocker is not None:
        b = bounds.blocker
        progress.message(
            f"bound held back to {b.xact_start:%H:%M:%S} by pid {b.pid}"
            f" ({b.application_name or 'no name'},"
            f" {b.state}) whose transaction is still open"
        )
    return protocol.record_pending_run(
        conn, target.uri, bounds, protocol.plan_windows(tables, bounds)
    )


def run_export(
    target: str,
    settings: db.Settings | None = None,
    *,
    settle: dt.timedelta = DEFAULT_SETTLE,
    progress: Progress | None = None,
    duck_config: duck.DuckConfig | None = None,
) -> RunSummary:
    """One export run to `target` (a folder or s3://bucket/prefix). Raises ExportError with one
    clear line on anything that stops it; the watermarks then have not moved."""
    started = time.monotonic()
    progress = progress or Progress()
    settings = db.resolve() if settings is None else settings
    destination = lake.open_lake(target)
    destination.check()
    conn = protocol.connect(settings)
    with conn:
        protocol.check_privileges(conn)
        protocol.acquire_lock(conn)
        tables = {t.name: t for t in load_tables(conn)}
        run = _start_or_resume(conn, destination, list(tables.values()), settle, progress)
        _pause_if_asked("after_pending")

        results: list[TableResult] = []
        entries: dict[str, dict[str, Any]] = {}
        rows: dict[str, int] = {}
        with duck.session(settings, duck_config) as con:
            for name, window in run.windows.items():
                table = tables.get(name)
                if table is None:
                    raise ExportError(f"run {run.run_id} names {name}, which is no longer exported")
                result = TableResult(
                    name, window.load_type, _encode(window.lo), _encode(window.hi), window.deferred
                )
                entry: dict[str, Any] = {
                    "load_type": table.load_type,
                    "key_column": table.key_column,
                    "cursor_column": table.cursor_column,
                    "window": window.to_json(),
                    "files": [],
                    "rows": 0,
                }
                if not window.empty:
                    progress.table_started(name, _estimate(conn, table, window))
                    clock = time.monotonic()
                    watcher = (
                        _CopyWatcher(settings, progress, name)
                        if progress.wants_rows
                        else contextlib.nullcontext()
                    )
                    with watcher:
                        count, file_entry = _export_table(con, destination, run, table, window)
                    result.rows, result.seconds = count, time.monotonic() - clock
                    if file_entry is not None:
                        entry["files"].append(file_entry)
                        result.files, result.bytes = 1, int(file_entry["bytes"])
                    entry["rows"] = count
                    _pause_if_asked("during_files")
                rows[name] = result.rows
                entries[name] = entry
                results.append(result)
                progress.table_done(result)
        _pause_if_asked("after_files")

        manifest = {
            "format": lake.MANIFEST_FORMAT,
            "run_id": run.run_id,
            "bound_time": run.bound_time.isoformat(),
            "started_at": run.started_at.isoformat(),
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
            "load_date": run.load_date.isoformat(),
            "tables": entries,
        }
        manifest_key = lake.manifest_key(run.run_id)
        destination.put_json(manifest_key, manifest)
        _pause_if_asked("after_manifest")
        protocol.commit_run(conn, run, rows, destination.reader_path(manifest_key))
    return RunSummary(
        run_id=run.run_id,
        target=destination.uri,
        resumed=run.resumed,
        bound_time=run.bound_time.isoformat(),
        manifest=destination.reader_path(manifest_key),
        seconds=time.monotonic() - started,
        tables=results,
    )
