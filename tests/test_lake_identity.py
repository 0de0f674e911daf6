"""Targets of their own: a second target gets its own full load and watermarks, and a lake
refuses another database's export."""

from __future__ import annotations

from pathlib import Path

from exporter import layout, run_export
from exporter.storage import open_storage
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    add_early_users,
    change_everything,
    every_table,
    file_hashes,
    open_tables,
    pg_counts,
    verified,
)
from tests.pg_harness import Server


def test_a_second_target_gets_a_full_load_and_each_its_own_watermarks(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    a, b = str(tmp_path / "lake-a"), str(tmp_path / "lake-b")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        early = add_early_users(conn)
        run_a1 = run_export(a, settings, settle=NO_SETTLE)
        change_everything(conn)

        run_b = run_export(b, settings, settle=NO_SETTLE)
        rows_b = {t.table: t.rows for t in run_b.tables}
        assert rows_b["app.users"] == 13 and rows_b["app.ratings"] == 5  # all of it, not a delta
        checks_b = verified(b, pg, app_db)
        counts = pg_counts(conn)
        for name, check in checks_b.items():
            assert check.compared == check.lake_rows, name
            if name != "etl.tombstones":
                assert check.lake_rows == counts[name], name

        late = h.add_users(conn, 4, prefix="later")
        h.add_watching(conn, late, mal_id=20, score=7)
        conn.execute("delete from app.ratings where user_id = %s", (early[0],))
        run_a2 = run_export(a, settings, settle=NO_SETTLE)
        rows_a = {t.table: t.rows for t in run_a2.tables}
        assert rows_a["app.users"] == 3 + 1 + 4  # run A1 missed late_*, early_1's bio, later_*
        checks_a = verified(a, pg, app_db)
        assert checks_a["app.users"].lake_rows == checks_a["app.users"].compared == 17
        assert checks_a["app.ratings"].lake_rows == pg_counts(conn)["app.ratings"]

        marks: dict[str, set[int]] = {}
        for target, last_run in conn.execute(
            "select target, last_run_id from etl.watermarks"
        ).fetchall():
            marks.setdefault(str(target), set()).add(int(last_run))
    assert marks == {
        open_storage(a).uri: {run_a2.run_id},
        open_storage(b).uri: {run_b.run_id},
    }
    assert run_a1.run_id < run_b.run_id < run_a2.run_id
    # each lake has its own runs only: the first tags every table, later ones what they changed
    for target, runs in ((a, [run_a1.run_id, run_a2.run_id]), (b, [run_b.run_id])):
        for table in every_table(open_tables(target)):
            assert set(table.metadata.refs) <= {layout.tag(r) for r in runs} | {"main"}
            assert layout.tag(runs[0]) in table.metadata.refs, table.name()


def test_another_database_is_refused(
    pg: Server, app_db: str, built_template: str, tmp_path: Path
) -> None:
    target = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 3)
    run_export(str(target), pg.settings(app_db), settle=NO_SETTLE)
    other = f"{app_db}_other"  # same cluster, so the same system identifier
    pg.create_database(other, template=built_template)
    before = file_hashes(target)
    assert any(name.endswith(".metadata.json") for name in before)

    proc = h.run_cli(pg.env(other), "run", "--target", str(target), "--settle", "0")
    line = h.assert_refused(proc, app_db)
    assert other in line

    assert file_hashes(target) == before
    with pg.connect(other) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)
        assert conn.execute("select count(*) from etl.watermarks").fetchone() == (0,)
