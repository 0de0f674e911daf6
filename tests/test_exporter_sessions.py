"""The exporter's PostgreSQL sessions: which sessions the watermark bound leaves out (only those
logged in as the exporter's role, whatever a session calls itself), how long a statement waits
for a lock or runs (a session holding a lock stops a run in one line, and the next run resumes),
and DuckDB's settings, refused in one line before a run is recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import db
from exporter import duck, protocol
from exporter.duck import MEMORY_LIMIT_VARIABLE, THREADS_VARIABLE, DuckConfig
from exporter.errors import ExportError
from exporter.pauses import PAUSE_VARIABLE
from exporter.protocol import LOCK_TIMEOUT_VARIABLE, STATEMENT_TIMEOUT_VARIABLE
from tests import exporter_helpers as h
from tests.pg_harness import Server

Conn = psycopg.Connection[TupleRow]
MEMBER_ROLE = "animedb_test_exporter_member"
HOLDER = "lock-holder"


def _as_generator(pg: Server, dbname: str, application_name: str) -> Conn:
    """A session of the generators' role (not autocommit: its transaction stays open)."""
    return db.connect(
        pg.settings(dbname), application_name=application_name, role=db.GENERATOR_ROLE
    )


def _runs(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute("select run_id, status from etl.export_runs order by 1").fetchall()


def _oldest_pid(pg: Server, dbname: str) -> int | None:
    """The pid etl.oldest_open_transaction() gives the exporter (None: no session counts)."""
    with protocol.connect(pg.settings(dbname), "probe") as exporter:
        row = exporter.execute("select pid from etl.oldest_open_transaction()").fetchone()
    return None if row is None or row[0] is None else int(row[0])


@pytest.fixture
def member_role(pg: Server, conn: Conn) -> Iterator[str]:
    """A login role that is a member of the exporter's role and may write app.users itself."""
    with pg.connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(MEMBER_ROLE)))
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(MEMBER_ROLE)))
        admin.execute(
            sql.SQL("grant {} to {}").format(
                sql.Identifier(db.EXPORTER_ROLE), sql.Identifier(MEMBER_ROLE)
            )
        )
    role = sql.Identifier(MEMBER_ROLE)
    conn.execute(sql.SQL("grant usage on schema app to {}").format(role))
    conn.execute(sql.SQL("grant select, insert on app.users to {}").format(role))
    conn.execute(sql.SQL("grant usage on sequence app.users_id_seq to {}").format(role))
    yield MEMBER_ROLE
    conn.execute(sql.SQL("drop owned by {}").format(role))
    with pg.connect("postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("drop role {}").format(role))


# --- the watermark bound: only the exporter's own sessions are left out ---------------------


def test_a_session_named_as_the_exporter_still_holds_the_bound_back(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """A writer that calls itself animedb-exporter-x, with a row in an open transaction during
    a run, is still below the bound: the next run exports the row once it is committed."""
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    with _as_generator(pg, app_db, "animedb-exporter-x") as spoof:
        h.add_users(spoof, 1, prefix="hidden")
        during = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet")
        assert during.returncode == 0, during.stderr
        spoof.commit()
    after = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet")
    assert after.returncode == 0, after.stderr
    verified = h.run_cli(env, "verify", "--target", target, "--json")
    assert verified.returncode == 0, verified.stdout
    checks = h.assert_exact(target, pg, app_db)
    users = next(c for c in checks if c.table == "app.users")
    assert users.missing == 0 and users.pending == 0


def test_only_sessions_logged_in_as_the_exporter_are_left_out(
    pg: Server, app_db: str, member_role: str
) -> None:
    """The exporter's role, under any name, holds nothing back (it may write no exported table);
    a member of that role that SETs it and takes the exporter's name still does."""
    with db.connect(
        pg.settings(app_db), application_name="psql", role=db.EXPORTER_ROLE
    ) as exporter_session:
        exporter_session.execute("select 1")  # a transaction left open, as the exporter's role
        assert _oldest_pid(pg, app_db) is None
        member = psycopg.connect(
            pg.settings(app_db).conninfo(user=member_role, application_name="animedb-exporter")
        )
        with member:
            h.add_users(member, 1, prefix="member")
            member.execute(sql.SQL("set role {}").format(sql.Identifier(db.EXPORTER_ROLE)))
            assert member.execute("select current_user").fetchone() == (db.EXPORTER_ROLE,)
            assert _oldest_pid(pg, app_db) == member.info.backend_pid
            member.rollback()


# --- no endless waits: lock and statement timeouts ------------------------------------------


def _lock_users(holder: Conn) -> None:
    holder.execute("set lock_timeout = '20s'")  # the test's own wait, should a run hold a lock
    holder.execute("lock table app.users in access exclusive mode")


def test_a_locked_table_stops_the_run_in_one_line(
    pg: Server, app_db: str, tmp_path: Path, conn: Conn
) -> None:
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db, **{LOCK_TIMEOUT_VARIABLE: "1s"})
    h.add_watching(conn, h.add_users(conn, 20))
    with _as_generator(pg, app_db, HOLDER) as holder:
        _lock_users(holder)
        started = time.monotonic()
        proc = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet", timeout=120)
        assert time.monotonic() - started < 60
        h.assert_refused(
            proc, "app.users", f"pid {holder.info.backend_pid} ({HOLDER}", LOCK_TIMEOUT_VARIABLE
        )
        holder.rollback()
    again = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet")
    assert again.returncode == 0, again.stderr
    assert [status for _, status in _runs(conn)] == ["committed"]
    h.assert_exact(target, pg, app_db)


def test_a_lock_taken_during_a_run_leaves_it_pending_for_the_next(
    pg: Server, app_db: str, tmp_path: Path, conn: Conn
) -> None:
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db, **{LOCK_TIMEOUT_VARIABLE: "1s"})
    h.add_watching(conn, h.add_users(conn, 20))
    with _as_generator(pg, app_db, HOLDER) as holder:
        proc = h.spawn_cli(
            {**env, PAUSE_VARIABLE: "after_pending:3"},
            "run",
            "--target",
            target,
            "--settle",
            "0",
            "--quiet",
        )
        try:
            h.wait_for_line(proc, "paused at after_pending")
            _lock_users(holder)
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 1, stderr
        h.assert_one_clear_line(stderr, "app.users", f"pid {holder.info.backend_pid}", "resumes")
        assert _runs(conn) == [(1, "pending")]
        holder.rollback()
    again = h.run_cli(env, "run", "--target", target, "--settle", "0", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["run_id"], summary["resumed"]) == (1, True)
    assert _runs(conn) == [(1, "committed")]
    h.assert_exact(target, pg, app_db)


def test_a_duckdb_read_of_a_locked_table_names_the_holder(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's connections carry the same limit; the holder is asked for through them."""
    monkeypatch.setenv(LOCK_TIMEOUT_VARIABLE, "1s")
    with _as_generator(pg, app_db, HOLDER) as holder:
        _lock_users(holder)
        needle = rf"app\.users after {LOCK_TIMEOUT_VARIABLE} \(1s\): pid {holder.info.backend_pid}"
        with (
            duck.session(pg.settings(app_db)) as con,
            pytest.raises(ExportError, match=needle),  # inside the session: copy_to_parquet's own
        ):
            duck.copy_to_parquet(con, "select * from pg.app.users", tmp_path / "u.parquet")
        with (
            pytest.raises(ExportError, match=needle),
            duck.session(pg.settings(app_db)) as con,
        ):
            con.execute("select count(*) from pg.app.users").fetchall()


def test_a_statement_longer_than_its_limit_is_one_line(
    pg: Server, app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATEMENT_TIMEOUT_VARIABLE, "0.5s")
    with (
        protocol.connect(pg.settings(app_db)) as control,
        pytest.raises(ExportError, match=STATEMENT_TIMEOUT_VARIABLE),
    ):
        control.execute("select pg_sleep(10)")
    with (
        pytest.raises(ExportError, match=STATEMENT_TIMEOUT_VARIABLE),
        duck.session(pg.settings(app_db)) as con,
    ):
        con.execute("select * from postgres_query('pg', 'select pg_sleep(10)')").fetchall()


@pytest.mark.parametrize(
    ("variable", "value"),
    [(LOCK_TIMEOUT_VARIABLE, "soon"), (STATEMENT_TIMEOUT_VARIABLE, "-5m")],
)
def test_a_bad_timeout_is_refused_before_a_run_is_recorded(
    pg: Server, app_db: str, tmp_path: Path, conn: Conn, variable: str, value: str
) -> None:
    env = h.exporter_env(pg, app_db, **{variable: value})
    proc = h.run_cli(env, "run", "--target", str(tmp_path / "lake"), "--settle", "0")
    h.assert_refused(proc, f"{variable}={value!r}", "30s")
    assert _runs(conn) == []


# --- DuckDB's settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        (MEMORY_LIMIT_VARIABLE, "garbage", "512MB"),
        (MEMORY_LIMIT_VARIABLE, "1KB", "128MB at the least"),
        (THREADS_VARIABLE, "abc", "from 1 to"),
        (THREADS_VARIABLE, "-3", "from 1 to"),
    ],
)
def test_bad_duckdb_settings_are_refused_before_a_run_is_recorded(
    pg: Server, app_db: str, tmp_path: Path, conn: Conn, variable: str, value: str, accepted: str
) -> None:
    env = h.exporter_env(pg, app_db, **{variable: value})
    proc = h.run_cli(env, "run", "--target", str(tmp_path / "lake"), "--settle", "0")
    h.assert_refused(proc, f"{variable}={value!r}", accepted)
    assert _runs(conn) == []


def test_duckdb_refusing_its_settings_is_one_line() -> None:
    """Settings given in code (the Lambda handler's) are DuckDB's to refuse: still one line."""
    for config in (DuckConfig(memory_limit="garbage"), DuckConfig(threads=-3)):
        with pytest.raises(ExportError, match="DuckDB refused its settings"):
            duck.connect(config).close()
