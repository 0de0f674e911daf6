"""The lake as Apache Iceberg v2 tables: the one owner of the layout, the catalog, the schemas
and the snapshots a run commits.

Per exported source table `app.x`, in one namespace (default `animedb`):
- `x_changes`: append-only; every row version a run captured and every delete, with `_run_id`,
  `_deleted` and `_exported_at` (the run's start, the partition: one day a partition);
- `x`: the current state, newest version of each key, deletes applied (with `_run_id` and
  `_exported_at`). A run appends its new versions and one position-delete file naming the
  rows they replace (merge-on-read), so a delta costs a scan of the key column and never a
  rewrite; once deletes pile up, a compaction rewrites it from its live rows.
DuckDB writes every data file (with Iceberg field ids, the same in both tables, so one file
serves either); this module registers them as they are, with statistics from their Parquet
footers, so pyarrow is not needed. Each run's snapshot carries the run id and window in its
summary and a tag `run-<id>`: a run is committed to a table exactly when the tag exists, and
"the lake as of run N" is that tag in every table.

pyiceberg 0.12 writes no delete files, so the snapshots that add them (and the compaction's)
are built here on its snapshot producer, a private class: the one place tied to the pinned
version's internals. Everything else is pyiceberg's public API.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.conversions import to_bytes
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
)
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update.snapshot import ManageSnapshots, _FastAppendFiles
from pyiceberg.transforms import DayTransform
from pyiceberg.typedef import Record
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    PrimitiveType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
)
from pyiceberg.utils.config import Config

from exporter import duck
from exporter.errors import ExportError, first_line
from exporter.lake import Lake, open_lake

CATALOG_VARIABLE = "ANIMEDB_CATALOG"
NAMESPACE_VARIABLE = "ANIMEDB_NAMESPACE"
DEFAULT_CATALOG = "animedb"
DEFAULT_NAMESPACE = "animedb"
LOCAL_CATALOG_FILE = "catalog.db"  # the serverless default: SQLite inside a local lake
FILE_IO = "exporter.fileio.LakeFileIO"

# snapshot summaries and table/namespace properties
RUN_ID = "animedb.run-id"
WINDOW = "animedb.window"
BOUND_TIME = "animedb.bound-time"
FILES = "animedb.files"  # {file name: sha256} of the files the snapshot added
COMPACTED_BY = "animedb.compacted-by-run"  # a snapshot that only rewrote the current state
SOURCE_TABLE = "animedb.source-table"
KEY_COLUMN = "animedb.key-column"
ROLE = "animedb.role"  # current or changes
SYSTEM_IDENTIFIER = "animedb.source-system-identifier"
SOURCE_DATABASE = "animedb.source-database"

CHANGES_SUFFIX = "_changes"
# the change log's own columns, after the source's
RUN_COLUMN, DELETED_COLUMN, EXPORTED_AT_COLUMN = "_run_id", "_deleted", "_exported_at"
CHANGE_COLUMNS = (RUN_COLUMN, DELETED_COLUMN, EXPORTED_AT_COLUMN)
# the position-delete file's reserved field ids (Iceberg spec)
FILE_PATH_ID, POS_ID = 2147483546, 2147483545


def tag(run_id: int) -> str:
    return f"run-{run_id}"


def run_folder(run_id: int, *, compaction: bool = False) -> str:
    """Where a run's files go inside a table's folder: only run id and table name it (the
    files of the run's compaction of the table in a folder of their own)."""
    return f"data/{'compact-run' if compaction else 'run'}-{run_id:012d}"


def run_location(table: Table, run_id: int, name: str = "", *, compaction: bool = False) -> str:
    """The location of a run's file `name` in a table (without a name, of its folder)."""
    folder = f"{table.location().rstrip('/')}/{run_folder(run_id, compaction=compaction)}"
    return f"{folder}/{name}" if name else folder


# --- types ---------------------------------------------------------------------------------

_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_SIMPLE_TYPES: dict[str, PrimitiveType] = {
    "BOOLEAN": BooleanType(),
    "TINYINT": IntegerType(),
    "SMALLINT": IntegerType(),
    "INTEGER": IntegerType(),
    "BIGINT": LongType(),
    "FLOAT": FloatType(),
    "REAL": FloatType(),
    "DOUBLE": DoubleType(),
    "DATE": DateType(),
    "TIME": TimeType(),
    "TIMESTAMP": TimestampType(),
    "TIMESTAMP WITH TIME ZONE": TimestamptzType(),
    "BLOB": BinaryType(),
}


def iceberg_type(duck_type: str) -> PrimitiveType:
    """The Iceberg type a column of this DuckDB type is stored as: meaning kept (decimal stays
    decimal, timestamptz a UTC timestamp); enums, JSON, UUIDs and anything else as strings."""
    name = duck_type.upper()
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    match = _DECIMAL.match(name)
    if match:
        return DecimalType(int(match.group(1)), int(match.group(2)))
    return StringType()


def duck_type(iceberg: IcebergType) -> str:
    """The DuckDB type whose Parquet encoding is what Iceberg reads for this type."""
    if isinstance(iceberg, DecimalType):
        return f"DECIMAL({iceberg.precision},{iceberg.scale})"
    names = {
        BooleanType: "BOOLEAN",
        IntegerType: "INTEGER",
        LongType: "BIGINT",
        FloatType: "REAL",
        DoubleType: "DOUBLE",
        DateType: "DATE",
        TimeType: "TIME",
        TimestampType: "TIMESTAMP",
        TimestamptzType: "TIMESTAMPTZ",
        BinaryType: "BLOB",
        StringType: "VARCHAR",
    }
    for kind, name in names.items():
        if isinstance(iceberg, kind):
            return name
    raise ExportError(f"no DuckDB type for Iceberg type {iceberg}")


def widens_to(old: IcebergType, new: IcebergType) -> bool:
    """Whether Iceberg can promote a column of type `old` to `new` (the spec's rules)."""
    if old == new:
        return True
    if isinstance(old, IntegerType) and isinstance(new, LongType):
        return True
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    return (
        isinstance(old, DecimalType)
        and isinstance(new, DecimalType)
        and new.scale == old.scale
        and new.precision >= old.precision
    )


def holds(lake_type: IcebergType, source_type: IcebergType) -> bool:
    """Whether values of `source_type` fit a lake column of `lake_type` unchanged (a source
    narrowed back, say bigint to integer, still fits the wider lake column)."""
    return widens_to(source_type, lake_type)


# --- catalog and namespace ------------------------------------------------------------------


@dataclass
class House:
    """An opened lake: the target, its Iceberg catalog and the namespace of the tables."""

    lake: Lake
    catalog: Catalog
    catalog_name: str
    namespace: str

    @property
    def key(self) -> str:
        """The target as PostgreSQL's watermarks name it."""
        suffix = "" if self.namespace == DEFAULT_NAMESPACE else f"#{self.namespace}"
        return f"{self.lake.uri}{suffix}"

    def identifier(self, name: str) -> str:
        return f"{self.namespace}.{name}"


def open_key(key: str, catalog_name: str | None = None) -> House:
    """The target a watermark key (`House.key`) names: its lake, and the key's own namespace
    (the default one when the key names none, whatever ANIMEDB_NAMESPACE says)."""
    uri, _, namespace = key.partition("#")
    return open_house(open_lake(uri), catalog_name, namespace or DEFAULT_NAMESPACE)


def open_house(lake: Lake, catalog_name: str | None = None, namespace: str | None = None) -> House:
    """The catalog for a target. Configured the way pyiceberg is (.pyiceberg.yaml,
    PYICEBERG_CATALOG__<NAME>__<PROPERTY>), under the name ANIMEDB_CATALOG (default `animedb`);
    with nothing configured, a local lake gets a SQLite catalog in its folder and an s3://
    lake the Glue Data Catalog. The warehouse is the target unless configured."""
    name = catalog_name or os.environ.get(CATALOG_VARIABLE) or DEFAULT_CATALOG
    namespace = namespace or os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", namespace):
        raise ExportError(f"namespace {namespace!r} is not a lowercase name: use e.g. animedb")
    try:
        configured = Config().get_catalog_config(name) or {}
    except ValueError as exc:
        raise ExportError(f"pyiceberg configuration of catalog {name!r}: {exc}") from exc
    extra: dict[str, str] = {}
    if "py-io-impl" not in configured:
        extra["py-io-impl"] = FILE_IO
    if "warehouse" not in configured:
        extra["warehouse"] = lake.uri
    if not configured:
        if lake.is_s3:
            extra["type"] = "glue"
        else:
            extra["type"] = "sql"
            extra["uri"] = f"sqlite:///{Path(lake.uri) / LOCAL_CATALOG_FILE}"
    try:
        catalog = load_catalog(name, **extra)
    except Exception as exc:  # pyiceberg raises many kinds for a bad configuration
        raise ExportError(
            f"cannot open the Iceberg catalog {name!r} for {lake.uri}: {first_line(exc)} "
            "(check its pyiceberg configuration)"
        ) from exc
    return House(lake, catalog, name, namespace)


def claim(house: House, system_identifier: str, database: str) -> None:
    """Make sure the lake mirrors this database: a new namespace records it, an existing one
    must name it. Refused with one line, and nothing in the lake changed, otherwise."""
    mine = {SYSTEM_IDENTIFIER: system_identifier, SOURCE_DATABASE: database}
    # read first: on AWS the namespace (a Glue database) is the stack's, which the exporter
    # may describe and update but not create
    try:
        properties = house.catalog.load_namespace_properties(house.namespace)
    except NoSuchNamespaceError:
        try:
            house.catalog.create_namespace(house.namespace, mine)
            return
        except NamespaceAlreadyExistsError:
            properties = house.catalog.load_namespace_properties(house.namespace)
    except Exception as exc:
        raise ExportError(
            f"cannot read namespace {house.namespace} of {house.lake.uri}: {first_line(exc)}"
        ) from exc
    theirs = (properties.get(SYSTEM_IDENTIFIER), properties.get(SOURCE_DATABASE))
    if theirs == (system_identifier, database):
        return
    if theirs == (None, None):
        if house.catalog.list_tables(house.namespace):
            raise ExportError(
                f"namespace {house.namespace} of {house.lake.uri} holds tables that no "
                "AnimeDataBase export made: export to another target or namespace"
            )
        house.catalog.update_namespace_properties(house.namespace, updates=mine)
        return
    raise ExportError(
        f"{house.lake.uri} mirrors database {theirs[1]} of PostgreSQL system {theirs[0]}, not "
        f"{database} of system {system_identifier}: nothing was changed; export this database "
        "to a target of its own"
    )


# --- schemas and their evolution ------------------------------------------------------------


@dataclass
class Evolution:
    """What one source table's lake tables need before this run's files are written."""

    source: str
    columns: dict[str, PrimitiveType]  # the source's columns, in order, as Iceberg types
    add: list[str] = field(default_factory=list)
    widen: list[str] = field(default_factory=list)


def plan_evolution(
    source: str, columns: dict[str, PrimitiveType], current: Schema | None
) -> Evolution:
    """Compare the source's columns with the lake's; raise, before anything is committed, for
    a change Iceberg cannot express."""
    evolution = Evolution(source, columns)
    if current is None:
        return evolution
    lake_columns = {f.name: f.field_type for f in current.fields}
    for name, source_type in columns.items():
        if name in CHANGE_COLUMNS:
            raise ExportError(
                f"{source}.{name}: the column name is the change log's own; rename the column"
            )
        lake_type = lake_columns.get(name)
        if lake_type is None:
            evolution.add.append(name)
        elif holds(lake_type, source_type):
            continue
        elif widens_to(lake_type, source_type):
            evolution.widen.append(name)
        else:
            raise ExportError(
                f"{source}.{name} changed from {lake_type} to {source_type}, which an Iceberg "
                "table cannot follow: nothing was committed; change the column back, or add "
                "it under a new name (the old one stays readable)"
            )
    return evolution


def _apply_schema(table: Table, evolution: Evolution) -> Table:
    if not (evolution.add or evolution.widen):
        return table
    with table.update_schema() as update:
        for name in evolution.add:
            update.add_column(name, evolution.columns[name])
        for name in evolution.widen:
            update.update_column(name, field_type=evolution.columns[name])
    return table


@dataclass
class Pair:
    """A source table's two lake tables."""

    source: str
    current: Table
    changes: Table


def _schema(columns: dict[str, PrimitiveType], with_change_columns: bool) -> Schema:
    fields = [
        NestedField(i, name, typ, required=False)
        for i, (name, typ) in enumerate(columns.items(), start=1)
    ]
    if with_change_columns:
        n = len(fields)
        fields += [
            NestedField(n + 1, RUN_COLUMN, LongType(), required=False),
            NestedField(n + 2, DELETED_COLUMN, BooleanType(), required=False),
            NestedField(n + 3, EXPORTED_AT_COLUMN, TimestamptzType(), required=False),
        ]
    return Schema(*fields)


def _load(house: House, name: str) -> Table | None:
    try:
        return house.catalog.load_table(house.identifier(name))
    except NoSuchTableError:
        return None
    except Exception as exc:
        raise ExportError(
            f"cannot read the metadata of table {house.identifier(name)}: {first_line(exc)} "
            "(a metadata file is missing or corrupted)"
        ) from exc


def load_pair(house: House, relname: str) -> tuple[Table | None, Table | None]:
    """A source table's (current, changes) lake tables, None where one does not exist yet."""
    return _load(house, relname), _load(house, relname + CHANGES_SUFFIX)


def ensure_pair(
    house: House,
    relname: str,
    key_column: str,
    evolution: Evolution,
    existing: tuple[Table | None, Table | None],
) -> Pair:
    """Create the two tables of a source table, or bring their schemas up to the source's.

    Both tables give every column the same field id: the current state is the change log's
    schema less `_deleted` (whose id stays reserved), so one file DuckDB writes is a valid
    data file of either, and a run stores a copy of it in each instead of writing it twice.
    """
    tables: dict[str, Table] = {}
    loaded = {"current": existing[0], "changes": existing[1]}
    for role, name in (("changes", relname + CHANGES_SUFFIX), ("current", relname)):
        table = loaded[role]
        if table is None:
            schema = _schema(evolution.columns, with_change_columns=True)
            spec = PartitionSpec()
            if role == "changes":
                source_id = schema.find_field(EXPORTED_AT_COLUMN).field_id
                spec = PartitionSpec(
                    PartitionField(source_id, 1000, DayTransform(), "export_day"), spec_id=0
                )
            table = house.catalog.create_table(
                house.identifier(name),
                schema,
                partition_spec=spec,
                properties={
                    "format-version": "2",
                    "write.delete.mode": "merge-on-read",
                    "write.update.mode": "merge-on-read",
                    SOURCE_TABLE: evolution.source,
                    KEY_COLUMN: key_column,
                    ROLE: role,
                },
            )
            if role == "current":
                with table.update_schema() as update:
                    update.delete_column(DELETED_COLUMN)
        else:
            table = _apply_schema(table, evolution)
        tables[role] = table
    pair = Pair(evolution.source, tables["current"], tables["changes"])
    changes_ids = {f.name: f.field_id for f in pair.changes.schema().fields}
    for f in pair.current.schema().fields:
        if changes_ids.get(f.name) != f.field_id:
            raise ExportError(
                f"lake tables {relname} and {relname}{CHANGES_SUFFIX} give column {f.name} "
                "different field ids (changed by another tool?): export to a new target"
            )
    return pair


def select_list(schema: Schema, expressions: dict[str, str]) -> tuple[str, str]:
    """The select list writing a file of `schema` (each column cast to its Iceberg type; a
    column the source no longer has is null) and DuckDB's FIELD_IDS option for it."""
    parts, ids = [], []
    for f in schema.fields:
        expression = expressions.get(f.name, "NULL")
        parts.append(f'CAST({expression} AS {duck_type(f.field_type)}) AS "{f.name}"')
        ids.append(f"'{f.name}': {f.field_id}")
    return ", ".join(parts), "{" + ", ".join(ids) + "}"


# --- files and snapshots --------------------------------------------------------------------


def _value(iceberg: IcebergType, text: str | None) -> Any:
    """A Parquet statistic as the value Iceberg's bounds encode (integers as ints, dates as
    days, decimals as Decimal); None for types whose bounds readers do without."""
    if text is None:
        return None
    try:
        if isinstance(iceberg, IntegerType | LongType):
            return int(text)
        if isinstance(iceberg, DateType):
            return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days
        if isinstance(iceberg, DecimalType):
            return Decimal(text)
    except (ValueError, ArithmeticError):
        return None
    return None


def data_file(
    con: duckdb.DuckDBPyConnection,
    readable: str,
    location: str,
    size: int,
    schema: Schema,
    *,
    content: DataFileContent = DataFileContent.DATA,
    partition: Record | None = None,
) -> DataFile:
    """Describe a Parquet file DuckDB wrote, from its footer (read at `readable`, registered as
    `location`): rows, size, per-column counts and (for integers, dates, decimals) bounds."""
    rows = duck.parquet_rows(con, readable)
    by_name = {f.name: f for f in schema.fields}
    by_id = {
        f.field_id: f.field_type for f in schema.fields if isinstance(f.field_type, PrimitiveType)
    }
    sizes: dict[int, int] = {}
    values: dict[int, int] = {}
    nulls: dict[int, int] = {}
    lows: dict[int, Any] = {}
    highs: dict[int, Any] = {}
    if content == DataFileContent.DATA:
        stats = con.execute(
            "select path_in_schema, stats_min_value, stats_max_value, stats_null_count,"
            f" num_values, total_compressed_size from parquet_metadata({duck.quote(readable)})"
        ).fetchall()
        for name, low, high, null_count, count, compressed in stats:
            f = by_name.get(str(name))
            if f is None:
                continue
            fid = f.field_id
            sizes[fid] = sizes.get(fid, 0) + int(compressed or 0)
            values[fid] = values.get(fid, 0) + int(count or 0)
            nulls[fid] = nulls.get(fid, 0) + int(null_count or 0)
            low_value, high_value = _value(f.field_type, low), _value(f.field_type, high)
            if low_value is not None:
                lows[fid] = low_value if fid not in lows else min(lows[fid], low_value)
            if high_value is not None:
                highs[fid] = high_value if fid not in highs else max(highs[fid], high_value)
    lower = {fid: to_bytes(by_id[fid], v) for fid, v in lows.items()}
    upper = {fid: to_bytes(by_id[fid], v) for fid, v in highs.items()}
    return DataFile.from_args(
        content=content,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=partition if partition is not None else Record(),
        record_count=rows,
        file_size_in_bytes=size,
        column_sizes=sizes,
        value_counts=values,
        null_value_counts=nulls,
        nan_value_counts={},
        lower_bounds=lower,
        upper_bounds=upper,
        split_offsets=None,
        equality_ids=None,
        sort_order_id=None,
    )


def export_day(run_started_at: dt.datetime) -> Record:
    """The change log's partition of a run: the day of its start, as Iceberg's day transform
    gives it (days since 1970-01-01)."""
    day = run_started_at.astimezone(dt.UTC).date()
    return Record((day - dt.date(1970, 1, 1)).days)


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _RunSnapshot(_FastAppendFiles):
    """A fast append that may also add position-delete files, in one snapshot."""

    def __init__(self, *args: Any, deletes: Iterable[DataFile] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deletes = list(deletes)

    def _manifests(self) -> list[ManifestFile]:
        manifests = super()._manifests()
        if not self._deletes:
            return manifests
        metadata = self._transaction.table_metadata
        writer = _DeleteManifestWriter(
            metadata.spec(),
            metadata.schema(),
            self.new_manifest_output(),
            self._snapshot_id,
            self._compression,
        )
        with writer:
            for delete in self._deletes:
                writer.add(
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED,
                        snapshot_id=self._snapshot_id,
                        data_file=delete,
                    )
                )
        return [*manifests, writer.to_manifest_file()]

    def _summary(self, snapshot_properties: dict[str, str] | None = None) -> Any:
        # the summary counts delete files among the added ones by their content
        self._added_data_files.extend(self._deletes)
        try:
            return super()._summary(snapshot_properties or {})
        finally:
            del self._added_data_files[len(self._added_data_files) - len(self._deletes) :]


def committed(table: Table, run_id: int) -> bool:
    """Whether the run is in the table already (its tag is set in the same commit)."""
    return tag(run_id) in table.metadata.refs


def commit(
    table: Table,
    run_id: int,
    properties: dict[str, str],
    data_files: list[DataFile],
    delete_files: list[DataFile] = (),  # type: ignore[assignment]
    checksums: dict[str, str] | None = None,
) -> None:
    """One snapshot for the run (the caller checks it is not `committed` yet), tagged
    run-<id>, in a single catalog commit. A table the run leaves unchanged gets the tag on its
    current snapshot. The table is as this run loaded it (one exporter at a time); the catalog
    refuses the commit if another writer moved it meanwhile."""
    summary = {**properties, RUN_ID: str(run_id)}
    if checksums:
        summary[FILES] = json.dumps(checksums, sort_keys=True, separators=(",", ":"))
    with table.transaction() as tx:
        if data_files or delete_files or table.current_snapshot() is None:
            operation = Operation.OVERWRITE if delete_files else Operation.APPEND
            producer = _RunSnapshot(
                operation, tx, table.io, snapshot_properties=summary, deletes=delete_files
            )
            for f in data_files:
                producer.append_data_file(f)
            producer.commit()
        snapshot_id = tx.table_metadata.current_snapshot_id
        assert snapshot_id is not None
        with ManageSnapshots(tx) as refs:
            refs.create_tag(snapshot_id, tag(run_id))


@dataclass
class LiveFiles:
    """What a snapshot of a table consists of."""

    data: list[DataFile]
    deletes: list[DataFile]


def live_files(table: Table, snapshot: Snapshot | None = None) -> LiveFiles:
    snapshot = snapshot or table.current_snapshot()
    files = LiveFiles([], [])
    if snapshot is None:
        return files
    try:
        for manifest in snapshot.manifests(table.io):
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                f = entry.data_file
                (files.data if f.content == DataFileContent.DATA else files.deletes).append(f)
    except Exception as exc:  # pyiceberg's Avro reader fails in many ways on a bad file
        raise ExportError(
            f"cannot read the manifests of table {'.'.join(table.name())} (manifest list "
            f"{snapshot.manifest_list}): {first_line(exc)}; the file is missing or corrupted"
        ) from exc
    return files


def checksums(table: Table) -> dict[str, str]:
    """The SHA-256 the exporter recorded for each file, from the summaries of the snapshots."""
    found: dict[str, str] = {}
    for snapshot in table.snapshots():
        text = (snapshot.summary.additional_properties if snapshot.summary else {}).get(FILES)
        if not text:
            continue
        for name, digest in json.loads(text).items():
            found[name] = digest
    return found


def tagged_runs(table: Table) -> list[int]:
    """The runs committed to a table: the ids of its run-<id> tags."""
    runs = []
    for name in table.metadata.refs:
        suffix = name.rpartition("-")[2]
        if suffix.isdigit() and tag(int(suffix)) == name:
            runs.append(int(suffix))
    return sorted(runs)


def run_snapshot(table: Table, run_id: int) -> Snapshot | None:
    ref = table.metadata.refs.get(tag(run_id))
    return table.snapshot_by_id(ref.snapshot_id) if ref is not None else None


def pairs(house: House) -> list[Pair]:
    """Every exported table's pair in the namespace, by source table."""
    try:
        identifiers = house.catalog.list_tables(house.namespace)
    except NoSuchNamespaceError:
        return []
    by_source: dict[str, dict[str, Table]] = {}
    for identifier in sorted(identifiers):
        table = _load(house, identifier[-1])
        if table is None:
            continue
        source = table.properties.get(SOURCE_TABLE)
        role = table.properties.get(ROLE)
        if source and role in ("current", "changes"):
            by_source.setdefault(source, {})[role] = table
    return [
        Pair(source, roles["current"], roles["changes"])
        for source, roles in sorted(by_source.items())
        if "current" in roles and "changes" in roles
    ]


def remove_run_files(house: House, run_id: int) -> int:
    """Delete what a pending run wrote in every table of the namespace; refused if any table
    has the run committed (its files are referenced then). The number of files removed."""
    found = pairs(house)
    for pair in found:
        for table in (pair.current, pair.changes):
            if committed(table, run_id):
                raise ExportError(
                    f"run {run_id} is committed to {'.'.join(table.name())} already: "
                    "run the exporter to finish it instead"
                )
    removed = 0
    for pair in found:
        for table in (pair.current, pair.changes):
            for location in house.lake.list_files(run_location(table, run_id)):
                house.lake.delete(location)
                removed += 1
    return removed


def paths_sql(target: Lake, paths: list[str]) -> str:
    """A DuckDB list literal of the files at these locations, as DuckDB reads them."""
    return "[" + ", ".join(duck.quote(target.reader_path(p)) for p in paths) + "]"


def current_rows(
    con: duckdb.DuckDBPyConnection,
    target: Lake,
    table: Table,
    select: str,
    name: str,
    files: LiveFiles | None = None,
) -> None:
    """Temp table `name` with `select` over the rows of the table's current snapshot: its data
    files less the positions its delete files name (what any Iceberg reader returns); `files`
    are its live files when the caller has read them already."""
    rows = live_rows_sql(con, target, table, files)
    con.execute(f"create or replace temp view {name}_source as {rows}")
    con.execute(f"create or replace temp table {name} as select {select} from {name}_source")


def name_files(con: duckdb.DuckDBPyConnection, target: Lake, name: str, paths: list[str]) -> None:
    """Temp table file_names_<name>(reader, path): how DuckDB names each file it reads, and
    the path the table's metadata (and its position deletes) give it. Literal values, not
    parameters: DuckDB would import pandas, when installed, for a parameterised statement."""
    rows = ", ".join(f"({duck.quote(target.reader_path(p))}, {duck.quote(p)})" for p in paths)
    con.execute(
        f"create or replace temp table file_names_{name} as"
        f" select * from (values {rows}) as v(reader, path)"
    )


def live_rows_sql(
    con: duckdb.DuckDBPyConnection,
    target: Lake,
    table: Table,
    files: LiveFiles | None = None,
    *,
    columns: list[str] | None = None,
    positions: bool = False,
) -> str:
    """A query of the rows of a snapshot (its data files less the positions its delete files
    name; the current one unless `files` are given), streamed by DuckDB: the table's columns
    (or `columns`; one no file has yet, added since, is null), plus each row's `file_path`
    and `pos` with positions=True. It fills the temp table file_names_live."""
    files = files if files is not None else live_files(table)
    wanted = [f for f in table.schema().fields if columns is None or f.name in columns]
    extra = ", n.path as file_path, s.file_row_number as pos" if positions else ""
    if not files.data:
        empty, _ = select_list(Schema(*wanted), {})
        extra = ", NULL::VARCHAR as file_path, NULL::BIGINT as pos" if positions else ""
        return f"select * from (select {empty}{extra}) s where false"
    data = paths_sql(target, [f.file_path for f in files.data])
    stored = {
        str(r[0])
        for r in con.execute(
            f"describe select * from read_parquet({data}, union_by_name = true)"
        ).fetchall()
    }
    select = ", ".join(
        f's."{f.name}"'
        if f.name in stored
        else f'CAST(NULL AS {duck_type(f.field_type)}) AS "{f.name}"'
        for f in wanted
    )
    name_files(con, target, "live", [f.file_path for f in files.data])
    deleted = ""
    if files.deletes:
        deleted = (
            " where (n.path, s.file_row_number) not in (select file_path, pos from"
            f" read_parquet({paths_sql(target, [f.file_path for f in files.deletes])}))"
        )
    return (
        f"select {select}{extra} from read_parquet({data}, filename = true,"
        " file_row_number = true, union_by_name = true) s"
        f" join file_names_live n on n.reader = s.filename{deleted}"
    )


# --- compaction -----------------------------------------------------------------------------

COMPACT_DELETED_SHARE = 0.3  # rewrite once this share of the stored rows is deleted
COMPACT_FILES = 200  # or once the snapshot has this many data and delete files


def needs_compaction(table: Table) -> bool:
    """Whether readers of the current state now do too much work for what it holds."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return False
    summary = snapshot.summary.additional_properties
    records = int(summary.get("total-records", 0))
    deleted = int(summary.get("total-position-deletes", 0))
    files = int(summary.get("total-data-files", 0)) + int(summary.get("total-delete-files", 0))
    return records > 0 and (deleted / records >= COMPACT_DELETED_SHARE or files >= COMPACT_FILES)


class _Replace(_RunSnapshot):
    """A snapshot of new files only: every file of the previous one leaves it (compaction)."""

    def __init__(self, *args: Any, removed: Iterable[DataFile] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for f in removed:
            self.delete_data_file(f)  # counted out of the summary's totals

    def _existing_manifests(self) -> list[ManifestFile]:
        return []


def replace_files(
    table: Table, properties: dict[str, str], data_files: list[DataFile], removed: LiveFiles
) -> None:
    """Commit the table's rows rewritten as `data_files`, without its delete files; older
    snapshots (and the run tags on them) keep their files for time travel."""
    with table.transaction() as tx:
        producer = _Replace(
            Operation.OVERWRITE,
            tx,
            table.io,
            snapshot_properties=properties,
            removed=[*removed.data, *removed.deletes],
        )
        for f in data_files:
            producer.append_data_file(f)
        producer.commit()
