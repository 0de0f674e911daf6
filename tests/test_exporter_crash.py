"""Crash safety: the exporter killed (SIGKILL) at each step of the protocol, then run again."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import layout, run_export
from exporter.pauses import RUN_STEPS
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE, watermarks
from tests.lake_helpers import every_table, open_tables, run_ids
from tests.pg_harness import Server


@pytest.mark.parametrize("step", RUN_STEPS)
def test_killed_at_any_step_then_rerun_is_exact(
    pg: Server, app_db: str, tmp_path: Path, step: str
) -> None:
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 50, prefix="first")
        h.add_watching(conn, users[:20])
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)

        more = h.add_users(conn, 30, prefix="second")
        h.add_watching(conn, more[:10], mal_id=1, score=6)
        conn.execute("update app.users set bio = 'edited' where user_id = any(%s)", (users[:5],))
        conn.execute("delete from app.ratings where user_id = any(%s)", (users[5:8],))
        before = watermarks(conn)

        h.kill_at(h.exporter_env(pg, app_db), target, step)
        assert watermarks(conn) == before  # nothing moved
        pending = conn.execute(
            "select run_id from etl.export_runs where status = 'pending'"
        ).fetchall()
        assert len(pending) == 1

        # the world goes on between the crash and the retry
        conn.execute(
            "update app.users set bio = 'edited again' where user_id = any(%s)", (more[:3],)
        )
        conn.execute("delete from app.wishlist where user_id = %s", (more[-1],))

        resumed = run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        assert resumed.resumed and resumed.run_id == pending[0][0]
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)  # what came after the crash
    checks = h.assert_exact(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks)
    # every table holds each run it was changed by once: one tag each, no run committed twice
    for table in every_table(open_tables(target)):
        tags = sorted(r for r in table.metadata.refs if r.startswith("run-"))
        assert "run-1" in tags and set(tags) <= {"run-1", "run-2", "run-3"}, (table.name(), tags)
        runs = run_ids(table)
        assert len(runs) == len(set(runs)), (table.name(), runs)
        assert sorted(runs) == sorted(int(t.removeprefix("run-")) for t in tags)
        for run in runs:
            assert layout.tag(run) in table.metadata.refs


def test_a_resumed_run_of_deletes_alone_ships_them_once(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """A window with no rows but deletes: its only recorded chunk is the deletes' own, which a
    resumed run must not take for a data chunk (and ship twice)."""
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 20, prefix="first")
        h.add_watching(conn, users)
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        conn.execute("delete from app.ratings where user_id = any(%s)", (users[:4],))
        h.kill_at(h.exporter_env(pg, app_db), target, "after_files")
        resumed = run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    assert resumed.resumed
    assert {t.table: t.deletes for t in resumed.tables}["app.ratings"] == 4
    checks = h.assert_exact(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks)
