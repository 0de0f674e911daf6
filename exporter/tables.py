"""The exported tables as etl.exported_tables lists them, with one target's watermarks from
etl.watermarks, each checked against PostgreSQL's catalog before any SQL names it: a row that
does not name a real table and columns is refused."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import db
from exporter.ddl import Column, Signature, SourceChange, compare
from exporter.errors import ExportError
from exporter.sqltext import PLAIN_NAME, shown

LoadType = Literal["id", "modified"]
TOMBSTONES = "etl.tombstones"  # the exported table of deletes (macros/tombstones.sql)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_KEY_TYPES = {"bigint", "integer", "smallint"}


@dataclass(frozen=True)
class ExportedTable:
    """One row of etl.exported_tables and its watermark for a target, validated."""

    name: str  # schema-qualified, as stored: app.anime
    schema: str
    relname: str
    load_type: LoadType
    key_column: str
    cursor_column: str
    max_id: int
    max_modified: dt.datetime
    last_run_id: int | None
    last_export_at: dt.datetime | None
    rows_exported: int
    columns: tuple[str, ...]
    signature: str  # its columns and relation file, as etl.watermarks.source_columns keeps them
    recorded_signature: str | None  # what the target's last commit of the table recorded

    def source_change(self) -> SourceChange:
        """The DDL since the target last committed the table (exporter/ddl.py)."""
        return compare(
            Signature.parse(self.recorded_signature),
            Signature.parse(self.signature) or Signature(()),
        )

    @property
    def lake_name(self) -> str:
        """The name of its current-state table in the lake (the change log adds _changes)."""
        return self.relname

    def identifier(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.relname))

    def duckdb_name(self, catalog: str) -> str:
        """The table in DuckDB's attached catalog; names are checked, so quoting is plain."""
        return f'{catalog}."{self.schema}"."{self.relname}"'


def _split(name: str) -> tuple[str, str]:
    schema, _, relname = name.partition(".")
    if not (_NAME.match(schema) and _NAME.match(relname)):
        raise ExportError(
            f"etl.exported_tables lists {name!r}, which is not a schema-qualified lowercase "
            "table name: fix or delete that row (nothing was exported)"
        )
    return schema, relname


def _signature(conn: psycopg.Connection[TupleRow], schema: str, relname: str) -> Signature:
    """The table's columns in table order, with its relation file; no columns when the table
    does not exist."""
    rows = conn.execute(
        "select a.attnum, a.attname, t.typname, a.atttypmod,"
        " a.atthasdef or a.attgenerated <> '', c.relfilenode"
        " from pg_attribute a"
        " join pg_class c on c.oid = a.attrelid"
        " join pg_namespace n on n.oid = c.relnamespace"
        " join pg_type t on t.oid = a.atttypid"
        " where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p')"
        "   and a.attnum > 0 and not a.attisdropped"
        " order by a.attnum",
        (schema, relname),
    ).fetchall()
    return Signature(
        tuple(
            Column(int(attnum), str(name), str(typ), int(typmod), bool(filled))
            for attnum, name, typ, typmod, filled, _ in rows
        ),
        int(rows[0][5]) if rows and rows[0][5] else None,
    )


_TYPE_ALIASES = {"int8": "bigint", "int4": "integer", "int2": "smallint"}


def _readable(conn: psycopg.Connection[TupleRow], schema: str, relname: str) -> bool:
    """Whether this session may read the table (and its schema), asked before any read fails."""
    row = conn.execute(
        "select has_schema_privilege(%s, 'usage')"
        " and has_table_privilege(format('%%I.%%I', %s::text, %s::text), 'select')",
        (schema, schema, relname),
    ).fetchone()
    return bool(row and row[0])


def load_tables(conn: psycopg.Connection[TupleRow], target: str) -> list[ExportedTable]:
    """Every exported table with its watermark for `target` (a target without one starts at
    the beginning: a full load), validated; the first bad row stops everything."""
    try:
        rows = conn.execute(
            "select e.table_name, e.load_type, e.key_column, e.cursor_column,"
            " coalesce(w.max_id, 0), coalesce(w.max_modified, '1970-01-01 00:00:00+00'),"
            " w.last_run_id, w.last_export_at, coalesce(w.rows_exported, 0), w.source_columns"
            " from etl.exported_tables e"
            " left join etl.watermarks w on w.table_name = e.table_name and w.target = %s"
            " order by e.table_name",
            (target,),
        ).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        raise ExportError(
            "etl.exported_tables does not exist: build the database first (animedb db build)"
        ) from exc
    tables = []
    for (
        name,
        load_type,
        key,
        cursor,
        max_id,
        max_modified,
        last_run,
        last_at,
        exported,
        recorded,
    ) in rows:
        schema, relname = _split(str(name))
        signature = _signature(conn, schema, relname)
        columns = {c.name: (c.type, c.typmod) for c in signature.columns}
        if not columns:
            raise ExportError(
                f"etl.exported_tables lists {name}, which is not an existing table: "
                "drop that row or create the table (nothing was exported)"
            )
        if not _readable(conn, schema, relname):
            raise ExportError(
                f"etl.exported_tables lists {name}, which {db.EXPORTER_ROLE} may not read: an "
                f"administrator must GRANT SELECT ON {name} TO {db.EXPORTER_ROLE} (dbt build "
                "does for the tables it exports), or drop that row (nothing was exported)"
            )
        for role, column in (("key", key), ("cursor", cursor)):
            if column not in columns:
                raise ExportError(
                    f"etl.exported_tables gives {name} the {role} column {column!r}, which it "
                    "does not have: fix that row (nothing was exported)"
                )
        key_type = _TYPE_ALIASES.get(columns[str(key)][0], columns[str(key)][0])
        if key_type not in _KEY_TYPES:
            raise ExportError(f"{name}: key column {key} is {key_type}, not an integer")
        if load_type == "id" and cursor != key:
            raise ExportError(f"{name}: an `id` table's cursor must be its key column {key}")
        if load_type == "modified" and columns[str(cursor)][0] != "timestamptz":
            raise ExportError(f"{name}: cursor column {cursor} must be timestamptz")
        for column, (typ, typmod) in columns.items():
            if not PLAIN_NAME.fullmatch(column):
                # the exporter's SQL quotes columns by name; a name with quotes or control
                # characters would be SQL of its own, and the lake refuses such names anyway
                raise ExportError(
                    f"{name} has column {shown(column)}, which is not a plain name (letters, "
                    "digits, _ and $): rename it, or leave the table out of "
                    "etl.exported_tables (nothing was exported)"
                )
            if typ == "numeric" and typmod < 0:
                raise ExportError(
                    f"{name}.{column} is numeric without precision, which DuckDB would read as a "
                    "double: give it one (numeric(p, s)) so it keeps its meaning in the lake"
                )
        tables.append(
            ExportedTable(
                name=str(name),
                schema=schema,
                relname=relname,
                load_type="id" if load_type == "id" else "modified",
                key_column=str(key),
                cursor_column=str(cursor),
                max_id=int(max_id),
                max_modified=max_modified,
                last_run_id=last_run,
                last_export_at=last_at,
                rows_exported=int(exported),
                columns=tuple(columns),
                signature=signature.to_json(),
                recorded_signature=recorded,
            )
        )
    names = Counter(n for t in tables for n in (t.lake_name, t.lake_name + "_changes"))
    clashes = [n for n, count in names.items() if count > 1]
    if clashes:
        raise ExportError(
            f"two exported tables would share the lake table {clashes[0]!r}: rename one of them"
        )
    return tables


def targets(conn: psycopg.Connection[TupleRow]) -> list[str]:
    """Every target some run has exported to, in the order they were first used."""
    rows = conn.execute(
        "select target from etl.export_runs group by target order by min(run_id)"
    ).fetchall()
    return [str(r[0]) for r in rows]
