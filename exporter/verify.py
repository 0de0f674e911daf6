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

from animedb import db
from exporter import duck, iceberg, lake, protocol
from exporter.errors import ExportError, first_line
from exporter.protocol import APPLICATION
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


def check_files(
    con: duckdb.DuckDBPyConnection, target: lake.Lake, table: Any, files: iceberg.LiveFiles
) -> int:
    """Every file the table's current snapshot references (`files`, its live files): present,
    of the recorded size and row count and, where the exporter recorded one, SHA-256. Raises
    naming the first bad one."""
    recorded = iceberg.checksums(table)
    name = ".".join(table.name())
    for f in files.data + files.deletes:
        where = target.reader_path(f.file_path)
        kind = "data" if f in files.data else "delete"
        size = target.size_of(f.file_path)
        if size is None:
            raise ExportError(f"{kind} file {where} of table {name} is missing")
        if size != f.file_size_in_bytes:
            raise ExportError(
                f"{kind} file {where} of table {name} has {size} bytes, not the "
                f"{f.file_size_in_bytes} its metadata records: it was changed after the export"
            )
        digest = recorded.get(f.file_path)
        if digest and not target.has_file(f.file_path, size, digest):
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
    (the change log's columns), the newest version of each key, by run and then by cursor,
    and no key that was ever deleted (keys are never reused)."""
    return (
        f"select * from {source} where not {iceberg.DELETED_COLUMN}"
        f' and "{key}" not in (select "{key}" from {source} where {iceberg.DELETED_COLUMN})'
        f' qualify row_number() over (partition by "{key}" order by'
        f' {iceberg.RUN_COLUMN} desc, "{cursor}" desc) = 1'
    )


def _check_table(
    con: duckdb.DuckDBPyConnection,
    target: lake.Lake,
    table: ExportedTable,
    pair: iceberg.Pair | None,
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
        f" union select key_value from pg.etl.tombstones where table_name = '{table.name}'"
        f" and tombstone_id > {tombstone_watermark}"
    )
    if pair is None:
        con.execute("create or replace temp table lake_rows (k bigint, h ubigint)")
        con.execute("create or replace temp table log_rows (k bigint, h ubigint)")
    else:
        current = iceberg.live_files(pair.current)
        check.files = check_files(con, target, pair.current, current)
        changes = iceberg.live_files(pair.changes)
        check.files += check_files(con, target, pair.changes, changes)
        iceberg.current_rows(
            con, target, pair.current, f"{key}::bigint as k, {row_hash} as h", "lake_rows", current
        )
        iceberg.current_rows(con, target, pair.changes, "*", "log_versions", changes)
        con.execute(
            "create or replace temp table log_rows as select"
            f" {key}::bigint as k, {row_hash} as h from"
            f" ({latest_from_log('log_versions', table.key_column, table.cursor_column)})"
        )
        check.duplicates = _scalar(
            con,
            f"select count(*) from (select {key}, {iceberg.RUN_COLUMN}, {iceberg.DELETED_COLUMN}"
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
    destination = lake.open_lake(target)
    with lake.storage_errors(destination.uri):
        return _verify(destination, settings, catalog, namespace)


def _verify(
    destination: lake.Lake, settings: db.Settings, catalog: str | None, namespace: str | None
) -> list[TableCheck]:
    house = iceberg.open_house(destination, catalog, namespace)
    pairs = {p.source: p for p in iceberg.pairs(house)}
    conn = protocol.connect(settings, "verify")
    with conn:
        tables = load_tables(conn, house.key)
    by_name = {t.name: t for t in tables}
    tombstone_watermark = by_name[TOMBSTONES].max_id if TOMBSTONES in by_name else 0

    with duck.session(
        settings, application_name=f"{APPLICATION}-verify", s3=destination.s3_access()
    ) as con:
        try:
            return [
                _check_table(con, destination, t, pairs.get(t.name), tombstone_watermark)
                for t in tables
            ]
        except duckdb.Error as exc:
            raise ExportError(
                f"verify could not read the lake or the database: {first_line(exc)}"
            ) from exc
