"""Faults that ended in tracebacks of 48 to 134 lines (issue case 11): each is one line naming
what is wrong and what to do, a non-zero exit, and a lake that the next run completes exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from animedb import REPO
from exporter.pauses import PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests.exporter_helpers import assert_one_clear_line, assert_refused, watermarks
from tests.lake_helpers import open_lake
from tests.pg_harness import Server
from tests.s3_harness import S3Endpoint

RUN = ("--quiet", "--settle", "0")


def run(env: dict[str, str], target: str) -> subprocess.CompletedProcess[str]:
    return h.run_cli(env, "run", "--target", target, *RUN)


def pending_runs(conn: h.Conn) -> int:
    row = conn.execute("select count(*) from etl.export_runs where status = 'pending'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("how", ["terminated", "idle_session_timeout"])
def test_the_control_connection_lost_mid_run(
    pg: Server, app_db: str, tmp_path: Path, how: str
) -> None:
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 20))
        if how == "idle_session_timeout":
            env["PGOPTIONS"] = "-c idle_session_timeout=1000"
        proc = h.spawn_cli(
            {**env, PAUSE_VARIABLE: "after_pending:4"}, "run", "--target", target, *RUN
        )
        h.wait_for_line(proc, "paused at after_pending")
        if how == "terminated":
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity"
                " where application_name = 'animedb-exporter' and datname = current_database()"
            )
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert_one_clear_line(stderr, "connection to PostgreSQL", "run again")
        assert pending_runs(conn) == 1
    again = run(h.exporter_env(pg, app_db), target)
    assert again.returncode == 0, again.stderr
    h.assert_exact(target, pg, app_db)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 96 KiB (remount it larger to free space); skipped where none can be mounted."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def grow(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=256m", str(mount)], check=True)


@pytest.mark.parametrize("where", ["target", "staging"])
def test_disk_full(pg: Server, app_db: str, tmp_path: Path, small_disk: Path, where: str) -> None:
    """The lake's disk (its metadata, its SQLite catalog, its data) or the staging folder's
    disk full: one line saying so; once there is space, the next run completes exactly."""
    target = str(small_disk / "lake") if where == "target" else str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    if where == "staging":  # a page or two: the first file staged fills it
        subprocess.run(["mount", "-o", "remount,size=8k", str(small_disk)], check=True)
        env["TMPDIR"] = str(small_disk)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 3000))
        before = watermarks(conn)
        full = run(env, target)
        assert_refused(full, "space left on")
        assert watermarks(conn) == before
    grow(small_disk)
    again = run(env, target)
    assert again.returncode == 0, again.stderr
    h.assert_exact(target, pg, app_db)


def denied_user(s3: S3Endpoint, action: str) -> dict[str, str]:
    """AWS variables of a user allowed everything but `action` on S3."""
    iam = s3.service("iam")
    name = f"no-{action.split(':')[1].lower()}-{s3.buckets[-1]}"
    iam.create_user(UserName=name)
    statements = [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": action, "Resource": "*"},
    ]
    iam.put_user_policy(
        UserName=name,
        PolicyName="lake",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return s3.env(
        AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]
    )


@pytest.mark.parametrize("action", ["s3:PutObject", "s3:GetObject"])
def test_s3_denied(pg: Server, app_db: str, s3: S3Endpoint, s3_target: str, action: str) -> None:
    env = h.exporter_env(pg, app_db, **s3.env())
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 10))
        assert run(env, s3_target).returncode == 0
        h.add_watching(conn, h.add_users(conn, 10, prefix="later"), score=9)
        conn.execute("update app.users set bio = 'changed' where username = 'user_1'")
        before = watermarks(conn)
        refused = run(h.exporter_env(pg, app_db, **denied_user(s3, action)), s3_target)
        assert_refused(refused, "S3 refused", "AccessDenied")
        assert watermarks(conn) == before
    again = run(env, s3_target)
    assert again.returncode == 0, again.stderr
    h.assert_exact(s3_target, pg, app_db)


def test_a_file_that_is_not_parquet_in_a_manifest(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_watching(conn, h.add_users(conn, 10))
        assert run(env, target).returncode == 0
        users = open_lake(target).load("users")
        assert users is not None
        data = next(iter(users.scan().plan_files())).file.file_path.removeprefix("file://")
        Path(data).write_bytes(b"this is not a Parquet file")
        conn.execute("update app.users set bio = 'changed' where username = 'user_1'")
        before = watermarks(conn)
        assert_refused(run(env, target), data)
        assert watermarks(conn) == before


def test_a_malformed_pyiceberg_configuration(pg: Server, app_db: str, tmp_path: Path) -> None:
    """Only the commands that need a catalog fail, in one line naming the file; --help works."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pyiceberg.yaml").write_text("catalog:\n  animedb:\n    type: [sql\n")
    env = h.exporter_env(pg, app_db, PYICEBERG_HOME=str(home))
    for command in (["--help"], ["export", "--help"], ["export", "run", "--help"]):
        shown = subprocess.run(
            [sys.executable, "-m", "animedb_cli", *command],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
    target = tmp_path / "lake"
    for name in ("run", "verify", "tables", "maintain"):
        proc = h.run_cli(env, name, "--target", str(target))
        assert_refused(proc, f"{home / '.pyiceberg.yaml'} cannot be read")
    assert not target.exists()
    with pg.connect(app_db) as conn:
        assert pending_runs(conn) == 0
