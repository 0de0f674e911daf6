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


def _stored_ids(
    con: duckdb.DuckDBPyConnection, storage: Storage, paths: list[str]
) -> dict[str, dict[int, str]]:
    """Each file's columns by field id, from its footer: {reader path: {field id: name}}; a
    file whose columns carry no field ids (another writer's, without them) maps none."""
    stored: dict[str, dict[int, str]] = {storage.reader_path(p): {} for p in paths}
    rows = con.execute(
        f"select file_name, name, field_id from parquet_schema({paths_sql(storage, paths)})"
        " where field_id is not null"
    ).fetchall()
    for file_name, column, field_id in rows:
        stored.setdefault(str(file_name), {})[int(field_id)] = str(column)
    return stored


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
    key_in: tuple[str, str] | None = None,
) -> str:
    """A query of the rows of these files (data files less the positions the delete files
    name), streamed by DuckDB: the schema's columns (or `columns`; one a file does not have,
    added since, is null), plus each row's `file_path` and `pos` with positions=True. Columns
    are found in each file by field id, as Iceberg readers find them: a renamed field is read
    under its new name, and a replaced one (a new field under an old name) is not taken for
    its predecessor; a file without field ids is read by name. `key_in` (a field name and a
    query of values) keeps only the rows whose field is among the values, chosen before the
    deleted positions are subtracted, so that a run's few keys are not matched against the
    deletes of every row. It fills the temp table file_names_<name>. `table`: the lake table
    the schema is of, named when one of its field names is refused."""
    wanted = [f for f in schema.fields if columns is None or f.name in columns]
    quoted = {f.name: identifier(lake_name(table, "a field named", f.name)) for f in wanted}
    if not files.data:
        empty, _ = select_list(Schema(*wanted), {}, table=table)
        extra = ", NULL::VARCHAR as file_path, NULL::BIGINT as pos" if positions else ""
        return f"select * from (select {empty}{extra}) s where false"
    paths = [f.file_path for f in files.data]
    stored = _stored_ids(con, storage, paths)
    by_layout: dict[tuple[tuple[int, str], ...], list[str]] = {}
    for path in paths:
        ids = stored.get(storage.reader_path(path)) or {}
        if not ids:  # no field ids: the names are the schema's
            ids = {f.field_id: f.name for f in schema.fields}
            names = _names(con, storage, path)
            ids = {i: n for i, n in ids.items() if n in names}
        by_layout.setdefault(tuple(sorted(ids.items())), []).append(path)
    name_files(con, storage, name, paths)
    key_field = schema.find_field(key_in[0]) if key_in is not None else None
    parts = []
    for layout_ids, group in by_layout.items():
        ids = dict(layout_ids)
        select = ", ".join(
            f"CAST(s.{identifier(ids[f.field_id])} AS {duck_type(f.field_type)})"
            f" AS {quoted[f.name]}"
            if f.field_id in ids
            else f"CAST(NULL AS {duck_type(f.field_type)}) AS {quoted[f.name]}"
            for f in wanted
        )
        where = ""
        if key_in is not None and key_field is not None:
            if key_field.field_id not in ids:
                continue  # files without the column hold none of the values
            where = f" where s.{identifier(ids[key_field.field_id])} in ({key_in[1]})"
        parts.append(
            f"select {select}, n.path as {_FILE}, s.file_row_number as {_POS}"
            f" from read_parquet({paths_sql(storage, group)},"
            " filename = true, file_row_number = true) s"
            f" join file_names_{name} n on n.reader = s.filename{where}"
        )
    if not parts:
        empty, _ = select_list(Schema(*wanted), {}, table=table)
        extra = ", NULL::VARCHAR as file_path, NULL::BIGINT as pos" if positions else ""
        return f"select * from (select {empty}{extra}) s where false"
    chosen = ", ".join(f"r.{quoted[f.name]}" for f in wanted)
    extra = f", r.{_FILE} as file_path, r.{_POS} as pos" if positions else ""
    deleted = ""
    if files.deletes:
        deleted = (
            f" where (r.{_FILE}, r.{_POS}) not in (select file_path, pos from"
            f" read_parquet({paths_sql(storage, [f.file_path for f in files.deletes])}))"
        )
    union = " union all ".join(f"({p})" for p in parts)
    return f"select {chosen}{extra} from ({union}) r{deleted}"


_FILE, _POS = "_animedb_file", "_animedb_pos"  # a row's place, beside the table's own columns


def _names(con: duckdb.DuckDBPyConnection, storage: Storage, path: str) -> set[str]:
    rows = con.execute(
        f"select name from parquet_schema({literal(storage.reader_path(path))})"
    ).fetchall()
    return {str(r[0]) for r in rows}


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
