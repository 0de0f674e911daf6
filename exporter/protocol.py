"""The watermark protocol (docs/design.md): one exporter at a time, upper bounds computed before any
read so that everything inside a window is already committed, a pending run recorded before
files are written, and watermarks advanced with the run's commit in one transaction.

`modified` tables: window max_modified <= cursor < bound, where the bound is the start of the
oldest transaction still open in any client session (or now), minus a settle margin that covers
a transaction whose start time is taken but not yet published in pg_stat_activity.
`id` tables: window max_id < key <= bound, the bound being max(key) read first; a table another
session holds a write lock on is deferred (its window stays put).

Every session of the exporter (control connections here, DuckDB's in exporter/duck.py) waits
for a lock and runs a statement within SessionLimits: a session that holds a lock the exporter
needs stops a run with one line naming it, and the next run resumes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, cast

import psycopg
from psycopg.abc import Params, Query, QueryNoTemplate
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from animedb import db
from exporter.durations import parse_duration
from exporter.errors import ExportBusy, ExportError, first_line
from exporter.tables import ExportedTable

APPLICATION = "animedb-exporter"
# pg_try_advisory_lock keys: the exporter's own, shared by every process and Lambda, and the
# lake maintenance's (a run maintains the lake only when no `maintain` holds it)
LOCK_KEY = 0x616E696D65646201  # "animedb" + 1
MAINTENANCE_LOCK_KEY = 0x616E696D65646202
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # where modified watermarks start (etl schema)
WRITE_LOCKS = ("RowExclusiveLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
LOCK_TIMEOUT_VARIABLE = "ANIMEDB_EXPORT_LOCK_TIMEOUT"
STATEMENT_TIMEOUT_VARIABLE = "ANIMEDB_EXPORT_STATEMENT_TIMEOUT"
DEFAULT_LOCK_TIMEOUT = dt.timedelta(seconds=30)
# a statement reads one chunk (ANIMEDB_EXPORT_CHUNK_ROWS, a million rows: seconds to a minute)
# or one table for verify; a quarter of an hour is far beyond either, and Lambda's own limit
DEFAULT_STATEMENT_TIMEOUT = dt.timedelta(minutes=15)
MAX_TIMEOUT = dt.timedelta(milliseconds=2**31 - 1)  # PostgreSQL's largest, about 24 days
_NO_LIMIT = ("0", "off")


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
    resync: str | None = None  # why the window is the whole table (exporter/ddl.py)

    @property
    def empty(self) -> bool:
        return self.deferred is not None or self.hi == self.lo

    def condition(self, cursor_column: str) -> str:
        return cursor_range(cursor_column, self.load_type, self.lo, self.hi)

    def to_json(self) -> dict[str, Any]:
        def encode(v: int | dt.datetime) -> int | str:
            return v.isoformat() if isinstance(v, dt.datetime) else v

        data = {
            "load_type": self.load_type,
            "lo": encode(self.lo),
            "hi": encode(self.hi),
            "deferred": self.deferred,
        }
        if self.resync is not None:
            data["resync"] = self.resync
        return data

    @classmethod
    def from_json(cls, table: str, data: dict[str, Any]) -> Window:
        def decode(v: int | str) -> int | dt.datetime:
            return dt.datetime.fromisoformat(v) if isinstance(v, str) else int(v)

        return cls(
            table,
            data["load_type"],
            decode(data["lo"]),
            decode(data["hi"]),
            data.get("deferred"),
            data.get("resync"),
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


def _timeout(variable: str, default: dt.timedelta) -> dt.timedelta:
    """A timeout from the environment: a duration (`30s`, `15m`), or 0 / off for none."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if text.lower() in _NO_LIMIT:
        return dt.timedelta(0)
    try:
        value = parse_duration(text, variable)
    except ExportError:
        value = None
    if value is None or value > MAX_TIMEOUT:
        raise ExportError(
            f"{variable}={text!r} is not a timeout: use a duration up to 24d, e.g. 30s, 15m or "
            "1h, or off for none"
        )
    return value


@dataclass(frozen=True)
class SessionLimits:
    """How long a statement of the exporter may wait for a lock, and run, in PostgreSQL: without
    them one session holding a lock on an exported table (LOCK TABLE, ALTER TABLE, VACUUM FULL)
    would keep the exporter waiting forever. Zero is PostgreSQL's `no limit`."""

    lock_timeout: dt.timedelta = DEFAULT_LOCK_TIMEOUT
    statement_timeout: dt.timedelta = DEFAULT_STATEMENT_TIMEOUT

    @classmethod
    def from_environment(cls) -> SessionLimits:
        return cls(
            lock_timeout=_timeout(LOCK_TIMEOUT_VARIABLE, DEFAULT_LOCK_TIMEOUT),
            statement_timeout=_timeout(STATEMENT_TIMEOUT_VARIABLE, DEFAULT_STATEMENT_TIMEOUT),
        )

    def settings(self) -> dict[str, str]:
        """PostgreSQL's settings, in milliseconds."""
        return {
            "lock_timeout": str(math.ceil(self.lock_timeout.total_seconds() * 1000)),
            "statement_timeout": str(math.ceil(self.statement_timeout.total_seconds() * 1000)),
        }

    def options(self) -> str:
        """The settings as libpq's `options`, for connections another library opens (DuckDB's)."""
        return " ".join(f"-c {name}={value}" for name, value in self.settings().items())


def connect(
    settings: db.Settings, purpose: str = "", *, limits: SessionLimits | None = None
) -> psycopg.Connection[TupleRow]:
    """A control connection of the exporter: autocommit, logged in as animedb_exporter (the
    bound leaves that role's sessions out), named `animedb-exporter[-purpose]`, with the
    session's limits (from the environment unless given); a statement that exceeds them
    raises ExportError, with one line naming who holds the lock it waited for."""
    limits = SessionLimits.from_environment() if limits is None else limits
    name = f"{APPLICATION}-{purpose}" if purpose else APPLICATION
    try:
        conn = db.connect(settings, application_name=name, autocommit=True, role=db.EXPORTER_ROLE)
    except db.DatabaseUnavailable as exc:
        raise ExportError(str(exc)) from exc
    conn.cursor_factory = _LimitedCursor
    conn.execute(
        "select set_config('lock_timeout', %(lock_timeout)s, false),"
        " set_config('statement_timeout', %(statement_timeout)s, false)",
        limits.settings(),
    )
    return conn


# Who holds (or waits ahead of the exporter for) a lock that keeps a read or a write of the
# exporter waiting, for the message once PostgreSQL gave up on it: a lock no one else may share
# on any table, or one that stops writes on the exporter's own (etl). pg_locks, pg_class and a
# session's pid, role and name are visible to every role; the current setting comes along.
LOCK_HOLDER_SQL = """
select s.lock_timeout, h.relation, h.pid, h.application_name, h.usename, h.mode
from (select current_setting('lock_timeout') as lock_timeout) as s
left join lateral (
    select n.nspname || '.' || c.relname as relation, l.pid, a.application_name,
           a.usename::text as usename, l.mode
    from pg_locks as l
    join pg_class as c on c.oid = l.relation
    join pg_namespace as n on n.oid = c.relnamespace
    left join pg_stat_activity as a on a.pid = l.pid
    where l.locktype = 'relation'
      and l.database = (select d.oid from pg_database as d where d.datname = current_database())
      and l.pid <> pg_backend_pid()
      and (l.mode = 'AccessExclusiveLock'
           or (n.nspname = 'etl' and l.mode in ('ShareLock', 'ShareRowExclusiveLock',
                                                'ExclusiveLock')))
    order by l.granted desc, n.nspname, c.relname, l.pid
    limit 1
) as h on true
"""


def timeout_kind(message: str) -> str | None:
    """'lock' or 'statement' when PostgreSQL's `message` says it ended a statement for that
    limit (DuckDB passes PostgreSQL's messages on as text), else None."""
    found = re.search(r"canceling statement due to (lock|statement) timeout", message)
    return found.group(1) if found else None


def _lock_mode(mode: str) -> str:
    """pg_locks' `AccessExclusiveLock` as LOCK TABLE spells it: ACCESS EXCLUSIVE."""
    return " ".join(re.findall(r"[A-Z][a-z]*", mode.removesuffix("Lock"))).upper()


def timed_out(kind: str, holder: Sequence[Any] | None) -> ExportError:
    """The one line for a statement PostgreSQL ended: `kind` 'lock' or 'statement', `holder` a
    row of LOCK_HOLDER_SQL when it could be read."""
    then = "then run again: nothing is lost, a pending run resumes"
    if kind == "statement":
        return ExportError(
            f"PostgreSQL ended a statement of the exporter that ran longer than "
            f"{STATEMENT_TIMEOUT_VARIABLE} allows (default 15m): raise it (e.g. 1h, or off), "
            f"{then}"
        )
    waited = f" ({holder[0]})" if holder and holder[0] else ""
    if not holder or holder[1] is None:
        return ExportError(
            f"PostgreSQL gave up waiting for a lock after {LOCK_TIMEOUT_VARIABLE}{waited}: "
            "another session holds one on a table the exporter reads or writes (pg_locks "
            f"says which); end that session's transaction or raise {LOCK_TIMEOUT_VARIABLE}, "
            f"{then}"
        )
    _, relation, pid, app, user, mode = holder
    who = ", ".join(" ".join(str(v).split()) for v in (app or "no name", user) if v)
    return ExportError(
        f"PostgreSQL gave up waiting for {relation} after {LOCK_TIMEOUT_VARIABLE}{waited}: "
        f"pid {pid} ({who}) holds or awaits an {_lock_mode(str(mode))} lock on it; end that "
        f"session's transaction (an administrator may run SELECT pg_terminate_backend({pid})), "
        f"{then}"
    )


class _LimitedCursor(psycopg.Cursor[TupleRow]):
    """The control connections' cursor: a statement PostgreSQL ended for its lock or statement
    timeout becomes ExportError, naming the session that holds the lock it waited for."""

    def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        try:
            # the exporter sends strings and sql.Composed, never t-strings (Template)
            sent = cast("QueryNoTemplate", query)
            return super().execute(sent, params, prepare=prepare, binary=binary)
        except psycopg.errors.OperationalError as exc:
            explained = self._explained(exc)
            if explained is None:
                raise
            raise explained from exc

    def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        try:
            super().executemany(query, params_seq, returning=returning)
        except psycopg.errors.OperationalError as exc:
            explained = self._explained(exc)
            if explained is None:
                raise
            raise explained from exc

    def _explained(self, exc: psycopg.errors.OperationalError) -> ExportError | None:
        kind = (
            "lock"
            if isinstance(exc, psycopg.errors.LockNotAvailable)
            else timeout_kind(str(exc))
            if isinstance(exc, psycopg.errors.QueryCanceled)
            else None
        )
        if kind is None:
            return None
        holder = None
        # a transaction the timeout aborted answers nothing more; outside one, ask here
        if kind == "lock" and self.connection.info.transaction_status == TransactionStatus.IDLE:
            try:
                holder = psycopg.Cursor(self.connection).execute(LOCK_HOLDER_SQL).fetchone()
            except psycopg.Error:
                holder = None
        return timed_out(kind, holder)


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
            f"{first_line(exc)} (run `animedb db build`, which creates "
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


def plan_windows(
    tables: list[ExportedTable], bounds: Bounds, resync: dict[str, str] | None = None
) -> dict[str, Window]:
    """Each table's window: from its watermark to the bound, or from the beginning for a
    table to resynchronise (`resync`: why, by table)."""
    resync = resync or {}
    windows = {}
    for t in tables:
        why = resync.get(t.name)
        if t.load_type == "id":
            deferred = bounds.write_locked.get(t.name)
            hi = max(bounds.max_ids.get(t.name, 0), t.max_id)
            if deferred:
                windows[t.name] = Window(t.name, "id", t.max_id, t.max_id, deferred)
            else:
                windows[t.name] = Window(t.name, "id", 0 if why else t.max_id, hi, None, why)
        else:
            deferred = None
            if bounds.prepared:
                deferred = f"{bounds.prepared} prepared transaction(s) may hold older rows"
            hi_time = max(bounds.bound_time, t.max_modified)
            if deferred:
                windows[t.name] = Window(
                    t.name, "modified", t.max_modified, t.max_modified, deferred
                )
            else:
                lo_time = EPOCH if why else t.max_modified
                windows[t.name] = Window(t.name, "modified", lo_time, hi_time, None, why)
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
            "(animedb db build)"
        ) from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ExportError(
            f"the exporter may not read which database this is ({first_line(exc)}): "
            "an administrator must run `animedb db build`, which grants it"
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
