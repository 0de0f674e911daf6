"""The watermark protocol (DESIGN.md): one exporter at a time, upper bounds computed before any
read so that everything inside a window is already committed, a pending run recorded before
files are written, and watermarks advanced with the run's commit in one transaction.

`modified` tables: window max_modified <= cursor < bound, where the bound is the start of the
oldest transaction still open in any client session (or now), minus a settle margin that covers
a transaction whose start time is taken but not yet published in pg_stat_activity.
`id` tables: window max_id < key <= bound, the bound being max(key) read first; a table another
session holds a write lock on is deferred (its window stays put).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from animedb import db
from exporter.errors import ExportBusy, ExportError, first_line
from exporter.tables import ExportedTable

APPLICATION = "animedb-exporter"
# pg_try_advisory_lock keys: the exporter's own, shared by every process and Lambda, and the
# lake maintenance's (a run maintains the lake only when no `maintain` holds it)
LOCK_KEY = 0x616E696D65646201  # "animedb" + 1
MAINTENANCE_LOCK_KEY = 0x616E696D65646202
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # where modified watermarks start (etl schema)
WRITE_LOCKS = ("RowExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


class StoredFile(Protocol):
    """What the lake's file records need of a file (`datafiles.Written` is one)."""

    @property
    def location(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass
class Window:
    """What one run exports of one table: (lo, hi] for ids, [lo, hi) for timestamps."""

    table: str
    load_type: str
    lo: int | dt.datetime
    hi: int | dt.datetime
    deferred: str | None = None  # why the window stays put this run

    @property
    def empty(self) -> bool:
        return self.deferred is not None or self.hi == self.lo

    def condition(self, cursor_column: str) -> str:
        return cursor_range(cursor_column, self.load_type, self.lo, self.hi)

    def to_json(self) -> dict[str, Any]:
        def encode(v: int | dt.datetime) -> int | str:
            return v.isoformat() if isinstance(v, dt.datetime) else v

        return {
            "load_type": self.load_type,
            "lo": encode(self.lo),
            "hi": encode(self.hi),
            "deferred": self.deferred,
        }

    @classmethod
    def from_json(cls, table: str, data: dict[str, Any]) -> Window:
        def decode(v: int | str) -> int | dt.datetime:
            return dt.datetime.fromisoformat(v) if isinstance(v, str) else int(v)

        return cls(
            table, data["load_type"], decode(data["lo"]), decode(data["hi"]), data.get("deferred")
        )


def cursor_literal(value: int | dt.datetime) -> str:
    """A bound as SQL that DuckDB and PostgreSQL both read the same way."""
    if isinstance(value, dt.datetime):
        return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
    return str(int(value))


def cursor_range(
    cursor_column: str,
    load_type: str,
    lo: int | dt.datetime | None = None,
    hi: int | dt.datetime | None = None,
) -> str:
    """The one statement of what a window holds: lo < id <= hi for `id` tables, lo <= cursor <
    hi for `modified` ones; a side left out is open. Run, status and verify all use it
    (`inside` a watermark is hi=watermark, `beyond` it lo=watermark)."""
    cursor = f'"{cursor_column}"'
    above, below = (">", "<=") if load_type == "id" else (">=", "<")
    parts = []
    if lo is not None:
        parts.append(f"{cursor} {above} {cursor_literal(lo)}")
    if hi is not None:
        parts.append(f"{cursor} {below} {cursor_literal(hi)}")
    return " and ".join(parts) or "true"


@dataclass
class PendingRun:
    run_id: int
    target: str
    started_at: dt.datetime
    bound_time: dt.datetime
    windows: dict[str, Window]
    resumed: bool = False


@dataclass
class Blocker:
    """A session whose open transaction holds the time bound back."""

    pid: int
    application_name: str
    state: str
    xact_start: dt.datetime


@dataclass
class Bounds:
    bound_time: dt.datetime
    read_at: dt.datetime
    blocker: Blocker | None
    prepared: int
    max_ids: dict[str, int] = field(default_factory=dict)
    write_locked: dict[str, str] = field(default_factory=dict)


def connect(settings: db.Settings, purpose: str = "") -> psycopg.Connection[TupleRow]:
    """A control connection of the exporter: autocommit, acting as animedb_exporter, named
    `animedb-exporter[-purpose]` (the bound leaves the exporter's own sessions out)."""
    name = f"{APPLICATION}-{purpose}" if purpose else APPLICATION
    try:
        return db.connect(settings, application_name=name, autocommit=True, role=db.EXPORTER_ROLE)
    except db.DatabaseUnavailable as exc:
        raise ExportError(str(exc)) from exc


def try_lock(conn: psycopg.Connection[TupleRow], key: int) -> bool:
    """Take a session advisory lock if it is free."""
    row = conn.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection[TupleRow], key: int) -> None:
    conn.execute("select pg_advisory_unlock(%s)", (key,))


def acquire_lock(
    conn: psycopg.Connection[TupleRow], key: int = LOCK_KEY, what: str = "exporter"
) -> None:
    """The session lock that keeps exporters (or maintainers) one at a time; a second one is
    told who runs."""
    if try_lock(conn, key):
        return
    holder = conn.execute(
        "select a.pid, a.application_name, a.backend_start from pg_locks l"
        " join pg_stat_activity a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted"
        "   and l.classid = (%s >> 32)::oid and l.objid = (%s & 4294967295)::oid",
        (key, key),
    ).fetchone()
    who = ""
    if holder:
        # another user's session shows its name but not its start (pg_read_all_stats would)
        since = f", since {holder[2]:%Y-%m-%d %H:%M:%S}" if holder[2] is not None else ""
        who = f" (pid {holder[0]}, {holder[1] or 'no name'}{since})"
    raise ExportBusy(f"another {what} is running{who}: only one runs at a time, so this one stops")


# etl.oldest_open_transaction() (macros/etl_schema.sql) reads pg_stat_activity for the exporter,
# which may see no other session's transaction itself.
_BOUND_TIME_SQL = """
select now(), (select count(*) from pg_prepared_xacts), o.pid, o.application_name, o.state,
       o.xact_start
from etl.oldest_open_transaction() as o
"""


def read_time_bound(conn: psycopg.Connection[TupleRow], settle: dt.timedelta) -> Bounds:
    """The bound of `modified` windows, in a statement of its own, before any data is read."""
    try:
        row = conn.execute(_BOUND_TIME_SQL).fetchone()
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction) as exc:
        raise ExportError(
            f"the watermark bound is not available to {db.EXPORTER_ROLE}: "
            f"{first_line(exc)} (run `animedb dbt build`, which creates "
            "etl.oldest_open_transaction() and lets the exporter call it)"
        ) from exc
    assert row is not None
    read_at, prepared, pid, app, state, xact_start = row
    blocker = None
    bound = read_at - settle
    if xact_start is not None and xact_start < bound:
        bound = xact_start
        blocker = Blocker(int(pid), str(app or ""), str(state or ""), xact_start)
    return Bounds(bound_time=bound, read_at=read_at, blocker=blocker, prepared=int(prepared))


def read_id_bounds(
    conn: psycopg.Connection[TupleRow], tables: list[ExportedTable], bounds: Bounds
) -> None:
    """max(key) of every `id` table first, then who holds a write lock on any of them: a table
    written by an open transaction may still receive keys below its max, so it waits a run."""
    id_tables = [t for t in tables if t.load_type == "id"]
    if not id_tables:
        return
    from psycopg import sql

    query = sql.SQL(" union all ").join(
        sql.SQL("select {name}, (select max({key}) from {table})").format(
            name=sql.Literal(t.name), key=sql.Identifier(t.key_column), table=t.identifier()
        )
        for t in id_tables
    )
    for name, max_id in conn.execute(query).fetchall():
        bounds.max_ids[str(name)] = int(max_id or 0)
    locked = conn.execute(
        "select n.nspname || '.' || c.relname, min(l.pid), min(a.application_name)"
        " from pg_locks l"
        " join pg_class c on c.oid = l.relation"
        " join pg_namespace n on n.oid = c.relnamespace"
        " left join pg_stat_activity a on a.pid = l.pid"
        " where l.granted and l.mode = any(%s) and l.pid <> pg_backend_pid()"
        "   and n.nspname || '.' || c.relname = any(%s)"
        " group by 1",
        (list(WRITE_LOCKS), [t.name for t in id_tables]),
    ).fetchall()
    for name, pid, app in locked:
        bounds.write_locked[str(name)] = (
            f"written by pid {pid} ({app or 'no name'}), not yet committed"
        )


def plan_windows(tables: list[ExportedTable], bounds: Bounds) -> dict[str, Window]:
    windows = {}
    for t in tables:
        if t.load_type == "id":
            deferred = bounds.write_locked.get(t.name)
            hi = max(bounds.max_ids.get(t.name, 0), t.max_id)
            windows[t.name] = Window(t.name, "id", t.max_id, t.max_id if deferred else hi, deferred)
        else:
            deferred = None
            if bounds.prepared:
                deferred = f"{bounds.prepared} prepared transaction(s) may hold older rows"
            hi_time = max(bounds.bound_time, t.max_modified)
            windows[t.name] = Window(
                t.name,
                "modified",
                t.max_modified,
                t.max_modified if deferred else hi_time,
                deferred,
            )
    return windows


def pending_run(conn: psycopg.Connection[TupleRow]) -> PendingRun | None:
    row = conn.execute(
        "select run_id, target, started_at, bound_time, windows from etl.export_runs"
        " where status = 'pending'"
    ).fetchone()
    if row is None:
        return None
    run_id, target, started_at, bound_time, windows = row
    return PendingRun(
        run_id=int(run_id),
        target=str(target),
        started_at=started_at,
        bound_time=bound_time,
        windows={name: Window.from_json(name, w) for name, w in windows.items()},
        resumed=True,
    )


def record_pending_run(
    conn: psycopg.Connection[TupleRow], target: str, bounds: Bounds, windows: dict[str, Window]
) -> PendingRun:
    """Step 1: the run and its windows are in PostgreSQL before any file is written."""
    with conn.transaction():
        row = conn.execute(
            "insert into etl.export_runs (target, bound_time, windows) values (%s, %s, %s)"
            " returning run_id, started_at",
            (target, bounds.bound_time, Jsonb({n: w.to_json() for n, w in windows.items()})),
        ).fetchone()
    assert row is not None
    return PendingRun(int(row[0]), target, row[1], bounds.bound_time, windows)


def commit_run(
    conn: psycopg.Connection[TupleRow],
    run: PendingRun,
    rows: dict[str, int],
    signatures: dict[str, str],
) -> None:
    """Step 4: advance the target's watermarks (never backwards), record the columns of the
    tables the run committed (`signatures`), and mark the run committed, at once."""
    with conn.transaction():
        for name, window in run.windows.items():
            if window.deferred is not None:
                continue
            max_id = window.hi if window.load_type == "id" else 0
            max_modified = window.hi if window.load_type == "modified" else EPOCH
            conn.execute(
                "insert into etl.watermarks as w (target, table_name, max_id, max_modified,"
                " last_run_id, last_export_at, rows_exported, source_columns)"
                " values (%s, %s, %s, %s, %s, now(), %s, %s)"
                " on conflict (target, table_name) do update set"
                " max_id = greatest(w.max_id, excluded.max_id),"
                " max_modified = greatest(w.max_modified, excluded.max_modified),"
                " last_run_id = excluded.last_run_id, last_export_at = excluded.last_export_at,"
                " rows_exported = w.rows_exported + excluded.rows_exported,"
                " source_columns = coalesce(excluded.source_columns, w.source_columns)",
                (
                    run.target,
                    name,
                    max_id,
                    max_modified,
                    run.run_id,
                    rows.get(name, 0),
                    signatures.get(name),
                ),
            )
        updated = conn.execute(
            "update etl.export_runs set status = 'committed', committed_at = now(),"
            " rows_exported = %s where run_id = %s and status = 'pending'",
            (sum(rows.values()), run.run_id),
        )
        if updated.rowcount != 1:
            raise ExportError(f"run {run.run_id} is no longer pending: it was not committed twice")


def abandon_run(conn: psycopg.Connection[TupleRow], run_id: int) -> bool:
    with conn.transaction():
        result = conn.execute(
            "update etl.export_runs set status = 'abandoned'"
            " where run_id = %s and status = 'pending'",
            (run_id,),
        )
    return result.rowcount == 1


def source_identity(conn: psycopg.Connection[TupleRow]) -> tuple[str, str]:
    """(system identifier, database name): which database the lake mirrors."""
    try:
        row = conn.execute("select * from etl.source_identity()").fetchone()
    except psycopg.errors.UndefinedFunction as exc:
        raise ExportError(
            "etl.source_identity() does not exist: build the database with this version "
            "(animedb dbt build)"
        ) from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ExportError(
            f"the exporter may not read which database this is ({first_line(exc)}): "
            "an administrator must run `animedb dbt build`, which grants it"
        ) from exc
    if row is None or row[0] is None:
        raise ExportError("PostgreSQL gave no system identifier: the lake cannot know its source")
    return str(row[0]), str(row[1])


@dataclass
class Chunk:
    """One file's worth of a window (keys key_lo..key_hi, both included); `files` once written."""

    table: str
    chunk: int
    key_lo: int | None
    key_hi: int | None
    files: dict[str, Any] | None = None
    rows: int = 0


def chunks(conn: psycopg.Connection[TupleRow], run_id: int, table: str) -> list[Chunk]:
    rows = conn.execute(
        "select chunk, key_lo, key_hi, files, rows from etl.export_chunks"
        " where run_id = %s and table_name = %s order by chunk",
        (run_id, table),
    ).fetchall()
    return [Chunk(table, int(c), lo, hi, files, int(n or 0)) for c, lo, hi, files, n in rows]


def plan_chunks(
    conn: psycopg.Connection[TupleRow],
    run_id: int,
    table: str,
    ranges: list[tuple[int | None, int | None]],
) -> list[Chunk]:
    """Record how a window is cut, before its first file: a resumed run cuts it the same way."""
    with conn.transaction():
        for i, (lo, hi) in enumerate(ranges):
            conn.execute(
                "insert into etl.export_chunks (run_id, table_name, chunk, key_lo, key_hi)"
                " values (%s, %s, %s, %s, %s) on conflict do nothing",
                (run_id, table, i, lo, hi),
            )
    return chunks(conn, run_id, table)


def record_chunk(conn: psycopg.Connection[TupleRow], run_id: int, chunk: Chunk) -> None:
    """A chunk's files are in place: what they are (location, size, SHA-256) and its rows."""
    conn.execute(
        "insert into etl.export_chunks (run_id, table_name, chunk, key_lo, key_hi, files, rows)"
        " values (%s, %s, %s, %s, %s, %s, %s) on conflict (run_id, table_name, chunk)"
        " do update set files = excluded.files, rows = excluded.rows",
        (
            run_id,
            chunk.table,
            chunk.chunk,
            chunk.key_lo,
            chunk.key_hi,
            Jsonb(chunk.files),
            chunk.rows,
        ),
    )


def record_files(
    conn: psycopg.Connection[TupleRow], target: str, files: Sequence[StoredFile]
) -> None:
    """Files put in the lake outside a run's chunks (position deletes, rewrites), with their
    size and SHA-256, before a commit references them."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "insert into etl.lake_files (location, target, bytes, sha256) values"
            " (%s, %s, %s, %s) on conflict (location) do update set"
            " bytes = excluded.bytes, sha256 = excluded.sha256, recorded_at = now()",
            [(f.location, target, f.bytes, f.sha256) for f in files],
        )


def forget_files(conn: psycopg.Connection[TupleRow], locations: list[str]) -> None:
    """The records of files that are gone from the lake."""
    if locations:
        conn.execute("delete from etl.lake_files where location = any(%s)", (locations,))
