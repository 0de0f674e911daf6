"""Position-delete files scoped to one data file each, as Iceberg's own writers have made them
since 1.5 and as deletion vectors require: a reader then opens, for each data file, only the
delete files that name it, and readers that cannot apply a delete file naming several data
files (polars' own reader) can read the table natively. A file's `file_path` bounds are that
one data file's location (exporter/datafiles.py), which is how readers know it.

A delete file's name comes from the data file it names, so a commit built again (after a
concurrent commit, or by a resumed run) writes the same file over the same location. A run's
delete file of a data file also takes the positions of the one before it and replaces it (as
Iceberg's deletion vectors are kept): a data file has one delete file, and a reader opens no
more delete files than there are data files."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from pyiceberg.conversions import from_bytes, to_bytes
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.typedef import Record
from pyiceberg.types import LongType, StringType

from exporter import duck, layout
from exporter.datafiles import Written
from exporter.sqltext import literal
from exporter.storage import Storage, sha256_of

FIELD_IDS = f"{{'file_path': {layout.FILE_PATH_ID}, 'pos': {layout.POS_ID}}}"


def name_for(data_file: str) -> str:
    """The delete file's name for the data file at this location."""
    return f"deletes-{hashlib.sha256(data_file.encode()).hexdigest()[:20]}.parquet"


@dataclass(frozen=True)
class DeleteFile:
    """A position-delete file written: the file, and the data file and positions it names."""

    written: Written
    data_file: str
    first: int
    last: int

    def describe(self) -> DataFile:
        """Its Iceberg description, from what writing it learned (no second read): whole
        `file_path` bounds, the one data file it names, and its position range."""
        path, pos = layout.FILE_PATH_ID, layout.POS_ID
        return DataFile.from_args(
            content=DataFileContent.POSITION_DELETES,
            file_path=self.written.location,
            file_format=FileFormat.PARQUET,
            partition=Record(),
            record_count=self.written.rows,
            file_size_in_bytes=self.written.bytes,
            column_sizes={},
            value_counts={path: self.written.rows, pos: self.written.rows},
            null_value_counts={path: 0, pos: 0},
            nan_value_counts={},
            lower_bounds={
                path: to_bytes(StringType(), self.data_file),
                pos: to_bytes(LongType(), self.first),
            },
            upper_bounds={
                path: to_bytes(StringType(), self.data_file),
                pos: to_bytes(LongType(), self.last),
            },
            split_offsets=None,
            equality_ids=None,
            sort_order_id=None,
        )


@dataclass
class Outcome:
    """What `write` did: the delete files it wrote, and the live ones they take the place of."""

    files: list[DeleteFile]
    replaced: list[DataFile]


def write(
    con: duckdb.DuckDBPyConnection,
    storage: Storage,
    positions: str,
    staged: Path,
    location: Callable[[str], str],
    live: list[DataFile] | None = None,
) -> Outcome:
    """The rows of `positions` (a query of file_path and pos) as one delete file per data file
    they name, in position order, each put at `location(name)`; staged in the folder
    `staged`, which is removed after. `live`: the table's delete files now; those scoped to a
    data file the new positions name are merged into its new file and replaced by it, so that
    a data file has one delete file at most, as it has one deletion vector."""
    staged.mkdir(parents=True, exist_ok=True)
    try:
        con.execute(
            f"create or replace temp table scoped_positions as select distinct * from ({positions})"
        )
        named = {
            str(p)
            for (p,) in con.execute("select distinct file_path from scoped_positions").fetchall()
        }
        replaced = [d for d in live or [] if referenced(d) in named]
        if replaced:
            paths = (
                "[" + ", ".join(literal(storage.reader_path(d.file_path)) for d in replaced) + "]"
            )
            con.execute(
                "insert into scoped_positions select file_path, pos from read_parquet("
                f"{paths}) except select file_path, pos from scoped_positions"
            )
        scopes = con.execute(
            "select file_path, min(pos), max(pos) from scoped_positions group by 1 order by 1"
        ).fetchall()
        files = []
        for path, first, last in scopes:
            name = name_for(str(path))
            file = staged / name
            rows = duck.write_parquet(
                con,
                "select file_path, pos from scoped_positions"
                f" where file_path = {literal(str(path))} order by pos",
                file,
                field_ids=FIELD_IDS,
            )
            at = location(name)
            size, digest = file.stat().st_size, sha256_of(file)
            storage.put_file(file, at)
            files.append(DeleteFile(Written(at, size, digest, rows), str(path), first, last))
        return Outcome(files, replaced)
    finally:
        con.execute("drop table if exists scoped_positions")
        shutil.rmtree(staged, ignore_errors=True)


def referenced(delete_file: DataFile) -> str | None:
    """The one data file a position-delete file names, by its `file_path` bounds; None for a
    file naming several (or without bounds: an earlier version's, another engine's)."""
    lower = (delete_file.lower_bounds or {}).get(layout.FILE_PATH_ID)
    upper = (delete_file.upper_bounds or {}).get(layout.FILE_PATH_ID)
    if lower is None or lower != upper:
        return None
    try:
        return str(from_bytes(StringType(), lower))
    except UnicodeDecodeError:
        return None


def most_per_data_file(deletes: list[DataFile]) -> int:
    """The most delete files any one data file has (a reader opens them all for it); a file
    naming several data files counts as two, reason enough to merge them into scoped ones."""
    if any(referenced(d) is None for d in deletes):
        return max(len(deletes), 2)
    counts = Counter(referenced(d) for d in deletes)
    return max(counts.values(), default=0)
