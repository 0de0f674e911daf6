"""The exporter running in a loop while four generator processes write and other sessions hold
transactions open for seconds while they write; after the writers stop, a final run must leave
the lake exactly equal to PostgreSQL: zero rows lost, zero extra, no version twice."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from animedb import REPO
from exporter import run_export
from exporter.errors import ExportError
from tests import exporter_helpers as h
from tests.generator_helpers import catalog_template, rule_breaches
from tests.pg_harness import Server

DURATION_S = 20


def slow_writer(pg: Server, dbname: str, stop: threading.Event, seed: int, log: list[str]) -> None:
    """Transactions that stay open 0.3 to 2 s between their first write and their commit: their
    rows carry a modified_date (and ids) from long before they become visible."""
    rng = random.Random(seed)
    with pg.connect(dbname) as conn:
        n = 0
        while not stop.is_set():
            n += 1
            users = h.add_users(conn, rng.randint(1, 5), prefix=f"slow{seed}_{n}")
            time.sleep(rng.uniform(0.3, 2.0))
            conn.execute("update app.users set bio = %s where user_id = any(%s)", (f"v{n}", users))
            if rng.random() < 0.5:
                h.add_watching(conn, users[:1], mal_id=6, score=rng.randint(1, 10))
            if rng.random() < 0.3:
                conn.execute("delete from app.ratings where user_id = %s", (users[0],))
                conn.execute("delete from app.wishlist where user_id = %s", (users[0],))
            conn.commit()
            log.append(f"slow writer {seed} committed {len(users)} users")


def exporter_loop(
    target: str, pg: Server, dbname: str, stop: threading.Event, runs: list[int], errors: list[str]
) -> None:
    while not stop.is_set():
        try:
            summary = run_export(target, pg.settings(dbname), settle=dt.timedelta(milliseconds=200))
            runs.append(summary.rows)
        except ExportError as exc:  # a deferred table is fine; a failure is not
            errors.append(str(exc))
        time.sleep(0.3)


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(pg: Server, built_template: str, tmp_path: Path) -> None:
    template = catalog_template(pg, built_template)
    dbname = "animedb_concurrency"
    pg.create_database(dbname, template=template)
    target = str(tmp_path / "lake")
    env = pg.env(dbname)

    generators = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "generators",
                "run",
                "--every",
                "500ms",
                "--max-ticks",
                str(DURATION_S * 2),
                "--quiet",
                "--seed",
                str(100 + i),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    stop_writers, stop_exporter = threading.Event(), threading.Event()
    log: list[str] = []
    runs: list[int] = []
    errors: list[str] = []
    writers = [
        threading.Thread(target=slow_writer, args=(pg, dbname, stop_writers, s, log))
        for s in (1, 2)
    ]
    exporter = threading.Thread(
        target=exporter_loop, args=(target, pg, dbname, stop_exporter, runs, errors)
    )
    for thread in [*writers, exporter]:
        thread.start()
    try:
        for proc in generators:
            _, stderr = proc.communicate(timeout=DURATION_S * 6)
            assert proc.returncode == 0, stderr
    finally:
        stop_writers.set()
        for thread in writers:
            thread.join()
        stop_exporter.set()
        exporter.join()

    assert not errors, errors
    assert len(runs) >= 5 and sum(runs) > 0, runs
    assert len(log) >= 4, log
    time.sleep(0.5)  # past the settle margin: every row is now below a bound
    final = run_export(target, pg.settings(dbname), settle=dt.timedelta(milliseconds=200))
    checks = h.assert_exact(target, pg, dbname)
    assert all(c.pending == 0 for c in checks), [c for c in checks if c.pending]
    by_table = {c.table: c for c in checks}
    assert by_table["app.users"].compared > 100 and by_table["app.ratings"].compared > 50
    assert by_table["etl.tombstones"].compared > 0
    assert all(c.duplicates == 0 for c in checks)
    assert final.run_id == len(runs) + 1
    with pg.connect(dbname) as conn:
        assert not any(rule_breaches(conn).values())
