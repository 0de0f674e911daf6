"""The lake's schemas: which Iceberg type each source column is stored as, how a table's schema
follows its source (renamed and added columns, widened and replaced types), and the select
list that writes a file of a schema. Pure: no I/O but the schema updates it commits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyiceberg.schema import Schema
from pyiceberg.table import Table
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

from exporter.errors import ExportError
from exporter.layout import CHANGE_COLUMNS, DELETED_COLUMN, EXPORTED_AT_COLUMN, RUN_COLUMN
from exporter.sqltext import identifier, lake_name, literal

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


@dataclass
class Evolution:
    """What one source table's lake tables need before this run's files are written: the
    source's columns (none: the tables follow them already) and the renames since the target
    last committed the table (exporter/ddl.py)."""

    source: str
    columns: dict[str, PrimitiveType]  # the source's columns, in order, as Iceberg types
    renames: dict[str, str] = field(default_factory=dict)  # old name -> new name


def plan_evolution(
    source: str, columns: dict[str, PrimitiveType], renames: dict[str, str] | None = None
) -> Evolution:
    """The evolution for these source columns; raise, before anything is committed, for a
    column whose name is one of the change log's own."""
    for name in columns:
        if name in CHANGE_COLUMNS:
            raise ExportError(
                f"{source}.{name}: the column name is the change log's own; rename the column"
            )
    return Evolution(source, columns, dict(renames or {}))


MAX_NAME = 63  # the longest plain name (exporter/sqltext.py)


def retired_name(name: str, run_id: int, taken: set[str]) -> str:
    """The name a replaced column keeps its values under: `<name>_before_run_<id>`, the name
    cut to fit, a number added while the name is taken."""
    suffix = f"_before_run_{run_id}"
    candidate, n = name[: MAX_NAME - len(suffix)] + suffix, 1
    while candidate in taken:
        n += 1
        extra = f"{suffix}_{n}"
        candidate = name[: MAX_NAME - len(extra)] + extra
    return candidate


def apply(table: Table, evolution: Evolution, run_id: int) -> Table:
    """Bring one lake table's schema to the source's, from what the table has now, so that a
    run killed half-way through (or a table evolved before its pair) finds only what is left:
    renames by the source's column identity; a column whose lake type cannot hold the source's
    (a decimal's scale, text to integer) replaced: the old field keeps its id and values under
    `retired_name`, the source's name gets a new field; new columns added and promotable types
    widened. Field ids agree between a pair's tables: both get the same changes in the same
    order. A column the source dropped stays (older versions hold its values; newer are null)."""
    if not evolution.columns:
        return table
    fields = {f.name: f for f in table.schema().fields}
    for old, new in evolution.renames.items():
        if old in fields and new not in fields:
            with table.update_schema() as update:
                update.rename_column(old, new)
            fields = {f.name: f for f in table.schema().fields}
    for name, source_type in evolution.columns.items():
        lake = fields.get(name)
        if lake is None or holds(lake.field_type, source_type):
            continue
        if not widens_to(lake.field_type, source_type):
            with table.update_schema() as update:
                update.rename_column(name, retired_name(name, run_id, set(fields)))
            fields = {f.name: f for f in table.schema().fields}
    add = [n for n in evolution.columns if n not in fields]
    widen = [
        n
        for n in evolution.columns
        if n in fields and not holds(fields[n].field_type, evolution.columns[n])
    ]
    if add or widen:
        with table.update_schema() as update:
            for name in add:
                update.add_column(name, evolution.columns[name])
            for name in widen:
                update.update_column(name, field_type=evolution.columns[name])
    return table


def new_schema(columns: dict[str, PrimitiveType], with_change_columns: bool) -> Schema:
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


def select_list(
    schema: Schema, expressions: dict[str, str], *, table: str | None
) -> tuple[str, str]:
    """The select list writing a file of `schema` (each column cast to its Iceberg type; a
    column the source no longer has is null) and DuckDB's FIELD_IDS option for it. The schema
    is lake table `table`'s, read from its metadata: a field name that is not plain is refused
    (sqltext.lake_name); `expressions` are the caller's SQL, their names quoted already."""
    parts, ids = [], []
    for f in schema.fields:
        name = lake_name(table, "a field named", f.name)
        expression = expressions.get(name, "NULL")
        parts.append(f"CAST({expression} AS {duck_type(f.field_type)}) AS {identifier(name)}")
        ids.append(f"{literal(name)}: {int(f.field_id)}")
    return ", ".join(parts), "{" + ", ".join(ids) + "}"
