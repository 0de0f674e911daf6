"""`verify`: compare PostgreSQL with the lake, row by row through a hash of every column, twice
per table: with its current-state Iceberg table, and with the latest state rebuilt from its
change log. Every data and delete file the tables reference is checked first: there, of the
size, row count and SHA-256 the table and the run recorded; a file or metadata that is not
names itself in one line.

The comparison is made as of the target's watermarks, so it is exact while the database keeps
changing: rows changed or deleted since the last export (cursor past the watermark, or a
tombstone not yet exported, both read after the rows themselves) are counted as pending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import psycopg
from psycopg.rows import TupleRow
from pyiceberg.table import Table

from animedb import db
from exporter import catalog, duck, layout, live, protocol
from exporter.errors import ExportError, first_line, one_line
from exporter.protocol import APPLICATION
from exporter.storage import Storage, open_storage, storage_errors
from exporter.tables import TOMBSTONES, ExportedTable, load_tables


@dataclass
class TableCheck:
    table: str
    compared: int = 0  # PostgreSQL rows inside the watermark
    lake_rows: int = 0  # rows of the current-state table
    pending: int = 0  # keys changed or deleted since the last export
    missing: int = 0  # in PostgreSQL, not in the current state
    extra: int = 0  # in the current state, not in PostgreSQL
    changed: int = 0  # in both, different values
    duplicates: int = 0  # a key twice in the current state, or a version twice in the log
    log_differs: int = 0  # keys where the state rebuilt from the change log differs
    files: int = 0  # data and delete files checked

    @property
    def ok(self) -> bool:
        return not (
            self.missing or self.extra or self.changed or self.duplicates or self.log_differs
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def recorded_checksums(conn: psycopg.Connection[TupleRow], locations: list[str]) -> dict[str, str]:
    """The SHA-256 the exporter recorded for each of these files it wrote: a run's chunks in
    etl.export_chunks (looked up by the runs their folders name), everything else (position
    deletes, rewrites) in etl.lake_files. Locations are parameters, never SQL."""
    runs = sorted({r for r in map(layout.run_of_location, locations) if r is not None})
    rows = conn.execute(
        "select f.value->>'location', f.value->>'sha256' from etl.export_chunks c"
        " cross join lateral jsonb_each(c.files) as f"
        " where c.run_id = any(%s) and f.value->>'location' = any(%s)"
        " union all"
        " select location, sha256 from etl.lake_files where location = any(%s)",
        (runs, locations, locations),
    ).fetchall()
    return {str(location): str(digest) for location, digest in rows}


def check_files(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    table: Table,
    files: live.LiveFiles,
    recorded: dict[str, str],
) -> int:
    """Every file the table's current snapshot references (`files`, its live files): present,
    of the recorded size and row count and, where the exporter recorded one (`recorded`), of
    that SHA-256. Raises naming the first bad one."""
    name = catalog.table_name(table)
    for f in files.data + files.deletes:
        where = storage.reader_path(f.file_path)
        kind = "data" if f in files.data else "delete"
        size = storage.size_of(f.file_path)
        if size is None:
            raise ExportError(f"{kind} file {where} of table {name} is missing")
        if size != f.file_size_in_bytes:
            raise ExportError(
                f"{kind} file {where} of table {name} has {size} bytes, not the "
                f"{f.file_size_in_bytes} its metadata records: it was changed after the export"
            )
        digest = recorded.get(f.file_path)
        if digest and not storage.has_file(f.file_path, size, digest):
            raise ExportError(
                f"{kind} file {where} of table {name} does not have the SHA-256 its run "
                "recorded: it was changed after the export"
            )
        try:
            rows = duck.parquet_rows(con, where)
        except duckdb.Error as exc:
            raise ExportError(f"{kind} file {where} of table {name} is not Parquet: {exc}") from exc
        if rows != f.record_count:
            raise ExportError(
                f"{kind} file {where} of table {name} has {rows} rows, not the "
                f"{f.record_count} its metadata records"
            )
    return len(files.data) + len(files.deletes)


def latest_from_log(source: str, key: str, cursor: str) -> str:
    """The one statement of the latest state: from a relation of row versions and deletes
    (the change log's columns), each key's newest change, by run and then by cursor, unless it
    is a delete. A run records one change per key, its newest version or its delete; a run of
    an earlier version may have recorded both for a key deleted and inserted again, and then
    the version is the newer (it was read after the delete committed)."""
    return (
        f"select * exclude (_animedb_newest) from (select *, row_number() over (partition by"
        f' "{key}" order by {layout.RUN_COLUMN} desc, {layout.DELETED_COLUMN} asc,'
        f' "{cursor}" desc) as _animedb_newest from {source}) where _animedb_newest = 1'
        f" and not {layout.DELETED_COLUMN}"
    )


def _check_table(
    con: duckdb.DuckDBPyConnection,
    conn: psycopg.Connection[TupleRow],
    storage: Storage,
    table: ExportedTable,
    pair: catalog.Pair | None,
    tombstone_watermark: int,
) -> TableCheck:
    check = TableCheck(table.name)
    key = f'"{table.key_column}"'
    row_hash = "hash(" + ", ".join(f'cast("{c}" as varchar)' for c in table.columns) + ")"
    if table.load_type == "id":
        inside = protocol.cursor_range(table.cursor_column, "id", hi=table.max_id)
        beyond = protocol.cursor_range(table.cursor_column, "id", lo=table.max_id)
    else:
        inside = protocol.cursor_range(table.cursor_column, "modified", hi=table.max_modified)
        beyond = protocol.cursor_range(table.cursor_column, "modified", lo=table.max_modified)
    source = table.duckdb_name("pg")
    con.execute(
        f"create or replace temp table pg_rows as select {key}::bigint as k, {row_hash} as h"
        f" from {source} where {inside}"
    )
    # read after the rows: what changed meanwhile shows up here and is left out of the comparison
    con.execute(
        f"create or replace temp table pending as select {key}::bigint as k from {source}"
        f" where {beyond}"
        " union select key_value from pg.etl.tombstones"
        f" where table_name = {duck.quote(table.name)} and tombstone_id > {tombstone_watermark}"
    )
    if pair is None:
        con.execute("create or replace temp table lake_rows (k bigint, h ubigint)")
        con.execute("create or replace temp table log_rows (k bigint, h ubigint)")
    else:
        current = live.live_files(pair.current)
        changes = live.live_files(pair.changes)
        recorded = recorded_checksums(conn, [f.file_path for f in current.all + changes.all])
        check.files = check_files(con, storage, pair.current, current, recorded)
        check.files += check_files(con, storage, pair.changes, changes, recorded)
        live.current_rows(
            con, storage, pair.current, f"{key}::bigint as k, {row_hash} as h", "lake_rows", current
        )
        live.current_rows(con, storage, pair.changes, "*", "log_versions", changes)
        con.execute(
            "create or replace temp table log_rows as select"
            f" {key}::bigint as k, {row_hash} as h from"
            f" ({latest_from_log('log_versions', table.key_column, table.cursor_column)})"
        )
        check.duplicates = _scalar(
            con,
            f"select count(*) from (select {key}, {layout.RUN_COLUMN}, {layout.DELETED_COLUMN}"
            " from log_versions group by all having count(*) > 1)",
        )
    check.duplicates += _scalar(
        con, "select count(*) from (select k from lake_rows group by k having count(*) > 1)"
    )
    settled = "not in (select k from pending)"
    check.compared = _scalar(con, f"select count(*) from pg_rows where k {settled}")
    check.lake_rows = _scalar(con, "select count(*) from lake_rows")
    check.pending = _scalar(con, "select count(*) from pending")
    check.missing = _scalar(
        con,
        f"select count(*) from pg_rows p where p.k {settled}"
        " and not exists (select 1 from lake_rows l where l.k = p.k)",
    )
    check.extra = _scalar(
        con,
        f"select count(*) from lake_rows l where l.k {settled}"
        " and not exists (select 1 from pg_rows p where p.k = l.k)",
    )
    check.changed = _scalar(
        con,
        f"select count(*) from pg_rows p join lake_rows l on l.k = p.k where p.k {settled}"
        " and p.h <> l.h",
    )
    check.log_differs = _scalar(
        con,
        "select count(*) from (select k, h from pg_rows where k "
        f"{settled} except select k, h from log_rows where k {settled}) union all "
        f"select count(*) from (select k, h from log_rows where k {settled}"
        f" except select k, h from pg_rows where k {settled})",
    )
    return check


def verify(
    target: str,
    settings: db.Settings | None = None,
    *,
    catalog: str | None = None,
    namespace: str | None = None,
) -> list[TableCheck]:
    """Compare the lake at `target` with PostgreSQL; one TableCheck per exported table."""
    settings = db.resolve() if settings is None else settings
    storage = open_storage(target)
    with one_line("verify"), storage_errors(storage.uri):
        return _verify(storage, settings, catalog, namespace)


def _verify(
    storage: Storage, settings: db.Settings, catalog_name: str | None, namespace: str | None
) -> list[TableCheck]:
    lake = catalog.open_lake(storage, catalog_name, namespace)
    pairs = {p.source: p for p in catalog.pairs(lake)}
    with protocol.connect(settings, "verify") as conn:
        tables = load_tables(conn, lake.key)
        by_name = {t.name: t for t in tables}
        tombstone_watermark = by_name[TOMBSTONES].max_id if TOMBSTONES in by_name else 0
        with duck.session(
            settings, application_name=f"{APPLICATION}-verify", s3=storage.s3_access()
        ) as con:
            try:
                return [
                    _check_table(con, conn, storage, t, pairs.get(t.name), tombstone_watermark)
                    for t in tables
                ]
            except duckdb.Error as exc:
                raise ExportError(
                    f"verify could not read the lake or the database: {first_line(exc)}"
                ) from exc
