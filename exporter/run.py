"""One export run, all-or-nothing: the plain function the CLI and the Lambda handler call, as
the protocol's steps (docs/design.md).

1. bounds for every table, then a pending run with its windows, committed in PostgreSQL
   (exporter/protocol.py); a table whose DDL changed values without moving their cursor gets
   the whole table as its window (exporter/ddl.py); before that, the tables the run touches
   (new rows, deletes, changed columns, lake tables still missing) have their schemas
   planned, so a column name they cannot take stops the run before it exists;
2. each touched table's window in Parquet files, chunk by chunk (exporter/chunks.py);
3. each touched table's snapshots, exactly once, tagged run-<id> (exporter/commits.py); a
   table the run does not touch gets no commit;
4. the target's watermarks advanced and the run marked committed, in one transaction.
Then the run's share of lake maintenance (exporter/maintenance.py), within its budget.
A crash anywhere leaves a pending run (or, in maintenance, nothing that matters), which the
next run resumes with the same windows and chunks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import duckdb
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from pyiceberg.table import Table

from animedb import db
from exporter import chunks, duck, maintenance, protocol, schema
from exporter.catalog import (
    Lake,
    claim,
    ensure_pair,
    load_pair,
    open_lake,
    pyiceberg_configuration,
)
from exporter.chunks import ChunkWriter, TableRun
from exporter.commits import Committer
from exporter.errors import ExportError, first_line, one_line
from exporter.layout import CHANGES_SUFFIX
from exporter.maintenance import MaintenanceSettings
from exporter.pauses import pause_if_asked
from exporter.progress import Progress, RunSummary
from exporter.storage import Staging, open_storage, storage_errors
from exporter.tables import TOMBSTONES, ExportedTable, load_tables

DEFAULT_SETTLE = dt.timedelta(seconds=1)


def run_export(
    target: str,
    settings: db.Settings | None = None,
    *,
    settle: dt.timedelta = DEFAULT_SETTLE,
    progress: Progress | None = None,
    duck_config: duck.DuckConfig | None = None,
    catalog: str | None = None,
    namespace: str | None = None,
    maintenance_settings: MaintenanceSettings | None = None,
) -> RunSummary:
    """One export run to `target` (a folder or s3://bucket/prefix) and its Iceberg catalog.
    Raises ExportError with one clear line on anything that stops it; the watermarks then
    have not moved, and the lake's tables show no part of the run."""
    progress = progress or Progress()
    settings = db.resolve() if settings is None else settings
    upkeep = maintenance_settings or MaintenanceSettings.from_environment()
    # every setting checked before anything is recorded or created: a bad one blocks nothing
    storage = open_storage(target)
    config = duck_config or duck.DuckConfig.from_environment()
    chunks.chunk_rows()
    pyiceberg_configuration()
    if storage.is_s3:
        storage.client()  # the S3 endpoint's setting (no request yet)
    with one_line("the run"), protocol.connect(settings) as conn:
        protocol.acquire_lock(conn)  # before the target is touched: a refused run leaves nothing
        with storage_errors(storage.uri), Staging() as staging:
            if staging.removed:
                progress.message(f"removed {staging.removed} staging folder(s) of killed runs")
            with progress.step("setup"):
                storage.check()
                lake = open_lake(storage, catalog, namespace)
            try:
                return _run(conn, lake, settings, settle, progress, config, upkeep, staging)
            except duckdb.Error as exc:
                raise ExportError(duck.explain(exc, storage.uri)) from exc


def _run(
    conn: psycopg.Connection[TupleRow],
    lake: Lake,
    settings: db.Settings,
    settle: dt.timedelta,
    progress: Progress,
    config: duck.DuckConfig,
    upkeep: MaintenanceSettings,
    staging: Staging,
) -> RunSummary:
    """The protocol's steps in order, each crash point between two of them."""
    started = time.monotonic()
    if config.temp_directory is None and staging.path is not None:
        # DuckDB's spill files go with the staging folder, swept if the run is killed
        config = dataclasses.replace(config, temp_directory=str(staging.file("duckdb-spill")))
    with progress.step("setup"):
        tables = _claim(conn, lake)
    with duck.session(settings, config, s3=lake.storage.s3_access()) as con:
        with progress.step("bounds"):
            run, parts, plans = _start_or_resume(conn, con, lake, tables, settle, progress)
        pause_if_asked("after_pending")
        with progress.step("schemas"):
            for t in parts:
                if t.table.name in plans:
                    existing, evolution = plans[t.table.name]
                    t.pair = ensure_pair(
                        lake,
                        t.table.lake_name,
                        t.table.key_column,
                        evolution,
                        existing,
                        upkeep.properties(),
                        run.run_id,
                    )
        writer = ChunkWriter(conn, con, lake.storage, staging, run, settings, progress)
        writer.write_tables(parts)
        pause_if_asked("after_files")
        committer = Committer(
            con,
            writer,
            run,
            progress,
            retention_ms=upkeep.retention_ms,
            properties=upkeep.properties(),
            expire=upkeep.enabled,
        )
        committer.commit_tables(parts)
        pause_if_asked("after_commits")
        with progress.step("watermarks"):
            exported = {t.table.name: t.files.rows + t.files.deletes for t in parts}
            # a table whose resync waits for its window is compared again by the next run
            touched = {
                t.table.name: t.table.signature
                for t in parts
                if t.pair is not None and not (t.window.deferred and t.table.source_change().resync)
            }
            protocol.commit_run(conn, run, exported, touched)
        summary = RunSummary(
            run_id=run.run_id,
            target=lake.uri,
            catalog=lake.catalog_name,
            namespace=lake.namespace,
            resumed=run.resumed,
            bound_time=run.bound_time.isoformat(),
            seconds=0.0,
            tables=[t.result for t in parts],
        )
        changed = [t.pair for t in parts if t.pair is not None and t.committed]
        try:
            summary.maintenance = maintenance.after_run(
                lake, conn, con, staging, changed, upkeep, progress
            )
            if summary.maintenance is not None and committer.expired is not None:
                # what the run's own commits expired on the way
                summary.maintenance.expired_snapshots += len(committer.expired.snapshots)
                summary.maintenance.expired_tags += len(committer.expired.tags)
        except Exception as exc:  # the run stands, whatever failed after it: one line
            raise ExportError(
                f"run {run.run_id} is committed; then the lake's maintenance failed: "
                f"{first_line(exc)} (the next run tries it again)"
            ) from exc
    summary.seconds = time.monotonic() - started
    return summary


def _claim(conn: psycopg.Connection[TupleRow], lake: Lake) -> dict[str, ExportedTable]:
    """A lake of this database, and what it exports."""
    claim(lake, *protocol.source_identity(conn))
    return {t.name: t for t in load_tables(conn, lake.key)}


_Plan = tuple[tuple[Table | None, Table | None], schema.Evolution]


def _start_or_resume(
    conn: psycopg.Connection[TupleRow],
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    tables: dict[str, ExportedTable],
    settle: dt.timedelta,
    progress: Progress,
) -> tuple[protocol.PendingRun, list[TableRun], dict[str, _Plan]]:
    """Step 1: the pending run (resumed, or recorded with new windows), each table's share of
    it, and for each table it touches, its lake tables as they are and what their schemas
    need, checked before a new run exists."""
    run = protocol.pending_run(conn)
    bounds = None
    if run is not None:
        if run.target != lake.key:
            raise ExportError(
                f"run {run.run_id} to {run.target} did not finish: run the exporter with "
                f"that target to complete it, or `animedb export abandon {run.run_id}`"
            )
        progress.message(f"resuming run {run.run_id} with its recorded windows")
        windows = run.windows
        for name in windows:
            if name not in tables:
                raise ExportError(f"run {run.run_id} names {name}, which is no longer exported")
    else:
        bounds = protocol.read_time_bound(conn, settle)
        protocol.read_id_bounds(conn, list(tables.values()), bounds)
        if bounds.blocker is not None:
            b = bounds.blocker
            progress.message(
                f"bound held back to {b.xact_start:%H:%M:%S} by pid {b.pid}"
                f" ({b.application_name or 'no name'},"
                f" {b.state}) whose transaction is still open"
            )
        resync = {}
        for t in tables.values():
            why = t.source_change().resync
            if why is not None:
                resync[t.name] = why
                progress.message(f"{t.name}: every row read again: {why}")
        windows = protocol.plan_windows(list(tables.values()), bounds, resync)
    parts = [TableRun(tables[name], window) for name, window in windows.items()]
    plans = {}
    for name in sorted(_touched(conn, lake, parts, run)):
        table = tables[name]
        existing = load_pair(lake, table.lake_name)
        if table.signature == table.recorded_signature and None not in existing:
            # the columns the target's lake tables last followed: nothing to evolve
            plans[name] = (existing, schema.Evolution(table.name, {}))
        else:
            plans[name] = (existing, _evolution(con, table))
    for name, ((current, changes), _) in plans.items():
        # a table to create must have a free folder inside the lake, before the run exists
        lake_name = tables[name].lake_name
        if current is None:
            lake.new_table_location(lake_name)
        if changes is None:
            lake.new_table_location(lake_name + CHANGES_SUFFIX)
    if bounds is not None:
        run = protocol.record_pending_run(conn, lake.key, bounds, windows)
    assert run is not None
    return run, parts, plans


def _touched(
    conn: psycopg.Connection[TupleRow],
    lake: Lake,
    parts: list[TableRun],
    run: protocol.PendingRun | None,
) -> set[str]:
    """The tables the run changes in the lake: rows in their window, deletes in the tombstone
    window, columns changed since the target last committed them, lake tables still missing,
    or (a resumed run) chunks already written."""
    names = lake.table_names()
    touched = {
        t.table.name
        for t in parts
        if t.table.signature != t.table.recorded_signature
        or t.table.lake_name not in names
        or t.table.lake_name + CHANGES_SUFFIX not in names
    }
    with_rows = [
        sql.SQL("select {} where exists (select from {} where ").format(
            sql.Literal(t.table.name), t.table.identifier()
        )
        + sql.SQL(t.window.condition(t.table.cursor_column))  # type: ignore[arg-type,unused-ignore]
        + sql.SQL(")")
        for t in parts
        if not t.window.empty and t.table.name not in touched
    ]
    if with_rows:
        touched.update(str(r[0]) for r in conn.execute(sql.SQL(" union all ").join(with_rows)))
    tombstones = next((t.window for t in parts if t.table.name == TOMBSTONES), None)
    if tombstones is not None and not tombstones.empty:
        rows = conn.execute(
            sql.SQL("select distinct table_name from etl.tombstones where ")
            + sql.SQL(tombstones.condition("tombstone_id"))  # type: ignore[arg-type,unused-ignore]
        )
        touched.update(str(r[0]) for r in rows)
    if run is not None:
        rows = conn.execute(
            "select distinct table_name from etl.export_chunks where run_id = %s and rows > 0",
            (run.run_id,),
        )
        touched.update(str(r[0]) for r in rows)
    return touched & {t.table.name for t in parts}


def _evolution(con: duckdb.DuckDBPyConnection, table: ExportedTable) -> schema.Evolution:
    """What the table's lake tables need for its source's columns and the renames since the
    target last committed it (raises for a column they cannot hold)."""
    columns = {
        name: schema.iceberg_type(kind)
        for name, kind in duck.source_columns(con, table.duckdb_name("pg")).items()
    }
    return schema.plan_evolution(table.name, columns, table.source_change().renames)
