"""Faults and bad input: each ends with one clear line and a non-zero exit, the watermarks where
they were, and (where the fault goes away) a next run that succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from exporter.run import PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests.pg_harness import Server, free_port
from tests.s3_harness import S3Endpoint
from tests.test_exporter_crash import watermarks


def assert_one_clear_line(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    for needle in needles:
        assert needle in lines[0], stderr
    assert "Traceback" not in stderr


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
        conn.execute(
            "insert into etl.exported_tables (table_name, load_type, key_column, cursor_column)"
            " values (%s, 'id', 'user_id', 'user_id')",
            (name,),
        )
        before = watermarks(conn)
        proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
        assert proc.returncode == 1
        assert_one_clear_line(proc.stderr, needle)
        assert watermarks(conn) == before
        assert conn.execute("select to_regclass('app.anime') is not null").fetchone() == (True,)
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
    assert not list(tmp_path.rglob("*.parquet"))


def test_exporter_refuses_without_pg_read_all_stats(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("revoke pg_monitor from animedb_exporter")
        try:
            proc = h.run_cli(h.exporter_env(pg, app_db), "run", "--target", str(tmp_path))
        finally:
            conn.execute("grant pg_monitor to animedb_exporter")
    assert proc.returncode == 1
    assert_one_clear_line(proc.stderr, "GRANT pg_monitor TO animedb_exporter")
