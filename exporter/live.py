"""A snapshot's live rows: the files it consists of (from its manifests) and the DuckDB query of
its rows, its data files less the positions its delete files name, which is what any Iceberg
reader returns. The run, maintenance, `verify` and the report all read a table through here.
Its field names, key column and file locations come from the table's metadata, which another
tool may have changed: they reach SQL checked and quoted (exporter/sqltext.py), never as they
are."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFile, DataFileContent
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.types import IntegerType, LongType

from exporter import layout
from exporter.catalog import table_name
from exporter.errors import ExportError, first_line
from exporter.schema import duck_type, select_list
from exporter.sqltext import identifier, lake_name, literal, shown
from exporter.storage import Storage


@dataclass
class LiveFiles:
    """What a snapshot of a table consists of."""

    data: list[DataFile] = field(default_factory=list)
    deletes: list[DataFile] = field(default_factory=list)

    @property
    def all(self) -> list[DataFile]:
        return self.data + self.deletes


def live_files(table: Table, snapshot: Snapshot | None = None) -> LiveFiles:
    """The data and delete files of a snapshot (the current one unless given)."""
    snapshot = snapshot or table.current_snapshot()
    files = LiveFiles()
    if snapshot is None:
        return files
    try:
        for manifest in snapshot.manifests(table.io):
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                f = entry.data_file
                (files.data if f.content == DataFileContent.DATA else files.deletes).append(f)
    except Exception as exc:  # pyiceberg's Avro reader fails in many ways on a bad file
        raise ExportError(
            f"cannot read the manifests of table {table_name(table)} (manifest list "
            f"{snapshot.manifest_list}): {first_line(exc)}; the file is missing or corrupted"
        ) from exc
    return files


def paths_sql(storage: Storage, paths: Iterable[str]) -> str:
    """A DuckDB list literal of the files at these locations, as DuckDB reads them."""
    return "[" + ", ".join(literal(storage.reader_path(p)) for p in paths) + "]"


def name_files(
    con: duckdb.DuckDBPyConnection, storage: Storage, name: str, paths: list[str]
) -> None:
    """Temp table file_names_<name>(reader, path): how DuckDB names each file it reads, and
    the path the table's metadata (and its position deletes) give it. Literal values, not
    parameters: DuckDB would import pandas, when installed, for a parameterised statement."""
    rows = ", ".join(f"({literal(storage.reader_path(p))}, {literal(p)})" for p in paths)
    con.execute(
        f"create or replace temp table file_names_{name} as"
        f" select * from (values {rows}) as v(reader, path)"
    )


def rows_sql(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    schema: Schema,
    files: LiveFiles,
    *,
    columns: list[str] | None = None,
    positions: bool = False,
    name: str = "live",
    table: str | None = None,
) -> str:
    """A query of the rows of these files (data files less the positions the delete files
    name), streamed by DuckDB: the schema's columns (or `columns`; one no file has yet, added
    since, is null), plus each row's `file_path` and `pos` with positions=True. It fills the
    temp table file_names_<name>. `table`: the lake table the schema is of, named when one of
    its field names is refused."""
    wanted = [f for f in schema.fields if columns is None or f.name in columns]
    quoted = {f.name: identifier(lake_name(table, "a field named", f.name)) for f in wanted}
    extra = ", n.path as file_path, s.file_row_number as pos" if positions else ""
    if not files.data:
        empty, _ = select_list(Schema(*wanted), {}, table=table)
        extra = ", NULL::VARCHAR as file_path, NULL::BIGINT as pos" if positions else ""
        return f"select * from (select {empty}{extra}) s where false"
    data = paths_sql(storage, [f.file_path for f in files.data])
    stored = {
        str(r[0])
        for r in con.execute(
            f"describe select * from read_parquet({data}, union_by_name = true)"
        ).fetchall()
    }
    select = ", ".join(
        f"s.{quoted[f.name]}"
        if f.name in stored
        else f"CAST(NULL AS {duck_type(f.field_type)}) AS {quoted[f.name]}"
        for f in wanted
    )
    name_files(con, storage, name, [f.file_path for f in files.data])
    deleted = ""
    if files.deletes:
        deleted = (
            " where (n.path, s.file_row_number) not in (select file_path, pos from"
            f" read_parquet({paths_sql(storage, [f.file_path for f in files.deletes])}))"
        )
    return (
        f"select {select}{extra} from read_parquet({data}, filename = true,"
        " file_row_number = true, union_by_name = true) s"
        f" join file_names_{name} n on n.reader = s.filename{deleted}"
    )


def current_rows(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    table: Table,
    select: str,
    name: str,
    files: LiveFiles | None = None,
) -> None:
    """Temp table `name` with `select` over the rows of the table's current snapshot; `files`
    are its live files when the caller has read them already."""
    files = files if files is not None else live_files(table)
    rows = rows_sql(con, storage, table.schema(), files, table=table_name(table))
    con.execute(f"create or replace temp view {name}_source as {rows}")
    con.execute(f"create or replace temp table {name} as select {select} from {name}_source")


def key_column(table: Table) -> str:
    """The table's key: its animedb.key-column property, refused unless a plain name (see
    sqltext.lake_name) and one of the table's fields."""
    name = table_name(table)
    key = table.properties.get(layout.KEY_COLUMN)
    if key is None:
        raise ExportError(
            f"table {name} has no {layout.KEY_COLUMN} property: the table's metadata was "
            "changed by another tool; set it back to the key column, or export to a new target"
        )
    lake_name(name, layout.KEY_COLUMN, key)
    if key not in {f.name for f in table.schema().fields}:
        raise ExportError(
            f"table {name} has {layout.KEY_COLUMN} {shown(key)}, which is none of its fields: "
            "the table's metadata was changed by another tool; set it back to the key column, "
            "or export to a new target"
        )
    return key


def files_holding(files: list[DataFile], field_id: int, keys: list[int]) -> list[DataFile]:
    """The data files whose bounds on an integer column (`field_id`) admit one of `keys`
    (sorted): only they can hold those keys' rows. A file without bounds always counts."""
    found = []
    for f in files:
        low_bytes = (f.lower_bounds or {}).get(field_id)
        high_bytes = (f.upper_bounds or {}).get(field_id)
        if low_bytes is None or high_bytes is None:
            found.append(f)
            continue
        kind = LongType() if len(low_bytes) == 8 else IntegerType()
        low, high = int(from_bytes(kind, low_bytes)), int(from_bytes(kind, high_bytes))
        i = bisect.bisect_left(keys, low)
        if i < len(keys) and keys[i] <= high:
            found.append(f)
    return found
