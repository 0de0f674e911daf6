"""Shared fixtures: a real PostgreSQL 15 server for the session, a dbt project built once into a
template database, and a fresh copy of that database for every test that writes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from animedb import db
from tests import pg_harness, s3_harness
from tests.pg_harness import Server

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    """Debian's PostgreSQL 15 on a free loopback port, for the whole session."""
    try:
        server = pg_harness.start_debian_pg()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield server
    pg_harness.stop_debian_pg(server)


@pytest.fixture(scope="session")
def dbt_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's dbt project with the small hand-written seeds of tests/dbt_fixture."""
    return pg_harness.make_dbt_project(tmp_path_factory.mktemp("dbt_project"))


@pytest.fixture(scope="session")
def built_template(pg: Server, dbt_project: Path) -> str:
    """A database built by `dbt build` from the fixture seeds, used as a template."""
    name = "animedb_template"
    pg.create_database(name)
    pg_harness.run_dbt(dbt_project, pg.env(name), "build")
    return name


@pytest.fixture
def own_project(tmp_path: Path) -> Path:
    """A copy of the project with the fixture seeds, which this test may change."""
    return pg_harness.make_dbt_project(tmp_path / "project")


@pytest.fixture
def app_db(pg: Server, built_template: str) -> str:
    """A fresh copy of the built database, for one test to change as it likes."""
    name = f"animedb_test_{next(_database_numbers)}"
    pg.create_database(name, template=built_template)
    return name


@pytest.fixture
def conn(pg: Server, app_db: str) -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit connection to the test's database, as the superuser."""
    with pg.connect(app_db, autocommit=True) as connection:
        yield connection


@pytest.fixture
def password_db(pg: Server, built_template: str) -> Iterator[str]:
    """A copy of the built database in which the tool roles must give a password
    (pg_harness.PASSWORD_RULE); the roles are the server's, so their passwords go afterwards."""
    pg.create_database(pg_harness.PASSWORD_DATABASE, template=built_template)
    yield pg_harness.PASSWORD_DATABASE
    with pg.connect("postgres", autocommit=True) as conn:
        for role in (db.GENERATOR_ROLE, db.EXPORTER_ROLE):
            conn.execute(sql.SQL("alter role {} password null").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[s3_harness.S3Endpoint]:
    """moto's S3 server on loopback, authenticating, behind a proxy tests can cut."""
    endpoint = s3_harness.start_s3()
    yield endpoint
    s3_harness.stop_s3(endpoint)


@pytest.fixture
def s3(s3_server: s3_harness.S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> s3_harness.S3Endpoint:
    """The S3 endpoint with a fresh bucket `lake-<n>` and the AWS variables of this process set."""
    number = next(_database_numbers)
    bucket = f"lake-{number}"
    s3_server.namespace = f"lake_{number}"
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3_server.create_bucket(bucket)
    if not s3_server.proxy.running:
        s3_server.proxy.start()
    return s3_server


@pytest.fixture
def s3_target(s3: s3_harness.S3Endpoint) -> str:
    """An s3:// target in this test's fresh bucket."""
    return f"s3://{s3.buckets[-1]}/lake"
