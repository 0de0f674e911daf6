"""The Lambda handlers end to end: an event in, against a real PostgreSQL and moto's S3 and Glue,
as the function would see them (the template's environment, an IAM token per connection), and
rows generated or files in the bucket out.

The tool roles must give a password in this database (tests/pg_harness.py), and the password
is set to the token the handler presents, signed by boto3 for the handler's own user: a handler
that sent anything else, or logged in as anyone else, would be turned away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import exporter.protocol
import exporter.run
from animedb import db
from tests.exporter_helpers import add_users
from tests.infra_helpers import export, generate, rds, runtime
from tests.pg_harness import Server
from tests.s3_harness import S3Endpoint


@dataclass
class Function:
    """What a deployed function sees: its environment, its database, the tokens it signs."""

    dbname: str
    target: str
    monkeypatch: pytest.MonkeyPatch
    tokens: dict[str, str] = field(default_factory=dict)  # user -> the token its password is
    presented: list[str] = field(default_factory=list)  # users a connection was opened for

    def runs_as(self, role: str) -> None:
        """The template's ANIMEDB_DB_USER of the generator or the exporter function."""
        self.monkeypatch.setenv(rds.USER_VARIABLE, role)


def _accepting_tokens(
    pg: Server, function: Function, sign: Callable[[str, int, str, str], str]
) -> Callable[[str, int, str, str], str]:
    """rds.auth_token as boto3 signs it, with the user's password set to the first token signed
    for it (the server cannot check a signature; it checks that exactly this text arrives)."""
    lock = threading.Lock()

    def auth_token(host: str, port: int, user: str, region: str) -> str:
        with lock:
            function.presented.append(user)
            if user not in function.tokens:
                token = sign(host, port, user, region)
                assert token.startswith(f"{host}:{port}/?Action=connect&DBUser={user}&")
                with pg.connect("postgres", autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("alter role {} password {}").format(
                            sql.Identifier(user), sql.Literal(token)
                        )
                    )
                function.tokens[user] = token
            return function.tokens[user]

    return auth_token


@pytest.fixture
def function(
    pg: Server,
    password_db: str,
    s3: S3Endpoint,
    s3_target: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Function]:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(rds.HOST_VARIABLE, pg.host)
    monkeypatch.setenv(rds.PORT_VARIABLE, str(pg.port))
    monkeypatch.setenv(rds.NAME_VARIABLE, password_db)
    monkeypatch.setenv(rds.REGION_VARIABLE, s3.region)
    # the local server has no TLS: the one setting the template never sets
    monkeypatch.setenv(rds.SSLMODE_OVERRIDE_VARIABLE, "disable")
    monkeypatch.setenv(export.TARGET_VARIABLE, s3_target)
    monkeypatch.setenv(export.MEMORY_VARIABLE, "1024")
    rds.forget()
    made = Function(password_db, s3_target, monkeypatch)
    monkeypatch.setattr(rds, "auth_token", _accepting_tokens(pg, made, rds.auth_token))
    yield made
    rds.forget()


def _count(pg: Server, dbname: str, table: str) -> int:
    with pg.connect(dbname) as conn:
        row = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("app", table)))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_generator_handler_writes_a_tick(pg: Server, function: Function) -> None:
    function.runs_as(db.GENERATOR_ROLE)
    before = _count(pg, function.dbname, "users")
    result = generate.handler({"new_users": 4, "wishlist_adds": 10, "seed": 7}, None)
    assert result["counts"]["users_created"] == 4
    assert _count(pg, function.dbname, "users") == before + 4
    assert result["rows"] > 4
    assert "sslmode=disable" in result["database"]
    assert function.presented and set(function.presented) == {db.GENERATOR_ROLE}


def test_exporter_handler_writes_the_lake(pg: Server, function: Function, s3: S3Endpoint) -> None:
    function.runs_as(db.EXPORTER_ROLE)
    with pg.connect(function.dbname, autocommit=True) as conn:
        add_users(conn, 5, prefix="lambda")
    time.sleep(exporter.run.DEFAULT_SETTLE.total_seconds() + 0.2)  # past the settle margin
    result = export.handler({}, None)
    bucket, prefix = function.target.removeprefix("s3://").split("/", 1)
    keys = s3.keys(bucket, prefix + "/")
    # Iceberg tables in the Glue catalog, their files under the target
    run_folder = f"data/run-{result['run_id']:012d}/"
    users = [k for k in keys if "/users/" in k and run_folder in k]
    assert users and all(k.endswith(".parquet") for k in users)
    assert any("/users/metadata/" in k and k.endswith(".metadata.json") for k in keys)
    assert sum(t["rows"] for t in result["tables"] if t["table"] == "app.users") >= 5
    assert result["namespace"] == s3.namespace and result["target"] == function.target
    # every connection (psycopg's and DuckDB's) asked for a token of the exporter's own
    assert len(function.presented) >= 2 and set(function.presented) == {db.EXPORTER_ROLE}
    # a second run finds nothing new and says so
    again = export.handler(None, None)
    assert again["run_id"] > result["run_id"]
    assert sum(t["rows"] for t in again["tables"] if t["table"] == "app.users") == 0


def test_exporter_handler_maintains_the_lake_on_its_own_schedule(
    pg: Server, function: Function, s3: S3Endpoint
) -> None:
    function.runs_as(db.EXPORTER_ROLE)
    with pg.connect(function.dbname, autocommit=True) as conn:
        add_users(conn, 3, prefix="kept")
    time.sleep(exporter.run.DEFAULT_SETTLE.total_seconds() + 0.2)
    export.handler({}, None)
    result = export.handler({"task": "maintain"}, None)
    done = result["maintenance"]
    assert done["tables"] == 2 * len(export_tables(pg, function.dbname))  # every lake table
    assert done["skipped"] == []
    with pg.connect(function.dbname) as conn:
        swept = conn.execute("select count(*) from etl.lake_maintenance where swept_at is not null")
        assert swept.fetchone() == (done["tables"],)
    # while another maintenance holds the lake, this one is skipped, not failed
    with pg.connect(function.dbname, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (exporter.protocol.MAINTENANCE_LOCK_KEY,))
        skipped = export.handler({"task": "maintain"}, None)
    assert skipped["skipped"].startswith("another lake maintenance is running")


def export_tables(pg: Server, dbname: str) -> list[str]:
    with pg.connect(dbname) as conn:
        return [str(r[0]) for r in conn.execute("select table_name from etl.exported_tables")]


def test_the_tool_roles_must_give_the_token_here(pg: Server, function: Function) -> None:
    """The proof that the tests above prove something: in this database a tool role without
    the right password is turned away, and a wrong token is one clear line with no token."""
    function.runs_as(db.GENERATOR_ROLE)
    settings = db.Settings(
        pg.host, pg.port, db.GENERATOR_ROLE, "not-the-token", function.dbname, False
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(settings.conninfo()).close()
    function.tokens[db.GENERATOR_ROLE] = "localhost:5432/?Action=connect&X-Amz-Signature=forged"
    with pytest.raises(runtime.RunFailed) as failed:
        generate.handler({"new_users": 1, "seed": 3}, None)
    message = str(failed.value)
    assert 'password authentication failed for user "animedb_generator"' in message
    assert "X-Amz-Signature" not in message and "forged" not in message
    assert len(message.splitlines()) == 1


def test_exporter_handler_skips_while_another_exporter_runs(pg: Server, function: Function) -> None:
    function.runs_as(db.EXPORTER_ROLE)
    with pg.connect(function.dbname, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (exporter.protocol.LOCK_KEY,))
        result = export.handler({}, None)
    assert result["skipped"].startswith("another exporter is running")
    with pg.connect(function.dbname) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)


def test_handlers_hold_only_their_roles_grants(pg: Server, function: Function) -> None:
    with pg.connect(function.dbname, autocommit=True) as conn:
        conn.execute("revoke insert on app.users from animedb_generator")
        conn.execute("revoke insert on etl.export_runs from animedb_exporter")
    function.runs_as(db.GENERATOR_ROLE)
    with pytest.raises(runtime.RunFailed, match="permission denied for table users"):
        generate.handler({"new_users": 1, "seed": 3}, None)
    function.runs_as(db.EXPORTER_ROLE)
    with pytest.raises(runtime.RunFailed, match="permission denied for table export_runs"):
        export.handler({}, None)


def test_a_function_configured_for_another_user_is_refused(function: Function) -> None:
    function.runs_as(db.EXPORTER_ROLE)
    with pytest.raises(runtime.RunFailed, match="logs in as animedb_generator"):
        generate.handler({}, None)
    assert function.presented == []


def test_tls_is_required_by_default(
    function: Function, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the override and without the CA bundle (none in the sources: the build fetches
    it) the handler asks for TLS, which the local server does not speak: the attempt fails and
    says why."""
    function.runs_as(db.GENERATOR_ROLE)
    monkeypatch.delenv(rds.SSLMODE_OVERRIDE_VARIABLE)
    monkeypatch.setattr(rds, "CA_BUNDLE", tmp_path / "not-built.pem")
    with pytest.raises(runtime.RunFailed) as failed:
        generate.handler({}, None)
    message = str(failed.value)
    assert "server does not support SSL, but SSL was required" in message
    assert "server NOT verified" in message
    assert "X-Amz-Signature" not in message
    function.runs_as(db.EXPORTER_ROLE)
    with pytest.raises(runtime.RunFailed, match="SSL was required"):
        export.handler({}, None)


def test_events_with_unknown_fields_are_refused(function: Function) -> None:
    function.runs_as(db.GENERATOR_ROLE)
    with pytest.raises(runtime.RunFailed, match=r"unknown event field\(s\) key1"):
        generate.handler({"key1": "value1"}, None)
    with pytest.raises(runtime.RunFailed, match="ratings must be a whole number"):
        generate.handler({"ratings": "many"}, None)
    function.runs_as(db.EXPORTER_ROLE)
    with pytest.raises(runtime.RunFailed, match="unknown event field"):
        export.handler({"target": "s3://elsewhere"}, None)
    with pytest.raises(runtime.RunFailed, match="task 'vacuum' is not one of run, maintain"):
        export.handler({"task": "vacuum"}, None)
    assert function.presented == []  # refused before any work


def test_a_bad_duckdb_setting_is_refused_before_any_work(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    function.runs_as(db.EXPORTER_ROLE)
    monkeypatch.setenv("ANIMEDB_DUCKDB_MEMORY_LIMIT", "garbage")
    with pytest.raises(runtime.RunFailed, match="ANIMEDB_DUCKDB_MEMORY_LIMIT"):
        export.handler({}, None)
    assert function.presented == []
