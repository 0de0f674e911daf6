"""The files a run or a rewrite puts in the lake: Parquet that DuckDB wrote, described for
Iceberg from its own footer (rows, sizes, per-column counts and bounds), so no second reader
is needed; and the record of where each one is and what it is (size, SHA-256), which
PostgreSQL keeps for resumed runs and for `verify`."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import duckdb
from pyiceberg.conversions import to_bytes
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.typedef import Record
from pyiceberg.types import DateType, DecimalType, IcebergType, IntegerType, LongType, PrimitiveType

from exporter import duck
from exporter.storage import Storage


@dataclass
class Written:
    """A lake file the exporter wrote: where it is, and what it is."""

    location: str
    bytes: int
    sha256: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Written:
        return cls(
            str(data["location"]), int(data["bytes"]), str(data["sha256"]), int(data["rows"])
        )


def describe(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    schema: Schema,
    written: list[Written],
    *,
    partition: Record | None = None,
    content: DataFileContent = DataFileContent.DATA,
) -> list[DataFile]:
    """The Iceberg description of each written file."""
    return [
        data_file(
            con,
            storage.reader_path(w.location),
            w.location,
            w.bytes,
            schema,
            partition=partition,
            content=content,
        )
        for w in written
    ]


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
