"""The lake as other engines read it: DuckDB's own Iceberg reader and pyiceberg's metadata
agree with PostgreSQL, on a local folder and on S3 with the Glue Data Catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from animedb import files as animedb_files
from exporter import run_export
from exporter import verify as verify_module
from tests import exporter_helpers as h
from tests import s3_harness
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    add_early_users,
    as_text,
    change_everything,
    lake_count,
    lake_rows,
    lake_tables,
    open_lake,
    pg_columns,
    pg_rows,
    reader,
    scan,
    verified,
)
from tests.pg_harness import Server


def test_duckdb_reads_every_table_as_postgres_has_it(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    settings, env = pg.settings(app_db), pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        add_early_users(conn)
        first = run_export(target, settings, settle=NO_SETTLE)
        deleted = change_everything(conn)
        second = run_export(target, settings, settle=NO_SETTLE)
        assert second.run_id == first.run_id + 1 and not second.resumed

        listed = lake_tables(env, target)
        exported = {
            str(r[0]) for r in conn.execute("select table_name from etl.exported_tables").fetchall()
        }
        assert set(listed) == exported
        checks = verified(target, pg, app_db)
        con = reader()
        for source, item in sorted(listed.items()):
            relname = source.split(".")[1]
            assert item["current"]["identifier"] == f"animedb.{relname}"
            assert item["changes"]["identifier"] == f"animedb.{relname}_changes"
            location = item["current"]["metadata_location"]
            assert lake_count(con, location) == checks[source].lake_rows, source
            assert checks[source].lake_rows == checks[source].compared, source
            # every column of every row, as PostgreSQL has it (no writer since the run)
            columns = pg_columns(conn, source)
            assert lake_rows(con, location, columns) == pg_rows(conn, source, columns), source
        committed = set(
            h.ids(conn, "select run_id from etl.export_runs where status = 'committed'")
        )
        assert committed == {first.run_id, second.run_id}

        # the change log: deletes as rows with _deleted, every row naming its run
        for source, keys in deleted.items():
            assert keys, source
            key = "rating_id" if source == "app.ratings" else "wishlist_id"
            log = listed[source]["changes"]["metadata_location"]
            rows = scan(con, log, f'"{key}", _run_id', where="_deleted")
            assert {int(str(k)) for k, _ in rows} == keys
            assert {int(str(r)) for _, r in rows} == {second.run_id}
            runs = scan(con, log, "distinct _run_id")
            assert {int(str(r)) for (r,) in runs} == committed
            assert not scan(con, log, "*", where="_deleted is null or _run_id is null")
        started = {
            str(run): as_text(at)
            for run, at in conn.execute(
                "select run_id, started_at from etl.export_runs where status = 'committed'"
            ).fetchall()
        }
        users_log = listed["app.users"]["changes"]["metadata_location"]
        stamps = scan(con, users_log, "distinct _run_id, _exported_at")
        assert {str(r): as_text(at) for r, at in stamps} == started  # the run and its start
        by_run = {
            int(str(run)): int(str(count))
            for run, count in scan(con, users_log, "_run_id, count(*)", where="true group by 1")
        }
        assert by_run == {first.run_id: 10, second.run_id: 4}  # 3 new, early_1 changed
        changed = scan(con, users_log, "bio, _run_id", where="username = 'early_1'")
        assert sorted(changed, key=repr) == sorted(
            [(None, first.run_id), ("changed", second.run_id)], key=repr
        )


# --- 2. the lake as of run N ---------------------------------------------------------------------


ACTIVITY = ("app.users", "app.wishlist", "app.ratings")


def test_metadata_files_are_readable_by_other_users(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another engine may read the lake as another user: the metadata files the exporter
    writes get the umask's mode, not the owner-only one of a temporary file."""
    monkeypatch.setattr(animedb_files, "_UMASK", 0o022)
    target = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 3)
    run_export(str(target), pg.settings(app_db), settle=NO_SETTLE)
    metadata = [p for p in target.rglob("*") if p.is_file() and p.parent.name == "metadata"]
    assert any(p.name.endswith(".metadata.json") for p in metadata)
    assert any(p.name.endswith(".avro") for p in metadata)
    unreadable = [str(p) for p in metadata if p.stat().st_mode & 0o044 != 0o044]
    assert not unreadable


def test_s3_with_the_glue_catalog(
    pg: Server, app_db: str, s3: s3_harness.S3Endpoint, s3_target: str
) -> None:
    namespace = s3.namespace  # Glue is one per moto server: the s3 fixture's keeps tests apart
    settings, env = pg.settings(app_db), pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        add_early_users(conn)
        first = run_export(s3_target, settings, settle=NO_SETTLE, namespace=namespace)
        assert first.catalog == "animedb" and first.namespace == namespace
        change_everything(conn)
        second = run_export(s3_target, settings, settle=NO_SETTLE, namespace=namespace)
        assert {t.table: t.rows for t in second.tables}["app.users"] == 4
        checks = {
            c.table: c for c in verify_module.verify(s3_target, settings, namespace=namespace)
        }
        assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
        assert checks["app.users"].lake_rows == 13

        listed = lake_tables(env, s3_target, namespace)
        prefix = s3_target.rstrip("/") + "/"
        for item in listed.values():
            for role in ("current", "changes"):
                assert item[role]["metadata_location"].startswith(prefix), item
                assert item[role]["identifier"].startswith(f"{namespace}.")

        lake = open_lake(s3_target, namespace)
        glue = s3.service("glue")
        for source, item in listed.items():
            for role in ("current", "changes"):
                name = item[role]["identifier"].split(".", 1)[1]
                parameters = glue.get_table(DatabaseName=namespace, Name=name)["Table"][
                    "Parameters"
                ]
                assert parameters["table_type"] == "ICEBERG", (source, parameters)
                location = lake.catalog.load_table(item[role]["identifier"]).metadata_location
                assert (
                    parameters["metadata_location"] == location == item[role]["metadata_location"]
                )

        # and DuckDB reads the tables straight from S3
        con = reader(s3_target)
        columns = pg_columns(conn, "app.users")
        users = listed["app.users"]["current"]["metadata_location"]
        assert lake_rows(con, users, columns) == pg_rows(conn, "app.users", columns)
