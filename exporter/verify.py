"""`verify`: rebuild the latest state of every table from the lake (the latest version of each key
in files that committed manifests list, minus tombstones) and compare it with PostgreSQL, row by
row, through a hash of every column.

The comparison is made as of the watermarks, so it is exact while the database keeps changing:
rows changed or deleted since the last export (cursor past the watermark, or a tombstone not yet
exported, both read after the rows themselves) are counted as pending, not compared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from animedb import db
from exporter import duck, lake, protocol
from exporter.errors import ExportError
from exporter.protocol import APPLICATION
from exporter.tables import ExportedTable, load_tables

TOMBSTONES = "etl.tombstones"


@dataclass
class TableCheck:
    table: str
    compared: int = 0  # PostgreSQL rows inside the watermark
    lake_rows: int = 0  # keys alive in the lake
    pending: int = 0  # keys changed or deleted since the last export
    missing: int = 0  # in PostgreSQL, not in the lake
    extra: int = 0  # in the lake, not in PostgreSQL
    changed: int = 0  # in both, different values
    duplicates: int = 0  # one row version in two files

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed or self.duplicates)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _files(manifests: list[dict[str, Any]], table: str) -> list[tuple[int, str]]:
    found = []
    for manifest in manifests:
        for item in manifest["tables"].get(table, {}).get("files", []):
            found.append((int(manifest["run_id"]), str(item["path"])))
    return found


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _lake_versions(
    con: duckdb.DuckDBPyConnection,
    target: lake.Lake,
    table: ExportedTable,
    files: list[tuple[int, str]],
) -> None:
    """lake_versions(k, c, h, run): every row version of the table in the lake."""
    row_hash = ", ".join(f'cast("{c}" as varchar)' for c in table.columns)
    if not files:
        cursor_type = "bigint" if table.load_type == "id" else "timestamptz"
        con.execute(
            "create or replace temp table lake_versions"
            f" (k bigint, c {cursor_type}, h ubigint, run bigint)"
        )
        return
    parts = []
    for run_id, key in files:
        path = target.reader_path(key).replace("'", "''")
        parts.append(
            f"""select "{table.key_column}"::bigint as k, "{table.cursor_column}" as c,
                       hash({row_hash}) as h, {run_id}::bigint as run
                from read_parquet('{path}')"""
        )
    con.execute("create or replace temp table lake_versions as " + " union all ".join(parts))


def _check_table(
    con: duckdb.DuckDBPyConnection,
    target: lake.Lake,
    table: ExportedTable,
    manifests: list[dict[str, Any]],
    tombstone_watermark: int,
) -> TableCheck:
    check = TableCheck(table.name)
    key, cursor = f'"{table.key_column}"', f'"{table.cursor_column}"'
    row_hash = ", ".join(f'cast("{c}" as varchar)' for c in table.columns)
    if table.load_type == "id":
        inside, beyond = f"{key} <= {table.max_id}", f"{key} > {table.max_id}"
    else:
        mark = table.max_modified.astimezone(dt.UTC).isoformat(sep=" ")
        inside, beyond = f"{cursor} < TIMESTAMPTZ '{mark}'", f"{cursor} >= TIMESTAMPTZ '{mark}'"
    source = table.duckdb_name("pg")

    con.execute(
        f"create or replace temp table pg_rows as select {key}::bigint as k, hash({row_hash}) as h"
        f" from {source} where {inside}"
    )
    # read after the rows: what changed meanwhile shows up here and is left out of the comparison
    con.execute(
        f"create or replace temp table pending as select {key}::bigint as k from {source}"
        f" where {beyond}"
        f" union select key_value from pg.etl.tombstones where table_name = '{table.name}'"
        f" and tombstone_id > {tombstone_watermark}"
    )
    _lake_versions(con, target, table, _files(manifests, table.name))
    con.execute(
        "create or replace temp table lake_rows as"
        " select k, h from lake_versions"
        " qualify row_number() over (partition by k order by c desc, run desc) = 1"
    )
    con.execute(
        "delete from lake_rows where k in"
        f" (select key_value from lake_tombstones where table_name = '{table.name}')"
    )
    check.duplicates = _scalar(
        con,
        "select count(*) from (select k, c from lake_versions group by k, c having count(*) > 1)",
    )
    check.compared = _scalar(
        con, "select count(*) from pg_rows where k not in (select k from pending)"
    )
    check.lake_rows = _scalar(con, "select count(*) from lake_rows")
    check.pending = _scalar(con, "select count(*) from pending")
    check.missing = _scalar(
        con,
        "select count(*) from pg_rows p where p.k not in (select k from pending)"
        " and not exists (select 1 from lake_rows l where l.k = p.k)",
    )
    check.extra = _scalar(
        con,
        "select count(*) from lake_rows l where l.k not in (select k from pending)"
        " and not exists (select 1 from pg_rows p where p.k = l.k)",
    )
    check.changed = _scalar(
        con,
        "select count(*) from pg_rows p join lake_rows l on l.k = p.k"
        " where p.k not in (select k from pending) and p.h <> l.h",
    )
    return check


def verify(target: str, settings: db.Settings | None = None) -> list[TableCheck]:
    """Compare the lake at `target` with PostgreSQL; one TableCheck per exported table."""
    settings = db.resolve() if settings is None else settings
    destination = lake.open_lake(target)
    manifests = lake.committed_manifests(destination)
    conn = protocol.connect(settings, "verify")
    with conn:
        tables = load_tables(conn)
    by_name = {t.name: t for t in tables}
    tombstone_watermark = by_name[TOMBSTONES].max_id if TOMBSTONES in by_name else 0

    access = destination.s3_access()
    with duck.session(
        settings, application_name=f"{APPLICATION}-verify", with_httpfs=access is not None
    ) as con:
        if access is not None:
            duck.use_s3(con, access)
        tombstone_files = _files(manifests, TOMBSTONES)
        if tombstone_files:
            paths = ", ".join(
                "'" + destination.reader_path(k).replace("'", "''") + "'"
                for _, k in tombstone_files
            )
            con.execute(
                "create temp table lake_tombstones as"
                f" select table_name, key_value from read_parquet([{paths}])"
            )
        else:
            con.execute("create temp table lake_tombstones (table_name varchar, key_value bigint)")
        try:
            return [
                _check_table(con, destination, t, manifests, tombstone_watermark) for t in tables
            ]
        except duckdb.Error as exc:
            raise ExportError(f"verify could not read the lake or the database: {exc}") from exc
