"""`python -m generators` as a person or a scheduler runs it: summaries, bad configuration, a
tick killed mid-write, clean stops on signals, and four processes writing at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import psycopg
import pytest
from psycopg.rows import TupleRow

from animedb import REPO
from generators.tick import APPLICATION_NAME, HOLD_BEFORE_COMMIT_ENV
from tests.generator_helpers import catalog_template, data_rows, rule_breaches, table_counts
from tests.pg_harness import Server, free_port

Conn = psycopg.Connection[TupleRow]
EMPTY = {"app.users": 0, "app.wishlist": 0, "app.ratings": 0, "etl.tombstones": 0}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "generators", *args]


def generate(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def tick_in_transaction(conn: Conn) -> bool:
    """A generator session is inside a transaction that has written (it holds an xid)."""
    row = conn.execute(
        "select count(*) from pg_stat_activity where application_name = %s"
        " and state = 'idle in transaction' and backend_xid is not null",
        (APPLICATION_NAME,),
    ).fetchone()
    return row is not None and row[0] > 0


def generator_sessions(conn: Conn) -> int:
    row = conn.execute(
        "select count(*) from pg_stat_activity where application_name = %s", (APPLICATION_NAME,)
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def catalog_db(pg: Server, built_template: str, app_db: str) -> str:
    """A fresh database with a synthetic catalog of 400 anime (named like app_db, unique)."""
    name = f"{app_db}_catalog"
    pg.create_database(name, template=catalog_template(pg, built_template))
    return name


def test_tick_prints_one_summary_line_and_writes(pg: Server, catalog_db: str) -> None:
    env = pg.env(catalog_db)
    result = generate(env, "tick", "--seed", "3", "--new-users", "4", "--adds", "30")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        r"tick seed=3: users \+4 ~0 \| wishlist \+\d+ ~0 -0 \| ratings \+\d+ ~0 -0 \| "
        r"[\d,]+ rows, 0 retries, [\d.]+ s\n",
        result.stdout,
    ), result.stdout
    quiet = generate(env, "tick", "--seed", "4", "--count", "3", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert re.fullmatch(r"3 ticks committed, 0 failed: [\d,]+ rows, .*\n", quiet.stdout)
    several = generate(env, "tick", "--seed", "7", "--count", "2")
    assert several.stdout.count("tick seed=") == 2 and "users created" in several.stdout
    with pg.connect(catalog_db) as conn:
        assert table_counts(conn)["app.users"] == 4 + 3 * 5 + 2 * 5
        assert rule_breaches(conn) == {}


def test_same_seed_same_rows_in_separate_processes(pg: Server, built_template: str) -> None:
    """Each process hashes strings differently: the plan must not depend on hash order."""
    template = catalog_template(pg, built_template)
    rows = []
    for name in ("gen_cli_seed_a", "gen_cli_seed_b"):
        pg.create_database(name, template=template)
        env = pg.env(name) | {"PYTHONHASHSEED": "random"}
        result = generate(env, "tick", "--seed", "21", "--count", "4", "--quiet")
        assert result.returncode == 0, result.stderr
        with pg.connect(name) as conn:
            rows.append(data_rows(conn))
    assert rows[0] == rows[1] and len(rows[0]["ratings"]) > 50


BAD_FLAGS = [
    (["tick", "--adds", "-1"], r"--adds must be between 0 and 1,000,000 \(got -1\)"),
    (["tick", "--taste", "2"], r"--taste must be between 0 and 1 \(got 2.0\)"),
    (["tick", "--adds", "lots"], r"Invalid value for '--adds': 'lots' is not a valid integer"),
    (["tick", "--bogus"], r"No such option '--bogus' \(see `python -m generators tick --help`\)"),
    (["tick", "--count", "0"], r"--count must be at least 1"),
    (["run", "--every", "soon"], r"neither an interval \(30s, 5m, 1h\) nor a cron expression"),
    (["run", "--every", "61 * * * *"], r"minute field '61' has 61, outside 0-59"),
    (["run"], r"Missing option '--every'"),
    (["dance"], r"No such command 'dance'"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_flags_are_one_clear_line(args: list[str], message: str) -> None:
    # bad flags are refused before any connection: no database is named here at all
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT=str(free_port()))
    assert_one_error_line(generate(env, *args), message)


def assert_one_error_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert re.search(message, lines[0]), lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("command_args", [["tick"], ["run", "--every", "1s"]])
def test_unreachable_database_is_one_clear_line(command_args: Sequence[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT=str(free_port()), PGDATABASE="animedb")
    result = generate(env, *command_args)
    assert_one_error_line(result, r"cannot connect to PostgreSQL at 127\.0\.0\.1:\d+/animedb")


@pytest.mark.parametrize("command_args", [["tick"], ["run", "--every", "1s"]])
def test_no_catalog_is_one_clear_line(
    pg: Server, built_template: str, command_args: Sequence[str]
) -> None:
    pg.create_database("gen_cli_empty")  # reachable, roles exist, nothing built in it
    result = generate(pg.env("gen_cli_empty"), *command_args)
    assert_one_error_line(result, r"no catalog loaded: .* run `animedb db build`")


def test_empty_catalog_is_one_clear_line(pg: Server, app_db: str) -> None:
    with pg.connect(app_db) as conn:
        conn.execute("set session_replication_role = replica")
        conn.execute("delete from app.anime")
        conn.commit()
    result = generate(pg.env(app_db), "tick")
    assert_one_error_line(result, r"app\.anime has no listed anime; run `animedb db build`")


def test_a_tick_killed_mid_write_leaves_nothing(pg: Server, catalog_db: str) -> None:
    env = pg.env(catalog_db) | {HOLD_BEFORE_COMMIT_ENV: "60"}
    process = start(env, "tick", "--new-users", "300", "--adds", "3000", "--ratings", "800")
    with pg.connect(catalog_db, autocommit=True) as watcher:
        wait_for(lambda: tick_in_transaction(watcher), what="the tick's writes")
        assert process.poll() is None
        process.kill()  # SIGKILL: no handler, no cleanup, the socket just closes
        process.wait(timeout=10)
        wait_for(lambda: generator_sessions(watcher) == 0, what="the server to end the session")
        assert table_counts(watcher) == EMPTY
        assert rule_breaches(watcher) == {}


def test_run_finishes_the_tick_in_progress_on_sigterm(pg: Server, catalog_db: str) -> None:
    env = pg.env(catalog_db) | {HOLD_BEFORE_COMMIT_ENV: "1.5"}
    process = start(env, "run", "--every", "0.2s", "--seed", "1", "--new-users", "7")
    with pg.connect(catalog_db, autocommit=True) as watcher:
        wait_for(lambda: tick_in_transaction(watcher), what="the first tick's writes")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped by SIGTERM" in out and "1 ticks committed, 0 failed" in out
        assert out.count("tick seed=") == 1
        assert table_counts(watcher)["app.users"] == 7  # the tick finished and committed


def test_run_rolls_the_tick_back_on_a_second_signal(pg: Server, catalog_db: str) -> None:
    env = pg.env(catalog_db) | {HOLD_BEFORE_COMMIT_ENV: "60"}
    process = start(env, "run", "--every", "5s", "--quiet")
    with pg.connect(catalog_db, autocommit=True) as watcher:
        wait_for(lambda: tick_in_transaction(watcher), what="the first tick's writes")
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert out.startswith("stopped by SIGINT: 0 ticks committed, 0 failed, the last one")
        assert "interrupted and rolled back" in out
        wait_for(lambda: generator_sessions(watcher) == 0, what="the session to end")
        assert table_counts(watcher) == EMPTY


@pytest.mark.slow
def test_four_processes_at_once_lose_no_tick_and_break_no_rule(pg: Server, catalog_db: str) -> None:
    env = pg.env(catalog_db)
    assert (
        generate(env, "tick", "--seed", "99", "--new-users", "150", "--adds", "900").returncode == 0
    )
    with pg.connect(catalog_db) as conn:
        before = table_counts(conn)["app.users"]
    flags = ["--every", "0.05s", "--max-ticks", "8", "--new-users", "12", "--active-users", "60",
             "--adds", "150", "--progress", "100", "--ratings", "60", "--rerates", "15",
             "--removals", "10", "--edits", "8"]  # fmt: skip
    # Two processes share a seed: the same usernames and the same users drawn, at the same time.
    processes = [start(env, "run", *flags, "--seed", seed) for seed in ("1", "1", "2", "3")]
    outputs = [p.communicate(timeout=180) for p in processes]
    created = 0
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "8 ticks committed, 0 failed" in out, out + err
        assert "Error" not in err
        created += sum(int(n) for n in re.findall(r"users \+(\d+)", out))
    with pg.connect(catalog_db) as conn:
        assert rule_breaches(conn) == {}
        assert table_counts(conn)["app.users"] == before + created
        # a shared seed's usernames were created once, by whichever process came first
        assert created < 4 * 8 * 12
