"""Safe beside other writers: while runs (some of them killed at a protocol step and resumed)
and their maintenance go on, other processes append to a table of their own in the lake,
rewrite the exporter's tables with the same rows (what Glue's compaction or Athena's OPTIMIZE
does), and expire old snapshots (VACUUM). Nothing is lost, nothing is there twice, no file a
snapshot needs is gone: DuckDB's own Iceberg reader and `verify` agree with PostgreSQL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from animedb import REPO
from exporter import run_export
from exporter.maintenance import ORPHAN_AGE_VARIABLE, RETENTION_VARIABLE
from exporter.pauses import RUN_STEPS
from tests import exporter_helpers as h
from tests import lake_writers
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import lake_count, open_lake, open_tables, pg_counts, reader, scan
from tests.pg_harness import Server

ACTIVE = ("users", "users_changes", "wishlist", "wishlist_changes", "ratings", "ratings_changes")


def writer(role: str, target: str, seconds: float, *tables: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lake_writers", role, target, str(seconds), *tables],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def activity(conn: h.Conn, rng: random.Random, users: list[int], round_: int) -> None:
    """Inserts, updates and deletes in the three written tables."""
    new = h.add_users(conn, 3, prefix=f"r{round_}")
    users.extend(new)
    h.add_watching(conn, new[:2], mal_id=rng.choice([1, 6, 20]), score=rng.randint(1, 10))
    changed = rng.sample(users, min(4, len(users)))
    conn.execute("update app.users set bio = %s where user_id = any(%s)", (f"r{round_}", changed))
    conn.execute(
        "update app.ratings set score = %s where user_id = any(%s)", (rng.randint(1, 10), changed)
    )
    gone = rng.choice(users)
    conn.execute("delete from app.ratings where user_id = %s", (gone,))
    conn.execute("delete from app.wishlist where user_id = %s", (gone,))


@pytest.mark.slow
def test_runs_beside_compaction_expiry_and_appends_in_other_processes(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    # our own maintenance on a short clock too, so that it meets the others' commits
    # (the orphan age stays well above how long another writer holds a written file before its
    # commit lands: a shorter one would delete files of a commit in flight)
    short = {RETENTION_VARIABLE: "3s", ORPHAN_AGE_VARIABLE: "15s"}
    for name, value in short.items():
        monkeypatch.setenv(name, value)
    env = {**h.exporter_env(pg, app_db), **short}
    rng = random.Random(15)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 30, prefix="first")
        h.add_watching(conn, users[:20])
        run_export(target, settings, settle=NO_SETTLE)

        seconds = 45.0
        others = [
            writer("append", target, seconds),
            writer("compact", target, seconds, *ACTIVE),
            writer("expire", target, seconds, *ACTIVE),
        ]
        started = time.monotonic()
        round_ = 0
        while time.monotonic() - started < seconds - 5:
            round_ += 1
            activity(conn, rng, users, round_)
            if round_ % 3 == 0:  # killed at a step, then resumed by the next run
                h.kill_at(env, target, rng.choice(RUN_STEPS))
            proc = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet")
            assert proc.returncode == 0, proc.stderr
        results = [finished(p) for p in others]
        proc = h.run_cli(env, "run", "--target", target, "--settle", "0", "--quiet")
        assert proc.returncode == 0, proc.stderr
        counts = pg_counts(conn)

    assert round_ >= 5
    by_role = {r["role"]: r for r in results}
    assert int(str(by_role["compact"]["commits"])) > 0, by_role  # the others really wrote
    assert int(str(by_role["expire"]["expired"])) > 0, by_role
    # exact, by the exporter's verify (every file there, of its size, rows and checksum)
    checks = h.assert_exact(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks)
    # and by DuckDB's own reader: every current state as PostgreSQL has it, no version twice
    con = reader()
    for source, pair in open_tables(target).items():
        assert lake_count(con, pair.current.metadata_location) == counts[source], source
        key = pair.changes.properties["animedb.key-column"]
        twice = scan(
            con,
            pair.changes.metadata_location,
            "count(*)",
            where=f'true group by "{key}", _run_id, _deleted having count(*) > 1',
        )
        assert not twice, source
    # the other engine's table kept every row it appended
    foreign = open_lake(target).catalog.load_table(f"animedb.{lake_writers.FOREIGN}")
    assert lake_count(con, foreign.metadata_location) == by_role["append"]["rows"]
