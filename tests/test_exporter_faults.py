"""Faults and bad input: each ends with one clear line and a non-zero exit, the watermarks where
they were, and (where the fault goes away) a next run that succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from exporter.pauses import PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests.exporter_helpers import assert_one_clear_line, watermarks
from tests.pg_harness import Server, free_port
from tests.s3_harness import S3Endpoint


def test_s3_endpoint_gone_mid_run(pg: Server, app_db: str, s3: S3Endpoint, s3_target: str) -> None:
    env = h.exporter_env(pg, app_db, **s3.env())
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 40))
        first = h.run_cli(env, "run", "--target", s3_target, "--quiet", "--settle", "0")
        assert first.returncode == 0, first.stderr
        h.add_users(conn, 10, prefix="more")
        before = watermarks(conn)

        proc = h.spawn_cli(
            {**env, PAUSE_VARIABLE: "during_files:3"},
            "run",
            "--target",
            s3_target,
            "--quiet",
            "--settle",
            "0",
        )
        h.wait_for_line(proc, "paused at during_files")
        s3.proxy.stop()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert_one_clear_line(stderr, "S3 endpoint")
        assert watermarks(conn) == before

        s3.proxy.start()
        again = h.run_cli(env, "run", "--target", s3_target, "--quiet", "--settle", "0")
        assert again.returncode == 0, again.stderr
    h.assert_exact(s3_target, pg, app_db)


def test_database_connection_dropped_mid_read(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path)
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 300_000, prefix="many")
        before = watermarks(conn)
        proc = h.spawn_cli(env, "run", "--target", target, "--quiet", "--settle", "0")
        killed = 0
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            killed = len(
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where application_name = 'animedb-exporter-reader' and query like 'COPY%%users%%'"
                    " and state = 'active'"
                ).fetchall()
            )
            time.sleep(0.005)
        _, stderr = proc.communicate(timeout=120)
        assert killed, "the read finished before it could be cut"
        assert proc.returncode == 1
        assert_one_clear_line(stderr, "reading from PostgreSQL")
        assert watermarks(conn) == before
        again = h.run_cli(env, "run", "--target", target, "--quiet", "--settle", "0")
        assert again.returncode == 0, again.stderr
    h.assert_exact(target, pg, app_db)


@pytest.mark.parametrize(
    ("target", "needles"),
    [
        ("ftp://example.org/lake", ["is not supported", "s3://bucket/prefix"]),
        ("s3:///lake", ["names no bucket"]),
    ],
)
def test_bad_target(pg: Server, app_db: str, target: str, needles: list[str]) -> None:
    proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", target)
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, *needles)


def test_target_that_is_a_file(pg: Server, app_db: str, tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a folder")
    proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path / "lake"))
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "is a file, not a folder")


def test_bad_credentials(pg: Server, app_db: str, s3: S3Endpoint, s3_target: str) -> None:
    env = h.exporter_env(pg, app_db, **s3.env(AWS_SECRET_ACCESS_KEY="wrong"))
    proc = h.run_cli(env, "run", "--target", s3_target)
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "refused the credentials")
    env = h.exporter_env(pg, app_db, **s3.env(AWS_ACCESS_KEY_ID="AKIANOBODY"))
    proc = h.run_cli(env, "run", "--target", s3_target)
    assert_one_clear_line(proc.stderr, "refused the credentials")
    with pg.connect(app_db) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)


def test_missing_bucket(pg: Server, app_db: str, s3: S3Endpoint) -> None:
    proc = h.run_cli(
        h.exporter_env(pg, app_db, **s3.env()), "run", "--target", "s3://no-such-bucket/x"
    )
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "bucket no-such-bucket does not exist")


def test_unreachable_database(tmp_path: Path) -> None:
    env = {**h.clean_env(), "PGHOST": "127.0.0.1", "PGPORT": str(free_port()), "PGUSER": "postgres"}
    for command in (
        ["run", "--target", str(tmp_path)],
        ["status"],
        ["verify", "--target", str(tmp_path)],
    ):
        proc = h.run_cli(env, *command)
        assert proc.returncode == 1
        assert_one_clear_line(proc.stderr, "cannot connect to PostgreSQL at 127.0.0.1")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("app.users; drop table app.anime", "not a schema-qualified lowercase table name"),
        ('app."Users"', "not a schema-qualified lowercase table name"),
        ("app.no_such_table", "not an existing table"),
    ],
)
def test_hostile_or_wrong_table_name_in_the_metadata(
    pg: Server, app_db: str, tmp_path: Path, name: str, needle: str
) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        h.list_for_export(conn, name, "user_id")
        before = watermarks(conn)
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
        assert proc.returncode == 1
        assert_one_clear_line(proc.stderr, needle)
        assert watermarks(conn) == before
        assert conn.execute("select to_regclass('app.anime') is not null").fetchone() == (True,)
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
    assert not list(tmp_path.rglob("*.parquet"))


def test_exporter_refuses_when_the_bound_function_cannot_see_sessions(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """The exporter reads no statistics itself; the definer function that does refuses to
    answer (rather than miss other users' transactions) when its owner may not read them."""
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "do $$ begin if not exists (select from pg_roles where rolname = 'stats_less') then"
            " create role stats_less nologin; end if; end $$"
        )
        conn.execute("alter function etl.oldest_open_transaction() owner to stats_less")
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "GRANT pg_read_all_stats TO stats_less")
    assert not list(tmp_path.rglob("*.parquet"))


def test_exporter_refuses_without_the_bound_function(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "revoke execute on function etl.oldest_open_transaction() from animedb_exporter"
        )
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "etl.oldest_open_transaction()")


def test_a_listed_table_the_exporter_may_not_read(pg: Server, app_db: str, tmp_path: Path) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("create table app.private_notes (id bigint primary key, note text)")
        h.list_for_export(conn, "app.private_notes", "id")
        before = watermarks(conn)
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
        assert proc.returncode == 1
        assert_one_clear_line(
            proc.stderr,
            "app.private_notes",
            "GRANT SELECT ON app.private_notes TO animedb_exporter",
        )
        assert watermarks(conn) == before
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.parametrize("settle", ["nan", "1e300", "inf", "-1", "soon"])
def test_a_settle_that_is_no_number_of_seconds(tmp_path: Path, settle: str) -> None:
    proc = h.run_cli(h.clean_env(), "run", "--target", str(tmp_path), "--settle", settle)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for")
    assert "--settle" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_an_s3_endpoint_that_is_not_a_url(tmp_path: Path) -> None:
    env = {
        **h.clean_env(),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),  # nothing there: the lake is checked first
        "AWS_ENDPOINT_URL": "not a url",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for command in ("run", "status", "verify", "tables"):
        proc = h.run_cli(env, command, "--target", "s3://lake/prefix")
        assert proc.returncode == 1, proc.stderr
        assert_one_clear_line(proc.stderr, "not a url")


def test_report_to_a_place_that_cannot_be_written(pg: Server, app_db: str, tmp_path: Path) -> None:
    env = h.exporter_env(pg, app_db)
    lake = tmp_path / "lake"
    assert h.run_cli(env, "run", "--target", str(lake), "--quiet").returncode == 0
    before = sorted((p, p.stat().st_size) for p in lake.rglob("*"))
    proc = h.run_cli(env, "report", "--target", str(lake), "--output", "/proc/animedb/report.html")
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "cannot write the report to /proc/animedb/report.html")
    assert sorted((p, p.stat().st_size) for p in lake.rglob("*")) == before
