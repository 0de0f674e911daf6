"""One export run, all-or-nothing: the plain function the CLI and the Lambda handler call.

1. bounds for every table, then a pending run with its windows, committed in PostgreSQL;
2. each window through DuckDB to Parquet, in chunks of bounded size, at locations that depend
   only on run, table and chunk; each chunk recorded (size, SHA-256) once it is in place;
3. each table's snapshot committed in its Iceberg tables, tagged run-<id>; a table that has
   the tag already is skipped;
4. the target's watermarks advanced and the run marked committed, in one transaction.
A crash anywhere leaves a pending run, which the next run resumes with the same windows and
chunks: chunks already in place with their checksum are kept, the rest written again over the
same locations, so no table ever references a file twice or a file of a dead attempt.
Before anything is written, the lake must mirror this database, and every source table's
schema must be one its lake tables can follow.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg.rows import TupleRow
from pyiceberg.manifest import DataFile, DataFileContent
from pyiceberg.table import Table

from animedb import db
from exporter import duck, iceberg, lake, protocol
from exporter.errors import ExportError
from exporter.tables import TOMBSTONES, ExportedTable, load_tables

DEFAULT_SETTLE = dt.timedelta(seconds=1)
PAUSE_VARIABLE = "ANIMEDB_EXPORT_PAUSE_AT"
CHUNK_ROWS_VARIABLE = "ANIMEDB_EXPORT_CHUNK_ROWS"
DEFAULT_CHUNK_ROWS = 1_000_000  # about 30-130 MB of zstd Parquet: a split for Athena, flat memory
CHUNK_WORKERS = 2  # chunks of a large window written at once
STEPS = ("after_pending", "during_files", "after_files", "between_commits", "after_commits")


@dataclass
class TableResult:
    table: str
    load_type: str
    lo: str
    hi: str
    deferred: str | None = None
    rows: int = 0  # row versions the run brought
    deletes: int = 0  # deletes the run brought
    files: int = 0
    bytes: int = 0
    kept_chunks: int = 0  # chunks a resumed run found in place
    seconds: float = 0.0


@dataclass
class RunSummary:
    run_id: int
    target: str
    catalog: str
    namespace: str
    resumed: bool
    bound_time: str
    seconds: float
    tables: list[TableResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = self.rows
        return data


class Progress:
    """What a run reports while it works; the CLI draws it, Lambda and --quiet ignore it."""

    wants_rows = False  # whether to watch a running COPY's row count (costs a connection)

    def table_started(self, table: str, estimated_rows: int | None) -> None: ...

    def rows_copied(self, table: str, rows: int) -> None: ...

    def table_done(self, result: TableResult) -> None: ...

    def message(self, text: str) -> None: ...


def _pause_if_asked(step: str) -> None:
    """Fault injection for the crash and fault tests: ANIMEDB_EXPORT_PAUSE_AT=<step> stops the
    run at that protocol step until it is killed; <step>:<seconds> pauses, then goes on."""
    asked, _, seconds = os.environ.get(PAUSE_VARIABLE, "").partition(":")
    if asked == step:
        print(f"paused at {step}", file=sys.stderr, flush=True)
        time.sleep(float(seconds) if seconds else 3600)


def _encode(value: int | dt.datetime) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def chunk_rows() -> int:
    text = os.environ.get(CHUNK_ROWS_VARIABLE)
    if not text:
        return DEFAULT_CHUNK_ROWS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ExportError(f"{CHUNK_ROWS_VARIABLE}={text!r} is not a positive number of rows")
    return value


class _CopyWatcher:
    """Rows a running COPY has sent, read from pg_stat_progress_copy by a side connection."""

    def __init__(self, settings: db.Settings, progress: Progress, table: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, args=(settings, progress, table), daemon=True
        )

    def _watch(self, settings: db.Settings, progress: Progress, table: str) -> None:
        try:
            with protocol.connect(settings, "progress") as conn:
                while not self._stop.wait(0.5):
                    row = conn.execute(
                        "select sum(p.tuples_processed) from pg_stat_progress_copy p"
                        " join pg_stat_activity a on a.pid = p.pid"
                        " where a.application_name = %s",
                        (duck.READER_APPLICATION,),
                    ).fetchone()
                    if row and row[0] is not None:
                        progress.rows_copied(table, int(row[0]))
        except (ExportError, psycopg.Error):
            return  # progress is a courtesy; the export itself reports real failures

    def __enter__(self) -> _CopyWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _first_load(window: protocol.Window) -> bool:
    """A window that starts at the beginning of the table: all of it is read."""
    if isinstance(window.lo, dt.datetime):
        return window.lo <= protocol.EPOCH
    return window.lo == 0


def _estimate(
    conn: psycopg.Connection[TupleRow], table: ExportedTable, window: protocol.Window
) -> int | None:
    """Rows to expect, when cheap to know: the planner's estimate for a first full load."""
    if not _first_load(window):
        return None
    row = conn.execute(
        "select reltuples::bigint from pg_class where oid = %s::regclass", (table.name,)
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


def _start_or_resume(
    conn: psycopg.Connection[TupleRow],
    house: iceberg.House,
    tables: list[ExportedTable],
    settle: dt.timedelta,
    progress: Progress,
) -> protocol.PendingRun:
    run = protocol.pending_run(conn)
    if run is not None:
        if run.target != house.key:
            raise ExportError(
                f"run {run.run_id} to {run.target} did not finish: run the exporter with "
                f"that target to complete it, or `exporter abandon {run.run_id}`"
            )
        progress.message(f"resuming run {run.run_id} with its recorded windows")
        return run
    bounds = protocol.read_time_bound(conn, settle)
    protocol.read_id_bounds(conn, tables, bounds)
    if bounds.blocker is not None:
        b = bounds.blocker
        progress.message(
            f"bound held back to {b.xact_start:%H:%M:%S} by pid {b.pid}"
            f" ({b.application_name or 'no name'},"
            f" {b.state}) whose transaction is still open"
        )
    return protocol.record_pending_run(
        conn, house.key, bounds, protocol.plan_windows(tables, bounds)
    )


@dataclass
class _Written:
    """A lake file of this run: where it is, and what it is."""

    location: str
    bytes: int
    sha256: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Written:
        return cls(
            str(data["location"]), int(data["bytes"]), str(data["sha256"]), int(data["rows"])
        )


@dataclass
class _TableFiles:
    """What one table's window became: files for the change log and for the current state."""

    changes: list[_Written] = field(default_factory=list)
    current: list[_Written] = field(default_factory=list)
    rows: int = 0
    deletes: int = 0
    kept: int = 0


@dataclass
class _TableRun:
    """One table's share of the run: its window, its lake tables, and what it became."""

    table: ExportedTable
    window: protocol.Window
    pair: iceberg.Pair
    files: _TableFiles = field(default_factory=_TableFiles)
    seconds: float = 0.0  # writing its files, then committing them

    @property
    def result(self) -> TableResult:
        window, files = self.window, self.files
        written = files.changes + files.current
        return TableResult(
            self.table.name,
            window.load_type,
            _encode(window.lo),
            _encode(window.hi),
            window.deferred,
            rows=files.rows,
            deletes=files.deletes,
            files=len(written),
            bytes=sum(w.bytes for w in written),
            kept_chunks=files.kept,
            seconds=self.seconds,
        )


class _Export:
    """The files and commits of one run, table by table (steps 2 and 3)."""

    def __init__(
        self,
        conn: psycopg.Connection[TupleRow],
        con: duckdb.DuckDBPyConnection,
        target: lake.Lake,
        run: protocol.PendingRun,
        settings: db.Settings,
        progress: Progress,
    ) -> None:
        self.conn, self.con, self.lake, self.run = conn, con, target, run
        self.settings, self.progress = settings, progress
        self.tombstones = run.windows.get(TOMBSTONES)
        self.exported_at = protocol.cursor_literal(run.started_at)
        self.partition = iceberg.export_day(run.started_at)

    # --- step 2: files ---------------------------------------------------------------------

    def write_tables(self, tables: list[_TableRun]) -> None:
        """Every table's window in files, table by table, with progress."""
        for t in tables:
            name = t.table.name
            estimate = _estimate(self.conn, t.table, t.window)
            self.progress.table_started(name, estimate)
            clock = time.monotonic()
            watcher = (
                _CopyWatcher(self.settings, self.progress, name)
                if self.progress.wants_rows and not t.window.empty
                else contextlib.nullcontext()
            )
            with watcher:
                t.files = self.write(t.pair, t.table, t.window, estimate)
            t.seconds = time.monotonic() - clock

    def _location(self, table: Any, name: str) -> str:
        return iceberg.run_location(table, self.run.run_id, name)

    def _put(self, staged: Any, location: str, rows: int) -> _Written:
        size, digest = staged.stat().st_size, lake.sha256_of(staged)
        self.lake.put_file(staged, location)
        return _Written(location, size, digest, rows)

    def _file(self, query: str, staged_name: str, location: str, field_ids: str) -> _Written | None:
        """The rows of `query` as one Parquet file at `location` (staged as `staged_name`);
        None when it has no rows, and then no file there (an earlier try's is deleted)."""
        staged = self.lake.staging_path(staged_name)
        try:
            rows = duck.copy_to_parquet(self.con, query, staged, field_ids=field_ids)
            if not rows:
                self.lake.delete(location)
                return None
            return self._put(staged, location, rows)
        finally:
            staged.unlink(missing_ok=True)

    def _in_place(self, chunk: protocol.Chunk) -> bool:
        if chunk.files is None:
            return False
        return all(
            self.lake.has_file(w.location, w.bytes, w.sha256)
            for w in map(_Written.from_json, chunk.files.values())
        )

    def _ranges(
        self,
        table: ExportedTable,
        window: protocol.Window,
        rows_per_chunk: int,
        estimate: int | None,
    ) -> list[tuple[int | None, int | None]]:
        """Key ranges of rows_per_chunk rows each, cut at the window's real keys (ids with gaps
        still give bounded files); one open range for a window that fits one chunk. `estimate`:
        the window's rows as `_estimate` gives them."""
        from psycopg import sql

        condition = sql.SQL(window.condition(table.cursor_column))  # type: ignore[arg-type,unused-ignore]
        # most windows fit one chunk: counting stops one row past the chunk size (a first load
        # of a table the planner knows to be far larger goes straight to the cut points)
        if (estimate or 0) <= 2 * rows_per_chunk:
            row = self.conn.execute(
                sql.SQL("select count(*) from (select from {t} where ").format(t=table.identifier())
                + condition
                + sql.SQL(" limit {}) as w").format(sql.Literal(rows_per_chunk + 1))
            ).fetchone()
            if not row or row[0] == 0:
                return []
            if row[0] <= rows_per_chunk:
                return [(None, None)]
        # the cut points: every N-th key of the window, ranked by DuckDB over a parallel scan
        # of the key column alone (PostgreSQL's own ranking reads the index one row at a time)
        k = f'"{table.key_column}"'
        self.con.execute("SET pg_use_ctid_scan = true")
        cuts = self.con.execute(
            f"select min(k), max(k), count(*) from (select {k} as k, row_number() over"
            f" (order by {k}) as n from {table.duckdb_name('pg')}"
            f" where {window.condition(table.cursor_column)})"
            f" group by (n - 1) // {rows_per_chunk} order by 1"
        ).fetchall()
        if len(cuts) <= 1:
            return [(None, None)] if cuts else []
        starts = [int(c[0]) for c in cuts]
        ends = [s - 1 for s in starts[1:]] + [int(cuts[-1][1])]
        return list(zip(starts, ends, strict=True))

    def _write_chunk(
        self,
        pair: iceberg.Pair,
        table: ExportedTable,
        window: protocol.Window,
        chunk: protocol.Chunk,
        single: bool,
        con: duckdb.DuckDBPyConnection,
    ) -> protocol.Chunk:
        """One chunk's file, in both tables; the caller records it (etl.export_chunks)."""
        where = window.condition(table.cursor_column)
        if chunk.key_lo is not None and chunk.key_hi is not None:
            where += f' and "{table.key_column}" between {chunk.key_lo} and {chunk.key_hi}'
        source = {c: f'"{c}"' for c in table.columns}
        changes_select, changes_ids = iceberg.select_list(
            pair.changes.schema(),
            {
                **source,
                iceberg.RUN_COLUMN: str(self.run.run_id),
                iceberg.DELETED_COLUMN: "false",
                iceberg.EXPORTED_AT_COLUMN: self.exported_at,
            },
        )
        name = f"chunk-{chunk.chunk:05d}.parquet"
        staged_changes = self.lake.staging_path(f"{table.lake_name}_changes_{name}")
        staged_current = self.lake.staging_path(f"{table.lake_name}_{name}")
        changes_at = self._location(pair.changes, name)
        current_at = self._location(pair.current, name)
        try:
            rows = duck.copy_to_parquet(
                con,
                f"select {changes_select} from {table.duckdb_name('pg')} where {where}",
                staged_changes,
                parallel_scan=single and _first_load(window),
                field_ids=changes_ids,
            )
            files: dict[str, Any] = {}
            if rows:
                # the same file serves both tables (their field ids agree): a copy, not a
                # second write
                _duplicate(staged_changes, staged_current)
                files["changes"] = self._put(staged_changes, changes_at, rows).to_json()
                files["current"] = self._put(staged_current, current_at, rows).to_json()
            for location in (changes_at, current_at):  # what an earlier try left, if any
                if location not in {f["location"] for f in files.values()}:
                    self.lake.delete(location)
        finally:
            staged_changes.unlink(missing_ok=True)
            staged_current.unlink(missing_ok=True)
        chunk.files, chunk.rows = files, rows
        return chunk

    def _recorded(self, chunk: protocol.Chunk) -> protocol.Chunk:
        """A chunk whose files are in place, recorded as such (then the crash point)."""
        protocol.record_chunk(self.conn, self.run.run_id, chunk)
        _pause_if_asked("during_files")
        return chunk

    def _has_deletes(self, table: ExportedTable) -> bool:
        """Whether the run brings deletes of this table (its tombstone window is not empty)."""
        window = self.tombstones
        return window is not None and not window.empty and table.name != TOMBSTONES

    def _write_deletes(
        self,
        pair: iceberg.Pair,
        table: ExportedTable,
        out: _TableFiles,
        recorded: list[protocol.Chunk],
    ) -> None:
        """The run's deletes of this table, as change-log rows (key, _deleted = true);
        `recorded`: the table's chunks of the run as etl.export_chunks had them."""
        window = self.tombstones
        if window is None or not self._has_deletes(table):
            return
        done = [c for c in recorded if c.chunk == DELETES_CHUNK and self._in_place(c)]
        if done:
            chunk = done[0]
        else:
            select, ids = iceberg.select_list(
                pair.changes.schema(),
                {
                    table.key_column: "key_value",
                    iceberg.RUN_COLUMN: str(self.run.run_id),
                    iceberg.DELETED_COLUMN: "true",
                    iceberg.EXPORTED_AT_COLUMN: self.exported_at,
                },
            )
            written = self._file(
                f"select {select} from pg.etl.tombstones where table_name = '{table.name}'"
                f" and {window.condition('tombstone_id')}",
                f"{table.lake_name}_changes_deletes.parquet",
                self._location(pair.changes, "deletes.parquet"),
                ids,
            )
            files = {"changes": written.to_json()} if written else {}
            rows = written.rows if written else 0
            chunk = protocol.Chunk(table.name, DELETES_CHUNK, None, None, files, rows)
            protocol.record_chunk(self.conn, self.run.run_id, chunk)
        out.deletes = chunk.rows
        out.changes += [_Written.from_json(f) for f in (chunk.files or {}).values()]

    def write(
        self,
        pair: iceberg.Pair,
        table: ExportedTable,
        window: protocol.Window,
        estimate: int | None,
    ) -> _TableFiles:
        """A table's window in files (`estimate`: its rows as `_estimate` gives them)."""
        out = _TableFiles()
        chunks: list[protocol.Chunk] = []
        if not window.empty or self._has_deletes(table):
            chunks = protocol.chunks(self.conn, self.run.run_id, table.name)
        if not window.empty:
            recorded = [c for c in chunks if c.chunk != DELETES_CHUNK]
            if not recorded:
                ranges = self._ranges(table, window, chunk_rows(), estimate)
                planned = protocol.plan_chunks(self.conn, self.run.run_id, table.name, ranges)
                # with no rows to cut, all a resumed run finds is the deletes' own chunk
                recorded = [c for c in planned if c.chunk != DELETES_CHUNK]
            single = len(recorded) == 1
            kept = [c for c in recorded if self._in_place(c)]
            out.kept = len(kept)
            todo = [c for c in recorded if c not in kept]
            for chunk in [*kept, *self._write_chunks(pair, table, window, todo, single)]:
                files = chunk.files or {}
                if "changes" in files:
                    out.changes.append(_Written.from_json(files["changes"]))
                if "current" in files:
                    out.current.append(_Written.from_json(files["current"]))
                out.rows += chunk.rows
        self._write_deletes(pair, table, out, chunks)
        return out

    def _write_chunks(
        self,
        pair: iceberg.Pair,
        table: ExportedTable,
        window: protocol.Window,
        todo: list[protocol.Chunk],
        single: bool,
    ) -> Iterator[protocol.Chunk]:
        """Write chunks, CHUNK_WORKERS at a time (each over its own DuckDB connection, so that
        PostgreSQL reads and Parquet writes overlap), recording each one as it is in place."""
        if len(todo) <= 1:
            for chunk in todo:
                chunk = self._write_chunk(pair, table, window, chunk, single, self.con)
                yield self._recorded(chunk)
            return
        cursors = [duck.cursor(self.con) for _ in range(min(CHUNK_WORKERS, len(todo)))]
        free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        for cursor in cursors:
            free.put(cursor)

        def work(chunk: protocol.Chunk) -> protocol.Chunk:
            cursor = free.get()
            try:
                return self._write_chunk(pair, table, window, chunk, single, cursor)
            finally:
                free.put(cursor)

        try:
            with concurrent.futures.ThreadPoolExecutor(len(cursors)) as pool:
                # at most one chunk per worker in flight: a killed run leaves little unrecorded
                pending = collections.deque(pool.submit(work, c) for c in todo[: len(cursors)])
                waiting = collections.deque(todo[len(cursors) :])
                while pending:
                    chunk = pending.popleft().result()
                    if waiting:
                        pending.append(pool.submit(work, waiting.popleft()))
                    yield self._recorded(chunk)
        finally:
            for cursor in cursors:
                cursor.close()

    # --- step 3: commits --------------------------------------------------------------------

    def commit_tables(self, tables: list[_TableRun]) -> None:
        """Every table's snapshots, table by table, each table done when both are in."""
        for i, t in enumerate(tables):
            clock = time.monotonic()
            self.commit(t.pair, t.table, t.window, t.files)
            t.seconds += time.monotonic() - clock
            self.progress.table_done(t.result)
            if i == 0:
                _pause_if_asked("between_commits")

    def _described(
        self,
        table: Any,
        written: list[_Written],
        *,
        partition: Any = None,
        content: DataFileContent = DataFileContent.DATA,
    ) -> list[DataFile]:
        return [
            iceberg.data_file(
                self.con,
                self.lake.reader_path(w.location),
                w.location,
                w.bytes,
                table.schema(),
                partition=partition,
                content=content,
            )
            for w in written
        ]

    def _position_deletes(
        self, pair: iceberg.Pair, table: ExportedTable, out: _TableFiles
    ) -> list[_Written]:
        """One position-delete file: the rows of the current state that this run's versions
        and deletes replace (positions already deleted left out). This run's own files need
        none: a delete inside its tombstone window committed before its bound, so before any
        of its reads, and keys are never reused."""
        live = iceberg.live_files(pair.current)
        if not live.data:
            return []
        key = f'"{table.key_column}"'
        touched = []
        if out.current:
            new_files = iceberg.paths_sql(self.lake, [w.location for w in out.current])
            touched.append(f"select {key} as k from read_parquet({new_files})")
        if self.tombstones is not None and not self.tombstones.empty:
            touched.append(
                f"select key_value as k from pg.etl.tombstones where table_name ="
                f" '{table.name}' and {self.tombstones.condition('tombstone_id')}"
            )
        if not touched:
            return []
        self.con.execute("create or replace temp table touched as " + " union ".join(touched))
        rows_now = iceberg.live_rows_sql(
            self.con, self.lake, pair.current, live, columns=[table.key_column], positions=True
        )
        query = (
            f"select file_path, pos from ({rows_now}) r"
            f" where r.{key} in (select k from touched) order by 1, 2"
        )
        written = self._file(
            query,
            f"{table.lake_name}_deletes.parquet",
            self._location(pair.current, "deletes.parquet"),
            f"{{'file_path': {iceberg.FILE_PATH_ID}, 'pos': {iceberg.POS_ID}}}",
        )
        return [written] if written else []

    def commit(
        self, pair: iceberg.Pair, table: ExportedTable, window: protocol.Window, out: _TableFiles
    ) -> None:
        properties = {
            iceberg.WINDOW: json.dumps(window.to_json(), sort_keys=True),
            iceberg.BOUND_TIME: self.run.bound_time.isoformat(),
            iceberg.SOURCE_TABLE: table.name,
        }
        if not iceberg.committed(pair.changes, self.run.run_id):
            iceberg.commit(
                pair.changes,
                self.run.run_id,
                properties,
                self._described(pair.changes, out.changes, partition=self.partition),
                checksums=_checksums(out.changes),
            )
        if not iceberg.committed(pair.current, self.run.run_id):
            data = self._described(pair.current, out.current)
            deletes = self._position_deletes(pair, table, out)
            iceberg.commit(
                pair.current,
                self.run.run_id,
                properties,
                data,
                self._described(pair.current, deletes, content=DataFileContent.POSITION_DELETES),
                checksums=_checksums(out.current + deletes),
            )
        if iceberg.needs_compaction(pair.current):
            self._compact(pair, table)

    def _compact(self, pair: iceberg.Pair, table: ExportedTable) -> None:
        """Rewrite the current state without its deleted rows, in files of the chunk size, so
        that reading it costs what it holds, not every version ever exported."""
        current = pair.current
        live = iceberg.live_files(current)
        query = iceberg.live_rows_sql(self.con, self.lake, current, live)
        fields = current.schema().fields
        select, ids = iceberg.select_list(current.schema(), {f.name: f'"{f.name}"' for f in fields})
        rows_per_file = chunk_rows()
        group = min(rows_per_file, 122_880)  # DuckDB's row group, smaller for small chunks
        per_file = max(1, rows_per_file // group)
        staged = self.lake.staging_path(f"{table.lake_name}_compacted")
        shutil.rmtree(staged, ignore_errors=True)
        folder = iceberg.run_location(current, self.run.run_id, compaction=True)
        for location in self.lake.list_files(folder):  # what a killed try left
            self.lake.delete(location)
        try:
            duck.copy_to_parquet(
                self.con,
                f"select {select} from ({query}) s",
                staged,
                field_ids=ids,
                options=f"ROW_GROUP_SIZE {group}, ROW_GROUPS_PER_FILE {per_file}",
            )
            written = [
                self._put(path, f"{folder}/{path.name}", 0)
                for path in sorted(staged.glob("*.parquet"))
            ]
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        files = self._described(current, written)
        iceberg.replace_files(
            current,
            {
                iceberg.RUN_ID: str(self.run.run_id),
                iceberg.COMPACTED_BY: str(self.run.run_id),
                iceberg.FILES: json.dumps(_checksums(written), sort_keys=True),
            },
            files,
            live,
        )
        self.progress.message(
            f"{table.name}: current state compacted into {len(files)} file(s)"
            f" ({sum(f.record_count for f in files):,} rows)"
        )


DELETES_CHUNK = -1  # etl.export_chunks' row for a run's delete rows of a table


def _duplicate(source: Path, copy: Path) -> None:
    """A copy of a staged file (the kernel copies it; no link: each table owns its files)."""
    shutil.copyfile(source, copy)


def _checksums(written: list[_Written]) -> dict[str, str]:
    return {w.location: w.sha256 for w in written}


def _evolution(
    con: duckdb.DuckDBPyConnection, table: ExportedTable, current: Table | None
) -> iceberg.Evolution:
    columns = {
        name: iceberg.iceberg_type(kind)
        for name, kind in duck.source_columns(con, table.duckdb_name("pg")).items()
    }
    return iceberg.plan_evolution(
        table.name, columns, current.schema() if current is not None else None
    )


def run_export(
    target: str,
    settings: db.Settings | None = None,
    *,
    settle: dt.timedelta = DEFAULT_SETTLE,
    progress: Progress | None = None,
    duck_config: duck.DuckConfig | None = None,
    catalog: str | None = None,
    namespace: str | None = None,
) -> RunSummary:
    """One export run to `target` (a folder or s3://bucket/prefix) and its Iceberg catalog.
    Raises ExportError with one clear line on anything that stops it; the watermarks then
    have not moved, and the lake's tables show no part of the run."""
    progress = progress or Progress()
    settings = db.resolve() if settings is None else settings
    destination = lake.open_lake(target)
    try:
        with lake.storage_errors(destination.uri):
            return _run(destination, settings, settle, progress, duck_config, catalog, namespace)
    finally:
        destination.clean_staging()


def _run(
    destination: lake.Lake,
    settings: db.Settings,
    settle: dt.timedelta,
    progress: Progress,
    duck_config: duck.DuckConfig | None,
    catalog: str | None,
    namespace: str | None,
) -> RunSummary:
    """The protocol's steps in order, each crash point between two of them."""
    started = time.monotonic()
    destination.check()
    house = iceberg.open_house(destination, catalog, namespace)
    with protocol.connect(settings) as conn:
        tables = _claim(conn, house)
        with duck.session(settings, duck_config, s3=destination.s3_access()) as con:
            schemas = _check_schemas(con, house, tables)
            run = _start_or_resume(conn, house, list(tables.values()), settle, progress)
            _pause_if_asked("after_pending")
            parts = _lake_tables(house, run, tables, schemas)
            export = _Export(conn, con, destination, run, settings, progress)
            export.write_tables(parts)
            _pause_if_asked("after_files")
            export.commit_tables(parts)
        _pause_if_asked("after_commits")
        exported = {t.table.name: t.files.rows + t.files.deletes for t in parts}
        protocol.commit_run(conn, run, exported)
    return RunSummary(
        run_id=run.run_id,
        target=destination.uri,
        catalog=house.catalog_name,
        namespace=house.namespace,
        resumed=run.resumed,
        bound_time=run.bound_time.isoformat(),
        seconds=time.monotonic() - started,
        tables=[t.result for t in parts],
    )


def _claim(conn: psycopg.Connection[TupleRow], house: iceberg.House) -> dict[str, ExportedTable]:
    """This exporter alone (the lock), on a lake of this database, and what it exports."""
    protocol.acquire_lock(conn)
    iceberg.claim(house, *protocol.source_identity(conn))
    return {t.name: t for t in load_tables(conn, house.key)}


@dataclass
class _Schema:
    """A table's lake tables as they are (either may not exist yet), and what they need."""

    existing: tuple[Table | None, Table | None]
    evolution: iceberg.Evolution


def _check_schemas(
    con: duckdb.DuckDBPyConnection, house: iceberg.House, tables: dict[str, ExportedTable]
) -> dict[str, _Schema]:
    """Every table's schema checked against its lake tables, before the run exists or anything
    is written: a change they cannot follow stops the run here."""
    existing = {name: iceberg.load_pair(house, t.lake_name) for name, t in tables.items()}
    return {
        name: _Schema(existing[name], _evolution(con, t, existing[name][0]))
        for name, t in tables.items()
    }


def _lake_tables(
    house: iceberg.House,
    run: protocol.PendingRun,
    tables: dict[str, ExportedTable],
    schemas: dict[str, _Schema],
) -> list[_TableRun]:
    """The lake tables of each of the run's windows, created or evolved as its schema needs."""
    for name in run.windows:
        if name not in tables:
            raise ExportError(f"run {run.run_id} names {name}, which is no longer exported")
    parts = []
    for name, window in run.windows.items():
        table, schema = tables[name], schemas[name]
        pair = iceberg.ensure_pair(
            house, table.lake_name, table.key_column, schema.evolution, schema.existing
        )
        parts.append(_TableRun(table, window, pair))
    return parts
