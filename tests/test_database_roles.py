"""The tools' own logins (macros/roles.sql): each tool logs in as its role, and nothing in such a
session, RESET ROLE included, reaches beyond the role's grants; definer functions are callable
only by whom they are granted to, with their search_path pinned."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import db
from tests import pg_harness
from tests.pg_harness import Server

TOOLS = (db.GENERATOR_ROLE, db.EXPORTER_ROLE)

# What an conn could do and a tool must not, whoever it claims to be after RESET ROLE.
FORBIDDEN_TO_BOTH = [
    "create table app.stray (id int)",
    "create table etl.stray (id int)",
    "create table public.stray (id int)",
    "create temporary table stray (id int)",
    "create schema stray",
    "create function etl.stray() returns int language sql as 'select 1'",
    "alter table app.ratings disable trigger all",
    "alter table app.ratings disable trigger record_tombstones",
    "drop trigger record_tombstones on app.ratings",
    "alter table app.ratings drop constraint ratings_pkey",
    "drop table app.ratings",
    "truncate etl.tombstones",
    "delete from etl.tombstones",
    "insert into etl.tombstones (table_name, key_value) values ('app.ratings', 1)",
    "update app.anime set title = 'x'",
    "set session_replication_role = replica",
    "set role postgres",
    "select pg_read_file('/etc/hostname')",
    "copy (select 1) to program 'true'",
]
FORBIDDEN = {
    db.GENERATOR_ROLE: [
        *FORBIDDEN_TO_BOTH,
        "update etl.watermarks set max_id = 1",
        "select * from etl.export_runs",
        "select * from etl.oldest_open_transaction()",
    ],
    db.EXPORTER_ROLE: [
        *FORBIDDEN_TO_BOTH,
        "insert into app.users (username, email, display_name) values ('x', 'x@y', 'x')",
        "delete from app.ratings",
    ],
}


def _roles_state(conn: psycopg.Connection[TupleRow]) -> list[tuple[object, ...]]:
    return conn.execute(
        "select rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,"
        " rolbypassrls, array(select r.rolname from pg_auth_members m"
        "   join pg_roles r on r.oid = m.roleid where m.member = p.oid order by 1)"
        " from pg_roles p where rolname = any(%s) order by 1",
        (list(TOOLS),),
    ).fetchall()


def _triggers(conn: psycopg.Connection[TupleRow]) -> list[tuple[object, ...]]:
    return conn.execute(
        "select tgrelid::regclass::text, tgname, tgenabled from pg_trigger"
        " where not tgisinternal order by 1, 2"
    ).fetchall()


def _tables(conn: psycopg.Connection[TupleRow]) -> tuple[object, ...] | None:
    return conn.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('app', 'etl', 'public')"
    ).fetchone()


@pytest.mark.parametrize("role", TOOLS)
def test_reset_role_gives_a_tool_nothing_beyond_its_grants(
    pg: Server, app_db: str, conn: psycopg.Connection[TupleRow], role: str
) -> None:
    roles_before, triggers_before, tables_before = (
        _roles_state(conn),
        _triggers(conn),
        _tables(conn),
    )
    with db.connect(
        pg.settings(app_db), application_name="probe", autocommit=True, role=role
    ) as tool:
        assert tool.execute("select session_user, current_user").fetchone() == (role, role)
        tool.execute("reset role")
        assert tool.execute("select session_user, current_user").fetchone() == (role, role)
        for statement in FORBIDDEN[role]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                tool.execute(statement)
                pytest.fail(f"{role} may run: {statement}")
        for other in TOOLS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                tool.execute(sql.SQL("alter role {} superuser").format(sql.Identifier(other)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                tool.execute(sql.SQL("grant pg_monitor to {}").format(sql.Identifier(other)))
    assert _roles_state(conn) == roles_before
    assert _triggers(conn) == triggers_before
    assert all(enabled == "O" for _, _, enabled in triggers_before)
    assert _tables(conn) == tables_before
    assert conn.execute("select count(*) from etl.tombstones").fetchone() == (0,)


def test_the_exporter_sees_no_other_sessions_query(pg: Server, app_db: str) -> None:
    """pg_read_all_stats would show it every session's query text; the bound function shows it
    the oldest open transaction's start, pid, name and state, and nothing else."""
    with pg.connect(app_db) as other:
        other.execute("select 'a secret in the query text'")  # a transaction left open
        with db.connect(
            pg.settings(app_db), application_name="probe", autocommit=True, role=db.EXPORTER_ROLE
        ) as tool:
            seen = tool.execute(
                "select query, xact_start from pg_stat_activity where pid = %s",
                (other.info.backend_pid,),
            ).fetchone()
            assert seen == ("<insufficient privilege>", None)
            oldest = tool.execute(
                "select pid, state, xact_start is not null from etl.oldest_open_transaction()"
            ).fetchone()
            assert oldest == (other.info.backend_pid, "idle in transaction", True)


def test_tool_roles_own_exactly_their_attributes(conn: psycopg.Connection[TupleRow]) -> None:
    for (
        name,
        superuser,
        createrole,
        createdb,
        login,
        replication,
        bypassrls,
        member_of,
    ) in _roles_state(conn):
        assert name in TOOLS
        assert login and not (superuser or createrole or createdb or replication or bypassrls)
        assert member_of == []


def test_definer_functions_are_granted_not_public(
    conn: psycopg.Connection[TupleRow],
) -> None:
    rows = conn.execute(
        "select p.oid::regprocedure::text, p.proconfig,"
        " exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
        "         where a.grantee = 0 and a.privilege_type = 'EXECUTE'),"
        " array(select r.rolname from aclexplode(p.proacl) a join pg_roles r on r.oid = a.grantee"
        "       where a.privilege_type = 'EXECUTE' and r.oid <> p.proowner order by 1)"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where p.prosecdef and n.nspname in ('app', 'etl', 'public') order by 1"
    ).fetchall()
    found = {name: (config, public, granted) for name, config, public, granted in rows}
    assert set(found) == {
        "etl.oldest_open_transaction()",
        "etl.record_key_change()",
        "etl.record_tombstones()",
        "etl.source_identity()",
    }
    for name, (config, public, _) in found.items():
        assert not public, f"{name} is executable by PUBLIC"
        assert config and "search_path=pg_catalog, pg_temp" in config, name
    assert found["etl.record_tombstones()"][2] == []
    assert found["etl.record_key_change()"][2] == []  # a trigger's: no role calls it
    assert found["etl.source_identity()"][2] == [db.EXPORTER_ROLE]
    assert found["etl.oldest_open_transaction()"][2] == [db.EXPORTER_ROLE]


def test_a_build_brings_old_roles_to_their_least_rights(
    pg: Server, app_db: str, dbt_project: Path, conn: psycopg.Connection[TupleRow]
) -> None:
    """Roles of an earlier build (NOLOGIN groups, the exporter in pg_monitor) are corrected;
    on RDS (a role named rds_iam exists) the tools become its members, so IAM tokens are the
    only way they log in."""
    conn.execute("alter role animedb_exporter nologin")
    conn.execute("grant pg_monitor to animedb_exporter")
    conn.execute("alter role animedb_generator createdb")
    created_rds_iam = not conn.execute("select from pg_roles where rolname = 'rds_iam'").fetchone()
    if created_rds_iam:
        conn.execute("create role rds_iam nologin")
    try:
        pg_harness.run_dbt(dbt_project, pg.env(app_db), "run", "--select", "languages")
        states = _roles_state(conn)
    finally:
        if created_rds_iam:
            conn.execute("drop role rds_iam")
        # the roles are the server's: leave them right for the other tests whatever happened
        conn.execute("alter role animedb_exporter login")
        conn.execute("alter role animedb_generator nocreatedb")
        conn.execute("revoke pg_monitor from animedb_exporter")
    for _, superuser, _, createdb, login, _, _, member_of in states:
        assert login and not superuser and not createdb
        assert member_of == ["rds_iam"]


def test_a_tool_finds_its_password_in_the_libpq_password_file(
    pg: Server, password_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server that asks for passwords, PGPASSWORD is the administrator's (PGUSER's); a tool
    logging in as its role never sends it, and libpq reads the role's own from ~/.pgpass."""
    with pg.connect("postgres", autocommit=True) as admin:
        admin.execute("alter role animedb_exporter password 'exporter-pw-1'")
    monkeypatch.setenv("PGHOST", pg.host)
    monkeypatch.setenv("PGPORT", str(pg.port))
    monkeypatch.setenv("PGUSER", pg.user)
    monkeypatch.setenv("PGPASSWORD", "the-administrators-password")
    monkeypatch.setenv("PGDATABASE", password_db)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "missing"))
    with pytest.raises(db.DatabaseUnavailable) as refused:
        db.connect(application_name="probe", role=db.EXPORTER_ROLE)
    message = str(refused.value)
    assert "as animedb_exporter" in message and "~/.pgpass" in message
    assert "the-administrators-password" not in message and len(message.splitlines()) == 1

    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{pg.host}:{pg.port}:{password_db}:animedb_exporter:exporter-pw-1\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with db.connect(application_name="probe", role=db.EXPORTER_ROLE) as conn:
        assert conn.execute("select session_user").fetchone() == (db.EXPORTER_ROLE,)
    # PGUSER naming the role: PGPASSWORD is its password, and is sent
    monkeypatch.setenv("PGUSER", db.EXPORTER_ROLE)
    monkeypatch.setenv("PGPASSWORD", "exporter-pw-1")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "missing"))
    with db.connect(application_name="probe", role=db.EXPORTER_ROLE) as conn:
        assert conn.execute("select session_user").fetchone() == (db.EXPORTER_ROLE,)


def test_a_missing_database_is_not_called_a_password_problem(pg: Server) -> None:
    settings = pg.settings("no_such_database")
    with pytest.raises(db.DatabaseUnavailable) as refused:
        db.connect(settings, application_name="probe", role=db.EXPORTER_ROLE)
    message = str(refused.value)
    assert 'database "no_such_database" does not exist' in message
    assert db.CONNECTION_HINT in message and "~/.pgpass" not in message
