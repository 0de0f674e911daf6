"""The Lambda handlers end to end: an event in, against a real PostgreSQL and moto's Secrets Manager
and S3, as the function would see them (the secret RDS manages, the template's environment), and
rows generated or files in the bucket out."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

import exporter.protocol
import exporter.run
from tests.exporter_helpers import add_users
from tests.infra_helpers import (
    create_rds_secret,
    export,
    generate,
    put_rds_secret,
    rds,
    runtime,
)
from tests.pg_harness import Server
from tests.s3_harness import S3Endpoint

PASSWORD = "Rotated-By-RDS-0123456789"
_logins = itertools.count(1)


@dataclass
class Function:
    """What a deployed function sees: its environment, its secret, its database."""

    secret_arn: str
    login: str
    dbname: str
    target: str


def _make_login(conn: psycopg.Connection[TupleRow]) -> str:
    """A login role like RDS's master user: no superuser, a member of the tools' roles."""
    name = f"lambda_admin_{next(_logins)}"
    conn.execute(
        sql.SQL("create role {} login password {}").format(
            sql.Identifier(name), sql.Literal(PASSWORD)
        )
    )
    conn.execute(
        sql.SQL("grant animedb_generator, animedb_exporter to {}").format(sql.Identifier(name))
    )
    return name


@pytest.fixture
def function(
    pg: Server,
    app_db: str,
    s3: S3Endpoint,
    s3_target: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Function]:
    with pg.connect("postgres", autocommit=True) as conn:
        login = _make_login(conn)
    arn = create_rds_secret(s3, login, PASSWORD)
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(rds.SECRET_ARN_VARIABLE, arn)
    monkeypatch.setenv(rds.HOST_VARIABLE, pg.host)
    monkeypatch.setenv(rds.PORT_VARIABLE, str(pg.port))
    monkeypatch.setenv(rds.NAME_VARIABLE, app_db)
    # the local server has no TLS: the one setting the template never sets
    monkeypatch.setenv(rds.SSLMODE_OVERRIDE_VARIABLE, "disable")
    monkeypatch.setenv(export.TARGET_VARIABLE, s3_target)
    monkeypatch.setenv(export.MEMORY_VARIABLE, "1024")
    rds.forget()
    yield Function(arn, login, app_db, s3_target)
    rds.forget()
    with pg.connect(app_db, autocommit=True) as conn:  # roles are the server's, not the test's
        for (role,) in conn.execute(
            "select rolname from pg_roles where rolname like 'lambda\\_admin\\_%%'"
        ).fetchall():
            conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def _count(pg: Server, dbname: str, table: str) -> int:
    with pg.connect(dbname) as conn:
        row = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("app", table)))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_generator_handler_writes_a_tick(pg: Server, function: Function) -> None:
    before = _count(pg, function.dbname, "users")
    result = generate.handler({"new_users": 4, "wishlist_adds": 10, "seed": 7}, None)
    assert result["counts"]["users_created"] == 4
    assert _count(pg, function.dbname, "users") == before + 4
    assert result["rows"] > 4
    assert "sslmode=disable" in result["database"]
    assert rds.fetches == 1


def test_exporter_handler_writes_the_lake(pg: Server, function: Function, s3: S3Endpoint) -> None:
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
    # a second run finds nothing new and says so
    again = export.handler(None, None)
    assert again["run_id"] > result["run_id"]
    assert sum(t["rows"] for t in again["tables"] if t["table"] == "app.users") == 0


def test_exporter_handler_skips_while_another_exporter_runs(pg: Server, function: Function) -> None:
    with pg.connect(function.dbname, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (exporter.protocol.LOCK_KEY,))
        result = export.handler({}, None)
    assert result["skipped"].startswith("another exporter is running")
    with pg.connect(function.dbname) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)


def test_handlers_act_as_their_roles(pg: Server, function: Function) -> None:
    """The master user may do anything; the tools may not: they SET ROLE to theirs."""
    with pg.connect(function.dbname, autocommit=True) as conn:
        conn.execute("revoke insert on app.users from animedb_generator")
        conn.execute("revoke update on etl.watermarks from animedb_exporter")
        conn.execute("revoke insert on etl.export_runs from animedb_exporter")
        conn.execute(
            sql.SQL("grant all on all tables in schema app, etl to {}").format(
                sql.Identifier(function.login)
            )
        )
    with pytest.raises(runtime.RunFailed, match="permission denied for table users"):
        generate.handler({"new_users": 1, "seed": 3}, None)
    with pytest.raises(runtime.RunFailed, match="permission denied for table export_runs"):
        export.handler({}, None)


def test_a_rotated_secret_is_read_again(
    pg: Server, function: Function, s3: S3Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    generate.handler({"new_users": 1, "seed": 1}, None)
    assert rds.fetches == 1
    # rotation: a new login in the secret, and the remembered one no longer accepted
    with pg.connect("postgres", autocommit=True) as conn:
        new_login = _make_login(conn)
        put_rds_secret(s3, function.secret_arn, new_login, PASSWORD)
        conn.execute(sql.SQL("drop role {}").format(sql.Identifier(function.login)))
    with caplog.at_level(logging.WARNING, logger=rds.__name__):
        result = generate.handler({"new_users": 2, "seed": 2}, None)
    assert result["counts"]["users_created"] == 2
    assert rds.fetches == 2
    assert "reading the secret again" in caplog.text
    assert PASSWORD not in caplog.text


def test_tls_is_required_by_default(
    function: Function, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the override and without the CA bundle (none in the sources: the build fetches
    it) the handler asks for TLS, which the local server does not speak: the attempt fails and
    says why."""
    monkeypatch.delenv(rds.SSLMODE_OVERRIDE_VARIABLE)
    monkeypatch.setattr(rds, "CA_BUNDLE", tmp_path / "not-built.pem")
    with pytest.raises(runtime.RunFailed) as failed:
        generate.handler({}, None)
    message = str(failed.value)
    assert "server does not support SSL, but SSL was required" in message
    assert "server NOT verified" in message
    assert PASSWORD not in message
    with pytest.raises(runtime.RunFailed, match="SSL was required"):
        export.handler({}, None)


def test_events_with_unknown_fields_are_refused(function: Function) -> None:
    with pytest.raises(runtime.RunFailed, match=r"unknown event field\(s\) key1"):
        generate.handler({"key1": "value1"}, None)
    with pytest.raises(runtime.RunFailed, match="ratings must be a whole number"):
        generate.handler({"ratings": "many"}, None)
    with pytest.raises(runtime.RunFailed, match="unknown event field"):
        export.handler({"target": "s3://elsewhere"}, None)
    assert rds.fetches == 0  # refused before any work
