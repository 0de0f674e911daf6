"""Shared fixtures: a real PostgreSQL 15 server for the session, a dbt project built once into a
template database, and a fresh copy of that database for every test that writes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from tests import pg_harness
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
