"""Names read from a lake's metadata never become SQL: a table property or a field renamed by
whoever can edit the catalog (another writer, anyone with Glue rights) to a statement of its own
is refused in one line, before DuckDB runs anything, and nothing is written, in the lake or
elsewhere. Each attack here is one that wrote its file when the names were pasted into SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from exporter import layout, run_export, sqltext
from exporter.errors import ExportError
from exporter.maintenance import MaintenanceSettings
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import file_hashes, open_lake
from tests.pg_harness import Server

NO_MAINTENANCE = MaintenanceSettings(enabled=False)


@pytest.fixture
def lake(pg: Server, app_db: str, tmp_path: Path) -> Path:
    """A lake of one run with a few users, their wishlist and their ratings."""
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 5)
        h.add_watching(conn, users[:3], score=7)
    run_export(str(tmp_path / "lake"), pg.settings(app_db), settle=NO_SETTLE)
    return tmp_path / "lake"


@pytest.fixture
def pwned(tmp_path: Path) -> Path:
    """Where a payload's COPY ... TO would write (it must never exist)."""
    return tmp_path / "pwned.csv"


def set_key_column(lake: Path, table: str, value: str) -> None:
    """What an attacker with rights on the catalog does to a table's properties."""
    loaded = open_lake(str(lake)).catalog.load_table(f"animedb.{table}")
    with loaded.transaction() as transaction:
        transaction.set_properties({layout.KEY_COLUMN: value})


def rename_field(lake: Path, table: str, old: str, new: str) -> None:
    """What an attacker with rights on the catalog does to a table's schema."""
    loaded = open_lake(str(lake)).catalog.load_table(f"animedb.{table}")
    with loaded.update_schema() as update:
        update.rename_column(old, new)


def test_a_key_column_property_that_is_sql_is_refused_by_the_report(
    pg: Server, app_db: str, lake: Path, pwned: Path
) -> None:
    payload = (
        'user_id" as k, _run_id as run, _deleted as deleted from versions_source;\n'
        f"copy (select 42) to '{pwned}'; --"
    )
    set_key_column(lake, "users_changes", payload)
    before = file_hashes(lake)

    proc = h.run_cli(h.exporter_env(pg, app_db), "report", "--target", str(lake))

    line = h.assert_refused(proc, "animedb.users_changes", layout.KEY_COLUMN, "new target")
    assert "\\n" in line  # the value shown escaped, on the one line
    assert not pwned.exists()
    assert not (lake.parent / "lake-report.html").exists()
    assert file_hashes(lake) == before


def test_a_key_column_property_naming_no_field_is_refused_by_the_report(
    pg: Server, app_db: str, lake: Path
) -> None:
    set_key_column(lake, "users_changes", "username_typo")

    proc = h.run_cli(h.exporter_env(pg, app_db), "report", "--target", str(lake))

    h.assert_refused(proc, "animedb.users_changes", layout.KEY_COLUMN, "'username_typo'")


def test_a_field_renamed_to_sql_is_refused_by_verify(
    pg: Server, app_db: str, lake: Path, pwned: Path
) -> None:
    """The current state's first field: what rows_sql pastes as a null column (no data file
    has a column of that name) and then the statement it would end."""
    rename_field(lake, "users", "user_id", f"x\"; copy (select 42) to '{pwned}'; --")
    before = file_hashes(lake)

    proc = h.run_cli(h.exporter_env(pg, app_db), "verify", "--target", str(lake))

    h.assert_refused(proc, "animedb.users", "field", "new target")
    assert not pwned.exists()
    assert file_hashes(lake) == before


def test_a_field_renamed_to_sql_is_refused_by_the_run(
    pg: Server, app_db: str, lake: Path, pwned: Path, tmp_path: Path
) -> None:
    """A field renamed alike in both tables of a source (so their field ids still agree), then
    a new row, so that the run writes a file of that schema: select_list's column alias."""
    junk = tmp_path / "junk.csv"
    payload = f"x\" from pg.app.users) to '{junk}'; copy (select 42) to '{pwned}'; --"
    for table in ("users_changes", "users"):
        rename_field(lake, table, "bio", payload)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 1, prefix="late")
    before = file_hashes(lake)

    proc = h.run_cli(
        h.exporter_env(pg, app_db), "run", "--target", str(lake), "--quiet", "--settle", "0"
    )

    h.assert_refused(proc, "animedb.users_changes", "field", "new target")
    assert not pwned.exists() and not junk.exists()
    assert file_hashes(lake) == before


def test_a_key_column_property_that_is_sql_is_refused_by_maintenance(
    pg: Server, app_db: str, tmp_path: Path, pwned: Path
) -> None:
    """Half the current state's rows deleted makes its file due for a rewrite in key order:
    the key column property is what the rewrite orders by."""
    target = tmp_path / "lake"
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 10)
        run_export(str(target), settings, settle=NO_SETTLE, maintenance_settings=NO_MAINTENANCE)
        conn.execute("delete from app.users where user_id = any(%s)", (users[:5],))
        run_export(str(target), settings, settle=NO_SETTLE, maintenance_settings=NO_MAINTENANCE)
    junk = tmp_path / "junk.csv"
    set_key_column(target, "users", f"user_id\") to '{junk}'; copy (select 42) to '{pwned}'; --")
    before = file_hashes(target)

    proc = h.run_cli(h.exporter_env(pg, app_db), "maintain", "--target", str(target), "--quiet")

    h.assert_refused(proc, "animedb.users", layout.KEY_COLUMN, "new target")
    assert not pwned.exists() and not junk.exists()
    assert file_hashes(target) == before


@pytest.mark.parametrize(
    "name", ['a"b', '"', "x\"; copy (select 42) to '/tmp/p.csv'; --", "it's", "a\nb", "é"]
)
def test_identifier_quotes_any_name_as_itself(name: str) -> None:
    con = duckdb.connect()
    con.execute(f"select 1 as {sqltext.identifier(name)}")
    assert con.description is not None
    assert [d[0] for d in con.description] == [name]


@pytest.mark.parametrize("value", ["it's", "'); copy (select 42) to '/tmp/p.csv'; --", "a\\", "é"])
def test_literal_quotes_any_value_as_itself(value: str) -> None:
    assert duckdb.connect().execute(f"select {sqltext.literal(value)}").fetchall() == [(value,)]


def test_a_nul_character_is_refused_rather_than_cut_short() -> None:
    for quote in (sqltext.identifier, sqltext.literal):
        with pytest.raises(ExportError, match="NUL"):
            quote("a\x00b")


def test_a_source_column_whose_name_is_sql_is_refused_before_the_run(
    pg: Server, app_db: str, lake: Path, pwned: Path
) -> None:
    """A column of an exported table is quoted by name in the exporter's SQL: one whose name
    would end the quote is refused before anything is read or recorded."""
    with pg.connect(app_db, autocommit=True) as conn:
        column = f"note\"\" from app.users; copy (select 42) to '{pwned}'; --"
        conn.execute(f'alter table app.users add column "{column}" text')
        runs = conn.execute("select count(*) from etl.export_runs").fetchone()
        before = file_hashes(lake)
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(lake), "--quiet")
        h.assert_refused(proc, "app.users has column", "not a plain name")
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == runs
    assert not pwned.exists()
    assert file_hashes(lake) == before
