"""Export runs against a real PostgreSQL and a real S3 endpoint: full, then incremental, exact."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from animedb import REPO
from exporter import catalog, deletefiles, layout, live, run_export
from exporter.errors import ExportError
from exporter.maintenance import MaintenanceSettings
from exporter.storage import sha256_of
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import open_lake
from tests.pg_harness import Server


def change_everything(conn: h.Conn) -> dict[str, set[int]]:
    """Inserts, updates and deletes in audited and id tables; the keys each table should ship."""
    new = h.add_users(conn, 3, prefix="late")
    conn.execute("update app.users set bio = 'changed' where username = 'early_1'")
    conn.execute("update app.users set bio = bio where username = 'early_2'")  # not a change
    old = h.ids(
        conn, "select user_id from app.users where username in ('early_3', 'early_4') order by 1"
    )
    conn.execute("delete from app.ratings where user_id = any(%s)", (old,))
    conn.execute("delete from app.wishlist where user_id = any(%s)", (old,))
    h.add_watching(conn, new[:1], mal_id=1, score=10)
    conn.execute(
        "delete from app.anime_genres where anime_genre_id = (select min(anime_genre_id) from app.anime_genres)"
    )
    changed_user = conn.execute(
        "select user_id from app.users where username = 'early_1'"
    ).fetchone()
    assert changed_user is not None
    return {"app.users": {*new, int(changed_user[0])}}


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_full_then_incremental_is_exact(
    pg: Server, app_db: str, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    target = str(tmp_path / "lake") if where == "folder" else request.getfixturevalue("s3_target")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        early = h.add_users(conn, 10, prefix="early")
        h.add_watching(conn, early[:5])

        first = run_export(target, settings, settle=NO_SETTLE)
        by_table = {t.table: t for t in first.tables}
        assert by_table["app.users"].rows == 10
        assert by_table["app.ratings"].rows == 5
        assert by_table["app.anime"].rows == 5
        h.assert_exact(target, pg, app_db)

        expected = change_everything(conn)
        second = run_export(target, settings, settle=NO_SETTLE)
        by_table = {t.table: t for t in second.tables}
        assert by_table["app.users"].rows == len(expected["app.users"])  # only what changed
        assert by_table["app.anime"].rows == 0 and by_table["app.genres"].rows == 0
        assert by_table["etl.tombstones"].rows == 5  # 2 ratings, 2 wishlist entries, 1 genre link
        checks = {c.table: c for c in h.assert_exact(target, pg, app_db)}
        assert checks["app.users"].compared == 13 and checks["app.wishlist"].compared == 4
        assert checks["app.anime_genres"].lake_rows == checks["app.anime_genres"].compared

        third = run_export(target, settings, settle=NO_SETTLE)
        assert third.rows == 0 and third.run_id == second.run_id + 1
        watermarks: dict[str, int] = dict(
            conn.execute("select table_name, last_run_id from etl.watermarks").fetchall()
        )
        assert len(watermarks) == len(first.tables)
        assert set(watermarks.values()) == {third.run_id}  # zero rows still advance to the bound


def current_files(target: str, name: str) -> list[str]:
    """Data files of a current-state lake table, from its Iceberg metadata."""
    lake = open_lake(target)
    table = lake.catalog.load_table(lake.identifier(name))
    return [f.file_path for f in live.live_files(table).data]


def test_lake_layout_and_snapshots(pg: Server, app_db: str, tmp_path: Path) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 4)
        summary = run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
        lake = open_lake(str(tmp_path))
        assert (tmp_path / catalog.LOCAL_CATALOG_FILE).is_file()  # the serverless local catalog
        users = lake.catalog.load_table("animedb.users")
        changes = lake.catalog.load_table("animedb.users_changes")
        assert users.format_version == 2 and changes.format_version == 2
        [path] = [f.file_path for f in live.live_files(users).data]
        assert re.fullmatch(
            rf"{re.escape(users.location())}/data/run-{summary.run_id:012d}/chunk-00000\.parquet",
            path,
        )
        snapshot = users.current_snapshot()
        assert snapshot is not None and snapshot.summary is not None
        props = snapshot.summary.additional_properties
        assert props[layout.RUN_ID] == str(summary.run_id)
        assert json.loads(props[layout.WINDOW])["lo"].startswith("1970-01-01")
        assert props["added-records"] == "4"
        # a summary stays small: no file list in it (checksums are PostgreSQL's)
        assert not [
            k
            for k in props
            if k.startswith("animedb.")
            and k not in (layout.RUN_ID, layout.WINDOW, layout.BOUND_TIME)
        ]
        assert len(json.dumps(props)) < 1000
        [(recorded,)] = conn.execute(
            "select f.value->>'sha256' from etl.export_chunks c, jsonb_each(c.files) f"
            " where c.run_id = %s and f.value->>'location' = %s",
            (summary.run_id, path),
        ).fetchall()
        assert recorded == sha256_of(Path(path))
        assert users.metadata.refs[layout.tag(summary.run_id)].snapshot_id == snapshot.snapshot_id
        # the properties that keep the table's history bounded, for every engine
        assert users.properties[layout.DELETE_AFTER_COMMIT] == "true"
        assert int(users.properties[layout.PREVIOUS_VERSIONS]) > 0
        assert users.properties[layout.MAX_SNAPSHOT_AGE] == str(7 * 24 * 3600 * 1000)
        # the change log: source columns and its own, partitioned by export day
        names = [f.name for f in changes.schema().fields]
        assert names[-3:] == ["_run_id", "_deleted", "_exported_at"]
        assert [f.name for f in changes.spec().fields] == ["export_day"]
        # a table made by the run, with nothing to export, has the run's (empty) snapshot
        ratings = lake.catalog.load_table("animedb.ratings")
        assert layout.tag(summary.run_id) in ratings.metadata.refs
        # the next run, with news for users only, commits to users only
        h.add_users(conn, 1, prefix="next")
        second = run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
    assert {t.table for t in second.tables if t.committed} == {"app.users"}
    ratings.refresh()
    assert layout.tag(second.run_id) not in ratings.metadata.refs
    assert len(ratings.metadata.snapshots) == 1
    # zstd-compressed Parquet with Iceberg field ids; nothing half-written left in the folders
    con = duckdb.connect()
    meta = con.execute(f"select distinct compression from parquet_metadata('{path}')").fetchall()
    assert meta == [("ZSTD",)]
    ids = dict(
        con.execute(
            f"select name, field_id from parquet_schema('{path}') where field_id is not null"
        ).fetchall()
    )
    # a file of the current state carries its columns only (the run's own among them), by
    # the ids the change log gives them; the log's own file adds `_deleted`
    assert ids == {f.name: f.field_id for f in users.schema().fields}
    assert "_deleted" not in ids
    log_file = next(p for p in (tmp_path / "animedb" / "users_changes").rglob("chunk-*.parquet"))
    log_ids = dict(
        con.execute(
            f"select name, field_id from parquet_schema('{log_file}') where field_id is not null"
        ).fetchall()
    )
    assert log_ids == {f.name: f.field_id for f in changes.schema().fields}
    assert not [p for p in tmp_path.rglob(".*") if p.name != ".write-check"]


def test_types_keep_their_meaning(pg: Server, app_db: str, tmp_path: Path) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("create type app.mood as enum ('happy', 'sad')")
        conn.execute(
            "create table app.type_probe (probe_id bigint primary key, amount numeric(12,4),"
            " at timestamptz, day date, flag boolean, mood app.mood, doc jsonb, small smallint, label text)"
        )
        conn.execute(
            "insert into app.type_probe values (1, 12345678.1234, '2024-02-29 23:59:59.123456+09',"
            " '2024-02-29', true, 'sad', '{\"a\": [1, 2]}', 7, 'ナルト'), (2, null, null, null, null, null, null, null, null)"
        )
        conn.execute("grant select on app.type_probe to animedb_exporter")
        h.list_for_export(conn, "app.type_probe", "probe_id")
    run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
    [path] = current_files(str(tmp_path), "type_probe")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    types = dict(
        con.execute(
            f"select column_name, column_type from (describe select * from '{path}')"
        ).fetchall()
    )
    assert types["amount"] == "DECIMAL(12,4)"
    assert types["at"] == "TIMESTAMP WITH TIME ZONE"
    # Iceberg has no 16-bit integer: smallint is stored as int
    assert types["day"] == "DATE" and types["flag"] == "BOOLEAN" and types["small"] == "INTEGER"
    assert types["mood"] == "VARCHAR" and types["label"] == "VARCHAR"
    assert types["doc"] in ("VARCHAR", "JSON")
    row = con.execute(
        f"select amount, \"at\", day, mood, doc::varchar, label from '{path}' where probe_id = 1"
    ).fetchone()
    assert row is not None
    assert row[0] == Decimal("12345678.1234")
    assert row[1] == dt.datetime(2024, 2, 29, 14, 59, 59, 123456, tzinfo=dt.UTC)
    assert row[2] == dt.date(2024, 2, 29) and row[3] == "sad" and row[5] == "ナルト"
    assert json.loads(str(row[4])) == {"a": [1, 2]}
    # timestamps are stored as UTC instants in the file itself
    schema = con.execute(
        f"select logical_type from parquet_schema('{path}') where name = 'at'"
    ).fetchone()
    assert schema is not None and "isAdjustedToUTC=1" in str(schema[0]).replace("true", "1")


def test_delta_reads_use_the_cursor_index(pg: Server, app_db: str, tmp_path: Path) -> None:
    """The SQL DuckDB sends for a delta is one COPY with the window in its WHERE clause, and
    PostgreSQL answers it from the modified_date index."""
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 20000, prefix="bulk")
        conn.execute("analyze app.users")
    run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5, prefix="delta")
    script = (
        "import sys, datetime as dt; from exporter.run import run_export; from exporter import duck\n"
        "from animedb import db\n"
        "orig = duck.attach_postgres\n"
        "def attach(con, *a, **k):\n"
        "    orig(con, *a, **k); con.execute('SET pg_debug_show_queries = true')\n"
        "duck.attach_postgres = attach\n"
        f"run_export({str(tmp_path)!r}, settle=dt.timedelta(0))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=pg.env(app_db),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    copies = [
        line
        for line in proc.stderr.splitlines()
        if line.startswith("COPY (SELECT") and '"app"."users"' in line
    ]
    assert len(copies) == 1, proc.stderr[-3000:]
    sent = copies[0]
    assert '"modified_date" >= ' in sent and '"modified_date" < ' in sent and "ctid" not in sent
    query = re.match(r"COPY \((.*)\) TO STDOUT", sent)
    assert query is not None
    with pg.connect(app_db) as conn:
        plan = "\n".join(str(r[0]) for r in conn.execute(f"explain {query.group(1)}").fetchall())
    assert "users_modified_date" in plan and "Seq Scan" not in plan, plan


def test_a_second_exporter_is_refused(pg: Server, app_db: str, tmp_path: Path) -> None:
    with pg.connect(app_db, autocommit=True) as holder:
        holder.execute("set application_name = 'animedb-exporter'")
        holder.execute("select pg_advisory_lock(%s)", (0x616E696D65646201,))
        with pytest.raises(
            ExportError, match=r"another exporter is running \(pid \d+, animedb-exporter"
        ):
            run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
        count = holder.execute("select count(*) from etl.export_runs").fetchone()
        assert count == (0,)


def test_status_names_what_holds_the_bound_back(pg: Server, app_db: str, tmp_path: Path) -> None:
    env = pg.env(app_db)
    h.run_cli(env, "run", "--target", str(tmp_path), "--quiet")
    with pg.connect(app_db) as idle:
        idle.execute("set application_name = 'forgotten-session'")
        idle.execute("select count(*) from app.users")  # leaves the transaction open, idle
        proc = h.run_cli(env, "status", "--json")
        assert proc.returncode == 0, proc.stderr
        status = json.loads(proc.stdout)
        assert status["held_back_by"]["application_name"] == "forgotten-session"
        assert status["held_back_by"]["state"] == "idle in transaction"
        tables = {t["table"]: t for t in status["tables"]}
        assert (
            tables["app.users"]["last_run_id"] == 1
            and tables["app.users"]["load_type"] == "modified"
        )
        # and the run the session holds back exports nothing newer than that transaction's start
        with pg.connect(app_db, autocommit=True) as writer:
            h.add_users(writer, 2, prefix="after")
        summary = run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
        assert {t.table: t.rows for t in summary.tables}["app.users"] == 0
    summary = run_export(str(tmp_path), pg.settings(app_db), settle=NO_SETTLE)
    assert {t.table: t.rows for t in summary.tables}["app.users"] == 2


def test_cli_run_summary_and_json(pg: Server, app_db: str, tmp_path: Path) -> None:
    env = pg.env(app_db)
    proc = h.run_cli(env, "run", "--target", str(tmp_path), "--json", "--settle", "0")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run_id"] == 1 and summary["rows"] > 0
    assert {t["table"] for t in summary["tables"]} >= {"app.anime", "etl.tombstones"}
    proc = h.run_cli(env, "run", "--target", str(tmp_path), "--settle", "0")
    assert proc.returncode == 0 and "total" in proc.stdout and "run 2" in proc.stdout
    proc = h.run_cli(env, "verify", "--target", str(tmp_path))
    assert proc.returncode == 0 and "DIFFERS" not in proc.stdout
    # a pipe (a CI or Lambda log) gets every table name whole, the longest included
    names = {t["table"] for t in summary["tables"]}
    for command in (["run", "--target", str(tmp_path), "--settle", "0"],
                    ["verify", "--target", str(tmp_path)], ["status", "--target", str(tmp_path)]):  # fmt: skip
        proc = h.run_cli({**env, "COLUMNS": "40"}, *command)
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, proc.stdout
        assert all(name in proc.stdout for name in names), proc.stdout


def test_a_data_file_has_one_delete_file_naming_it_alone(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """Position deletes are scoped to one data file (whole `file_path` bounds say which), and a
    run's delete file of a data file replaces the one before, as a deletion vector would."""
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    # no maintenance: it would rewrite files this much deleted from
    off = MaintenanceSettings(enabled=False)
    with pg.connect(app_db, autocommit=True) as conn:
        first = h.add_users(conn, 6, prefix="first")
        run_export(target, settings, settle=NO_SETTLE, maintenance_settings=off)
        second = h.add_users(conn, 6, prefix="second")
        run_export(target, settings, settle=NO_SETTLE, maintenance_settings=off)  # two data files
        for round_ in range(3):
            touched = [first[round_], second[round_]]
            conn.execute(
                "update app.users set display_name = display_name || '!' where user_id = any(%s)",
                (touched,),
            )
            run_export(target, settings, settle=NO_SETTLE, maintenance_settings=off)
        h.assert_exact(target, pg, app_db)
    users = open_lake(target).load("users")
    assert users is not None
    files = live.live_files(users)
    data = {f.file_path for f in files.data}
    named = [deletefiles.referenced(d) for d in files.deletes]
    assert len(files.deletes) == len(set(named)) and set(named) <= data
    con = duckdb.connect()
    for d, path in zip(files.deletes, named, strict=True):
        stored = con.execute(
            f"select distinct file_path from read_parquet('{d.file_path.removeprefix('file://')}')"
        ).fetchall()
        assert stored == [(path,)]
    # the two first files carry the three rounds' deletes, three positions each
    assert sorted(d.record_count for d in files.deletes)[-2:] == [3, 3]
