"""Crash safety of maintenance: a run killed (SIGKILL) at each step of its maintenance, which
comes after the run's own commit, then runs and `maintain` again: nothing lost, nothing twice,
no file a snapshot needs gone, the killed rewrite's files swept once past the orphan age. And
the compaction-resume loss of earlier versions, as a test."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from exporter import live, run_export
from exporter.chunks import CHUNK_ROWS_VARIABLE
from exporter.maintenance import (
    MAINTENANCE_VARIABLE,
    MIN_INPUT_FILES,
    ORPHAN_AGE_VARIABLE,
    RETENTION_VARIABLE,
)
from exporter.pauses import MAINTENANCE_STEPS
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import every_table, lake_count, local, open_tables, pg_counts, reader
from tests.pg_harness import Server

RETENTION = 2.0


@pytest.mark.parametrize("step", MAINTENANCE_STEPS)
def test_killed_at_any_step_of_maintenance_then_rerun_is_exact(
    pg: Server, app_db: str, tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = {RETENTION_VARIABLE: f"{RETENTION}s", ORPHAN_AGE_VARIABLE: "1s"}
    for name, value in short.items():
        monkeypatch.setenv(name, value)
    env = {**h.exporter_env(pg, app_db), **short}
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        # a history for the next run's maintenance to work on: small files, old snapshots
        monkeypatch.setenv(MAINTENANCE_VARIABLE, "off")
        for i in range(MIN_INPUT_FILES + 1):
            h.add_users(conn, 2, prefix=f"k{i}")
            conn.execute(
                "delete from app.users where user_id = (select min(user_id) from app.users)"
            )
            run_export(target, settings, settle=NO_SETTLE)
        monkeypatch.delenv(MAINTENANCE_VARIABLE)
        users_log = open_tables(target)["app.users"].changes
        orphan = Path(local(users_log.location())) / "data" / "left-by-a-dead-writer.parquet"
        orphan.write_bytes(b"nobody's")
        time.sleep(RETENTION + 1)

        h.add_users(conn, 1, prefix="killed")
        h.kill_at(env, target, step)
        status = conn.execute("select status from etl.export_runs order by run_id desc limit 1")
        assert status.fetchone() == ("committed",)  # maintenance comes after the run's commit
        h.assert_exact(target, pg, app_db)  # every file a snapshot needs is there

        h.add_users(conn, 1, prefix="after")
        run_export(target, settings, settle=NO_SETTLE)
        time.sleep(1.5)  # the killed rewrite's files are past the orphan age
        proc = h.run_cli(env, "maintain", "--target", target, "--json")
        assert proc.returncode == 0, proc.stderr
        counts = pg_counts(conn)
    checks = h.assert_exact(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks)
    assert not orphan.exists()
    con = reader()
    for table in every_table(open_tables(target)):
        folder = Path(local(table.location()))
        data = {local(f.file_path) for f in live.live_files(table).all}
        assert all(Path(p).exists() for p in data), table.name()
        rewrites = [p for p in folder.glob("data/rewrite-*/*") if str(p) not in data]
        assert not rewrites, rewrites  # a killed rewrite's files do not stay
    for source, pair in open_tables(target).items():
        assert lake_count(con, pair.current.metadata_location) == counts[source], source


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after_commits", "after_rewrite"])
def test_a_run_resumed_after_a_large_compaction_keeps_its_files(
    pg: Server, app_db: str, tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loss this repeats: with a compaction of 200 files or more, a run resumed after the
    compaction's commit deleted the compaction's own committed files (its folder was cleaned as
    a killed try's leftovers), and every later run failed. 600k users in chunks of 1,000 rows,
    half of them updated (so that the current state is rewritten: half its rows deleted), the
    run killed after its commits (or, now that rewrites come after the run's commit, after its
    maintenance's rewrite), then a run."""
    monkeypatch.setenv(CHUNK_ROWS_VARIABLE, "1000")
    env = h.exporter_env(pg, app_db, **{CHUNK_ROWS_VARIABLE: "1000"})
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 600_000, prefix="many")
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'half' where user_id = any(%s)", (users[::2],))
        h.kill_at(env, target, step)
    proc = h.run_cli(env, "run", "--target", target, "--settle", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    proc = h.run_cli(env, "run", "--target", target, "--settle", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"] == 0
    checks = {c.table: c for c in h.assert_exact(target, pg, app_db)}
    assert checks["app.users"].lake_rows == 600_000
    current = open_tables(target)["app.users"].current
    assert all(Path(local(f.file_path)).exists() for f in live.live_files(current).all)
