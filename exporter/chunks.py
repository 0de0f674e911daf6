"""Step 2 of a run: each touched table's window through DuckDB to Parquet, in chunks of bounded
size, at locations that depend only on run, table and chunk; each chunk recorded in PostgreSQL
(etl.export_chunks: location, size, SHA-256) once its files are in place. A resumed run keeps
the chunks it finds in place with their checksum and writes the rest again over the same
locations, so no table ever references a file twice or a file of a dead attempt.

Each lake table gets files of its own columns only: the change log's file is written from
PostgreSQL, and the current state's from that file less `_deleted` (no second read of the
source); the two tables give every column the same field id.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import db
from exporter import duck, layout, live, protocol, sqltext
from exporter.catalog import Pair, table_name
from exporter.datafiles import Written
from exporter.errors import ExportError
from exporter.pauses import pause_if_asked
from exporter.progress import Progress, TableResult
from exporter.schema import select_list
from exporter.storage import Staging, Storage, sha256_of
from exporter.tables import TOMBSTONES, ExportedTable

CHUNK_ROWS_VARIABLE = "ANIMEDB_EXPORT_CHUNK_ROWS"
DEFAULT_CHUNK_ROWS = 1_000_000  # about 30-130 MB of zstd Parquet: a split for Athena, flat memory
CHUNK_WORKERS = 2  # chunks of a large window written at once
DELETES_CHUNK = -1  # etl.export_chunks' row for a run's delete rows of a table
SAMPLED_PAGES = 1600  # pages sampled per chunk a large first load is cut into
CHUNK_FILL = 0.8  # the share of the bound a sampled chunk aims at
SCAN_CHUNKS = 8  # a first load of up to this many chunks is written in one scan of the table
SCAN_CHUNK = "_animedb_chunk"  # the column that sends a row to its chunk's file
# the current state's file of a chunk is encoded a second time, from the log's: zstd's fastest
# level takes a third less time than DuckDB's default (3) for a few percent more bytes
CURRENT_ZSTD_LEVEL = 1


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


def _encode(value: int | dt.datetime) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


@dataclass
class TableFiles:
    """What one table's window became: files for the change log and for the current state."""

    changes: list[Written] = field(default_factory=list)
    current: list[Written] = field(default_factory=list)
    rows: int = 0
    deletes: int = 0
    kept: int = 0


@dataclass
class TableRun:
    """One table's share of the run: its window, its lake tables (when the run touches them),
    and what it became."""

    table: ExportedTable
    window: protocol.Window
    pair: Pair | None = None  # None: the run leaves the table's lake tables as they are
    files: TableFiles = field(default_factory=TableFiles)
    seconds: float = 0.0  # writing its files, then committing them
    committed: bool = False

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
            committed=self.committed,
        )


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


def first_load(window: protocol.Window) -> bool:
    """A window that starts at the beginning of the table: all of it is read."""
    if isinstance(window.lo, dt.datetime):
        return window.lo <= protocol.EPOCH
    return window.lo == 0


def _estimate(
    conn: psycopg.Connection[TupleRow], table: ExportedTable, window: protocol.Window
) -> int | None:
    """Rows to expect, when cheap to know: the planner's estimate for a first full load."""
    if not first_load(window):
        return None
    row = conn.execute(
        "select reltuples::bigint from pg_class where oid = %s::regclass", (table.name,)
    ).fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


class ChunkWriter:
    """The files of one run, table by table (step 2)."""

    def __init__(
        self,
        conn: psycopg.Connection[TupleRow],
        con: duckdb.DuckDBPyConnection,
        storage: Storage,
        staging: Staging,
        run: protocol.PendingRun,
        settings: db.Settings,
        progress: Progress,
    ) -> None:
        self.conn, self.con, self.storage, self.staging = conn, con, storage, staging
        self.run, self.settings, self.progress = run, settings, progress
        self.tombstones = run.windows.get(TOMBSTONES)
        self.exported_at = protocol.cursor_literal(run.started_at)

    def write_tables(self, parts: list[TableRun]) -> None:
        """Every touched table's window in files, table by table, with progress."""
        for t in parts:
            if t.pair is None:
                continue
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

    def _put(self, staged: Path, location: str, rows: int, digest: str | None = None) -> Written:
        size, digest = staged.stat().st_size, digest or sha256_of(staged)
        self.storage.put_file(staged, location)
        return Written(location, size, digest, rows)

    def file(self, query: str, staged_name: str, location: str, field_ids: str) -> Written | None:
        """The rows of `query` as one Parquet file at `location` (staged as `staged_name`);
        None when it has no rows, and then no file there (an earlier try's is deleted)."""
        staged = self.staging.file(staged_name)
        try:
            rows = duck.copy_to_parquet(self.con, query, staged, field_ids=field_ids)
            if not rows:
                self.storage.delete(location)
                return None
            return self._put(staged, location, rows)
        finally:
            staged.unlink(missing_ok=True)

    def _in_place(self, chunk: protocol.Chunk) -> bool:
        if chunk.files is None:
            return False
        return all(
            self.storage.has_file(w.location, w.bytes, w.sha256)
            for w in map(Written.from_json, chunk.files.values())
        )

    def _ranges(
        self,
        table: ExportedTable,
        window: protocol.Window,
        rows_per_chunk: int,
        estimate: int | None,
    ) -> list[tuple[int | None, int | None]]:
        """Key ranges of at most rows_per_chunk rows each, cut at the window's real keys (ids
        with gaps still give bounded files); one open range for a window that fits one chunk.
        `estimate`: the window's rows as `_estimate` gives them (a first load's)."""
        condition = sql.SQL(window.condition(table.cursor_column))  # type: ignore[arg-type,unused-ignore]
        if estimate is not None and estimate > rows_per_chunk:
            sampled = self._sampled_ranges(table, window, rows_per_chunk)
            if sampled is not None:
                return sampled
        # most windows fit one chunk: counting stops one row past the chunk size
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

    def _sampled_ranges(
        self,
        table: ExportedTable,
        window: protocol.Window,
        rows_per_chunk: int,
    ) -> list[tuple[int | None, int | None]] | None:
        """A large first load's key ranges from a sample of its pages (TABLESAMPLE SYSTEM)
        rather than a ranking of every key; None when the chunks are too small for a sample to
        place their ends well (then every key is ranked). The sample takes SAMPLED_PAGES of the
        pages a chunk spans: the error of a sampled chunk's size is then about 1/sqrt of that
        (2.5%), and each range aims at CHUNK_FILL of the bound, so no chunk comes near it (a
        miss would be a file a little over the bound, nothing else). Ranges are open at both
        ends, so that no key of the window falls outside."""
        row = self.conn.execute(
            "select greatest(relpages, 1), greatest(reltuples, 1) from pg_class"
            " where oid = %s::regclass",
            (table.name,),
        ).fetchone()
        assert row is not None
        rows_per_page = float(row[1]) / float(row[0])
        percent = 100.0 * SAMPLED_PAGES * rows_per_page / rows_per_chunk
        if percent > 50:
            return None
        rows = float(row[1])  # the planner's estimate, then the sample's own
        found: tuple[Any, ...] | None = None
        for _ in range(2):
            count = max(1, math.ceil(rows / (rows_per_chunk * CHUNK_FILL)))
            fractions = [i / count for i in range(1, count)]
            # PostgreSQL sorts the sampled keys and returns only the cut points
            found = self.conn.execute(
                sql.SQL(
                    "select count(*), percentile_disc({f}::float8[]) within group (order by {k})"
                    " from {t} tablesample system ({p}) where "
                ).format(
                    f=sql.Literal(fractions),
                    k=sql.Identifier(table.key_column),
                    t=table.identifier(),
                    p=sql.Literal(percent),
                )
                + sql.SQL(window.condition(table.cursor_column))  # type: ignore[arg-type,unused-ignore]
            ).fetchone()
            assert found is not None
            if found[0] < SAMPLED_PAGES:  # a window the sample barely saw
                return None
            sampled = found[0] * 100.0 / percent
            if sampled <= rows * 1.1:
                break
            rows = sampled  # the estimate was stale: cut again for the rows the sample saw
        assert found is not None
        cuts = sorted({int(k) for k in found[1] or []})
        bounds: list[int | None] = [None, *cuts]
        return [
            (lo, hi - 1 if hi is not None else None)
            for lo, hi in zip(bounds, [*cuts, None], strict=True)
        ]

    def _select(self, pair: Pair, table: ExportedTable) -> tuple[str, str]:
        """The select list of the change log's file of a window (the current state's is the
        same file) and its FIELD_IDS."""
        source = {c: sqltext.identifier(c) for c in table.columns}
        return select_list(
            pair.changes.schema(),
            {
                **source,
                layout.RUN_COLUMN: str(self.run.run_id),
                layout.DELETED_COLUMN: "false",
                layout.EXPORTED_AT_COLUMN: self.exported_at,
            },
            table=table_name(pair.changes),
        )

    def _write_chunk(
        self,
        pair: Pair,
        table: ExportedTable,
        window: protocol.Window,
        chunk: protocol.Chunk,
        single: bool,
        con: duckdb.DuckDBPyConnection,
    ) -> protocol.Chunk:
        """One chunk's file, in both tables; the caller records it (etl.export_chunks)."""
        where = window.condition(table.cursor_column)
        if chunk.key_lo is not None:
            where += f' and "{table.key_column}" >= {int(chunk.key_lo)}'
        if chunk.key_hi is not None:
            where += f' and "{table.key_column}" <= {int(chunk.key_hi)}'
        select, ids = self._select(pair, table)
        staged = self.staging.file(f"{table.lake_name}_changes_chunk-{chunk.chunk:05d}.parquet")
        try:
            rows = duck.copy_to_parquet(
                con,
                f"select {select} from {table.duckdb_name('pg')} where {where}",
                staged,
                parallel_scan=single and first_load(window),
                field_ids=ids,
            )
            return self._place(staged if rows else None, pair, chunk, rows, con)
        finally:
            staged.unlink(missing_ok=True)

    def _write_in_one_scan(
        self, pair: Pair, table: ExportedTable, window: protocol.Window, todo: list[protocol.Chunk]
    ) -> Iterator[protocol.Chunk]:
        """A first load of a few chunks, as bare DuckDB would write it: one parallel scan of
        the table, its rows sent to each chunk's file by key (one partitioned COPY); then each
        chunk put in place and recorded. Killed before the last is recorded, the chunks left
        are written one by one by the run that resumes it."""
        key = f'"{table.key_column}"'
        cases = " ".join(
            f"when {key} <= {int(c.key_hi)} then {i}"
            for i, c in enumerate(todo[:-1])
            if c.key_hi is not None
        )
        which = f"case {cases} else {len(todo) - 1} end" if cases else "0"
        select, ids = self._select(pair, table)
        folder = self.staging.folder(f"{table.lake_name}_scan")
        try:
            duck.copy_to_parquet(
                self.con,
                f"select {select}, {which} as {SCAN_CHUNK} from {table.duckdb_name('pg')}"
                f" where {window.condition(table.cursor_column)}",
                folder,
                parallel_scan=True,
                field_ids=ids,
                options=f"PARTITION_BY ({SCAN_CHUNK}), OVERWRITE_OR_IGNORE",
            )
            outputs = [
                sorted((folder / f"{SCAN_CHUNK}={i}").glob("*.parquet")) for i in range(len(todo))
            ]
            # checksums, uploads and copies in threads (they leave the GIL), records in order
            with concurrent.futures.ThreadPoolExecutor(CHUNK_WORKERS) as pool:
                placed = [
                    pool.submit(self._place_output, files, pair, chunk)
                    for files, chunk in zip(outputs, todo, strict=True)
                ]
                for chunk, future in zip(todo, placed, strict=True):
                    done = future.result()
                    if done is None:  # DuckDB split it in several files: written by itself
                        done = self._write_chunk(pair, table, window, chunk, False, self.con)
                    yield self._recorded(done)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _place_output(
        self, files: list[Path], pair: Pair, chunk: protocol.Chunk
    ) -> protocol.Chunk | None:
        """A chunk of a partitioned COPY put in place: its one file, or no rows when there is
        none; None when there are several."""
        if len(files) > 1:
            return None
        with duckdb.connect() as con:  # a thread's own: local files only, no PostgreSQL
            rows = duck.parquet_rows(con, str(files[0])) if files else 0
            return self._place(files[0] if files else None, pair, chunk, rows, con)

    def _place(
        self,
        staged: Path | None,
        pair: Pair,
        chunk: protocol.Chunk,
        rows: int,
        con: duckdb.DuckDBPyConnection,
    ) -> protocol.Chunk:
        """A chunk's staged file (None: it has no rows) put in the change log's folder, and the
        current state's file made from it (its columns less `_deleted`) put in that table's;
        with no rows, what an earlier try left there is deleted. `con`: a DuckDB connection of
        the calling thread."""
        name = f"chunk-{chunk.chunk:05d}.parquet"
        changes_at = layout.run_location(pair.changes.location(), self.run.run_id, name)
        current_at = layout.run_location(pair.current.location(), self.run.run_id, name)
        files: dict[str, Any] = {}
        if staged is not None and rows:
            current = staged.with_name(staged.stem + "-current.parquet")
            try:
                schema = pair.current.schema()
                select, ids = select_list(
                    schema,
                    {f.name: sqltext.identifier(f.name) for f in schema.fields},
                    table=table_name(pair.current),
                )
                written = duck.write_parquet(
                    con,
                    f"select {select} from read_parquet({sqltext.literal(str(staged))})",
                    current,
                    field_ids=ids,
                    level=CURRENT_ZSTD_LEVEL,
                )
                files["current"] = self._put(current, current_at, written).to_json()
            finally:
                current.unlink(missing_ok=True)
            files["changes"] = self._put(staged, changes_at, rows).to_json()  # staged moves
        else:
            self.storage.delete(changes_at)
            self.storage.delete(current_at)
        chunk.files, chunk.rows = files, rows
        return chunk

    def _recorded(self, chunk: protocol.Chunk) -> protocol.Chunk:
        """A chunk whose files are in place, recorded as such (then the crash point)."""
        protocol.record_chunk(self.conn, self.run.run_id, chunk)
        pause_if_asked("during_files")
        return chunk

    def has_deletes(self, table: ExportedTable) -> bool:
        """Whether the run brings deletes of this table (its tombstone window is not empty)."""
        window = self.tombstones
        return window is not None and not window.empty and table.name != TOMBSTONES

    def _write_deletes(
        self,
        pair: Pair,
        table: ExportedTable,
        out: TableFiles,
        recorded: list[protocol.Chunk],
    ) -> None:
        """The run's deletes of this table, as change-log rows (key, _deleted = true), one per
        key, and none for a key the run's own files hold a version of: a key deleted and
        inserted again (or whose row took another key and then this one) is read after the
        delete committed, so its version is its newest change. `recorded`: the table's chunks
        of the run as etl.export_chunks had them."""
        window = self.tombstones
        if window is None or not self.has_deletes(table):
            return
        done = [c for c in recorded if c.chunk == DELETES_CHUNK and self._in_place(c)]
        if done:
            chunk = done[0]
        else:
            with self.progress.step("files: deletes", table.name):
                select, ids = select_list(
                    pair.changes.schema(),
                    {
                        table.key_column: "key_value",
                        layout.RUN_COLUMN: str(self.run.run_id),
                        layout.DELETED_COLUMN: "true",
                        layout.EXPORTED_AT_COLUMN: self.exported_at,
                    },
                    table=table_name(pair.changes),
                )
                keys = (
                    "select distinct key_value from pg.etl.tombstones where table_name = "
                    f"{duck.quote(table.name)} and {window.condition('tombstone_id')}"
                )
                if out.changes:
                    paths = live.paths_sql(self.storage, [w.location for w in out.changes])
                    keys += (
                        f" and key_value not in (select {sqltext.identifier(table.key_column)}"
                        f" from read_parquet({paths}))"
                    )
                written = self.file(
                    f"select {select} from ({keys}) as t order by key_value",
                    f"{table.lake_name}_changes_deletes.parquet",
                    layout.run_location(
                        pair.changes.location(), self.run.run_id, "deletes.parquet"
                    ),
                    ids,
                )
            files = {"changes": written.to_json()} if written else {}
            rows = written.rows if written else 0
            chunk = protocol.Chunk(table.name, DELETES_CHUNK, None, None, files, rows)
            protocol.record_chunk(self.conn, self.run.run_id, chunk)
        out.deletes = chunk.rows
        out.changes += [Written.from_json(f) for f in (chunk.files or {}).values()]

    def write(
        self,
        pair: Pair,
        table: ExportedTable,
        window: protocol.Window,
        estimate: int | None,
    ) -> TableFiles:
        """A table's window in files (`estimate`: its rows as `_estimate` gives them)."""
        out = TableFiles()
        chunks: list[protocol.Chunk] = []
        if not window.empty or self.has_deletes(table):
            chunks = protocol.chunks(self.conn, self.run.run_id, table.name)
        if not window.empty:
            with self.progress.step("files: changes", table.name):
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
                if not kept and 1 < len(todo) <= SCAN_CHUNKS and first_load(window):
                    written = self._write_in_one_scan(pair, table, window, todo)
                else:
                    written = self._write_chunks(pair, table, window, todo, single)
                for chunk in [*kept, *written]:
                    files = chunk.files or {}
                    if "changes" in files:
                        out.changes.append(Written.from_json(files["changes"]))
                    if "current" in files:
                        out.current.append(Written.from_json(files["current"]))
                    out.rows += chunk.rows
        self._write_deletes(pair, table, out, chunks)
        return out

    def _write_chunks(
        self,
        pair: Pair,
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
