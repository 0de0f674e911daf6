"""Activity on the application tables for the exporter's tests, written as plain SQL so that the
exporter is judged against known changes (the generators' own tests judge the generators)."""

from __future__ import annotations

import datetime as dt
import os
import selectors
import signal
import subprocess
import sys
import time

import psycopg
from psycopg.rows import TupleRow

from animedb import REPO
from exporter import verify as verify_module
from exporter.pauses import PAUSE_VARIABLE
from tests.pg_harness import Server

Conn = psycopg.Connection[TupleRow]
NO_SETTLE = dt.timedelta(0)  # a bound right at the start of the run: tests commit first


def watermarks(conn: Conn) -> list[tuple[object, ...]]:
    return conn.execute(
        "select target, table_name, max_id, max_modified, last_run_id from etl.watermarks"
        " order by 1, 2"
    ).fetchall()


def ids(conn: Conn, query: str, params: tuple[object, ...] = ()) -> list[int]:
    """The first column of a statement's rows (a select, or a returning clause), as ints."""
    return [int(r[0]) for r in conn.execute(query, params).fetchall()]


def add_users(conn: Conn, count: int, prefix: str = "user") -> list[int]:
    return ids(
        conn,
        "insert into app.users (username, email, display_name, country_code, birth_year)"
        " select %s || g, %s || g || '@example.org', 'User ' || g, 'JP', 1990 + g %% 20"
        " from generate_series(1, %s) g returning user_id",
        (f"{prefix}_", f"{prefix}_", count),
    )


def add_watching(conn: Conn, users: list[int], mal_id: int = 6, score: int | None = 8) -> None:
    """Each user watches the anime (and rates it, when score is given)."""
    conn.execute(
        "insert into app.wishlist (user_id, anime_id, status, episodes_watched)"
        " select u, a.anime_id, 'watching', 1 from unnest(%s::bigint[]) u, app.anime a"
        " where a.mal_id = %s",
        (users, mal_id),
    )
    if score is not None:
        conn.execute(
            "insert into app.ratings (user_id, anime_id, score)"
            " select u, a.anime_id, %s from unnest(%s::bigint[]) u, app.anime a where a.mal_id = %s",
            (score, users, mal_id),
        )


def list_for_export(conn: Conn, table: str, key: str) -> None:
    """Lists `table` in etl.exported_tables as an id table: `key` is its key and its cursor."""
    conn.execute(
        "insert into etl.exported_tables (table_name, load_type, key_column, cursor_column)"
        " values (%s, 'id', %s, %s)",
        (table, key, key),
    )


def exporter_env(server: Server, dbname: str, **extra: str) -> dict[str, str]:
    env = server.env(dbname)
    env.update(extra)
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> None:
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = proc.stderr.readline()
            seen.append(line)
            if needle in line:
                return
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"{needle!r} never came; stderr: {''.join(seen)[-2000:]}")


def kill_at(env: dict[str, str], target: str, step: str) -> None:
    """`exporter run` paused at a protocol step (ANIMEDB_EXPORT_PAUSE_AT), then SIGKILLed there."""
    env = {**env, PAUSE_VARIABLE: step}
    proc = spawn_cli(env, "run", "--target", target, "--quiet", "--settle", "0")
    try:
        wait_for_line(proc, f"paused at {step}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def assert_exact(target: str, server: Server, dbname: str) -> list[verify_module.TableCheck]:
    checks = verify_module.verify(target, server.settings(dbname))
    bad = [c for c in checks if not c.ok]
    assert not bad, bad
    return checks


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AWS_"))}


def assert_one_clear_line(stderr: str, *needles: str) -> str:
    """What a refused command says: one line on stderr, `Error: ...` with each needle in it,
    no traceback; the line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)
    assert "Traceback" not in stderr
    return lines[0]


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A command refused: exit 1, and assert_one_clear_line of its stderr (nor a traceback on
    stdout); the line."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout
    return assert_one_clear_line(proc.stderr, *needles)
