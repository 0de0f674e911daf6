"""The lake as of run N: every table, at the newest run tag at or before N, exactly as
PostgreSQL was then; a run older than the lake keeps says so in one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from exporter import layout, run_export, snapshots
from exporter.maintenance import RETENTION_VARIABLE
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    add_early_users,
    change_everything,
    every_table,
    lake_count,
    open_tables,
    pg_columns,
    pg_counts,
    pg_rows,
    quoted,
    reader,
    scan,
    tags,
    text_rows,
)
from tests.pg_harness import Server

ACTIVITY = ("app.users", "app.wishlist", "app.ratings")


def test_time_travel_to_any_run(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    counts: dict[int, dict[str, int]] = {}  # run -> table -> rows PostgreSQL had
    rows: dict[int, dict[str, list[tuple[str | None, ...]]]] = {}  # run -> table -> rows
    runs: list[int] = []
    shipped: dict[int, dict[str, int]] = {}  # run -> table -> versions and deletes it brought
    changed: dict[int, set[str]] = {}  # run -> the tables it committed to
    with pg.connect(app_db, autocommit=True) as conn:
        columns = {t: pg_columns(conn, t) for t in ACTIVITY}

        def export() -> None:
            summary = run_export(target, settings, settle=NO_SETTLE)
            runs.append(summary.run_id)
            shipped[summary.run_id] = {t.table: t.rows + t.deletes for t in summary.tables}
            changed[summary.run_id] = {t.table for t in summary.tables if t.committed}
            counts[runs[-1]] = pg_counts(conn)
            rows[runs[-1]] = {t: pg_rows(conn, t, columns[t]) for t in ACTIVITY}

        early = add_early_users(conn)
        export()
        change_everything(conn)
        export()
        more = h.add_users(conn, 7, prefix="third")
        h.add_watching(conn, more, mal_id=20, score=None)
        conn.execute("delete from app.ratings where user_id = %s", (early[0],))
        conn.execute("update app.users set bio = 'changed again' where username = 'early_1'")
        conn.execute("update app.ratings set score = 3 where user_id = %s", (early[5],))
        export()
    assert len({str(c) for c in counts.values()}) == 3  # the source really differed each time

    pairs = open_tables(target)
    assert set(pairs) == set(counts[runs[0]])
    assert changed[runs[0]] == set(pairs)  # the first load makes every table
    assert "app.genres" not in changed[runs[1]] | changed[runs[2]]  # no news: no commit
    for table in every_table(pairs):
        source = table.properties[layout.SOURCE_TABLE]
        # a run tags exactly the tables it changed, on the snapshot it made
        assert tags(table) == [r for r in runs if source in changed[r]], table.name()
        for run_id in tags(table):
            snapshot = snapshots.run_snapshot(table, run_id)
            assert snapshot is not None and snapshot.summary is not None
            assert snapshot.summary.additional_properties[layout.RUN_ID] == str(run_id)
    con = reader()
    for source, pair in pairs.items():
        location = pair.current.metadata_location
        for run_id in runs:
            as_of = snapshots.as_of_run(pair.current, run_id)
            assert as_of is not None, (source, run_id)
            assert lake_count(con, location, as_of.snapshot_id) == counts[run_id][source], (
                source,
                run_id,
            )
            if source in ACTIVITY:  # every row, every column, as of that run
                found = scan(con, location, quoted(columns[source]), snapshot_id=as_of.snapshot_id)
                assert text_rows(found) == rows[run_id][source], (source, run_id)
            # the change log as of run N: what runs 1..N brought, and nothing after
            log = pair.changes
            log_snapshot = snapshots.as_of_run(log, run_id)
            assert log_snapshot is not None
            expected = sum(shipped[r][source] for r in runs if r <= run_id)
            assert lake_count(con, log.metadata_location, log_snapshot.snapshot_id) == expected
            found_runs = scan(
                con, log.metadata_location, "distinct _run_id", snapshot_id=log_snapshot.snapshot_id
            )
            assert {int(str(r)) for (r,) in found_runs} <= {r for r in runs if r <= run_id}
    # what a user asks for: the snapshot of every table as of run 1, from the command line
    proc = h.run_cli(pg.env(app_db), "tables", "--target", target, "--run", str(runs[0]), "--json")
    assert proc.returncode == 0, proc.stderr
    listed = {item["source"]: item for item in json.loads(proc.stdout)}
    users = pairs["app.users"].current
    first = listed["app.users"]["current"]["snapshot_id"]
    assert first == users.metadata.refs[layout.tag(runs[0])].snapshot_id
    found = scan(con, users.metadata_location, "username, bio", snapshot_id=first)
    assert sorted(found) == sorted((f"early_{i}", None) for i in range(1, 11))


RETENTION = 4.0  # seconds, so that runs age out within the test


def test_runs_stay_readable_for_the_retention_then_say_they_expired(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tags age with Iceberg's max-ref-age: a table's newest tag never (it describes the table
    until the next change), the others one retention after they stopped being the newest. So
    every retained run reads exactly in every table, unchanged ones included, and an expired
    run is one line naming the oldest run the lake still shows."""
    monkeypatch.setenv(RETENTION_VARIABLE, f"{RETENTION}s")
    env = {**pg.env(app_db), RETENTION_VARIABLE: f"{RETENTION}s"}
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    counts: dict[int, dict[str, int]] = {}
    users_rows: dict[int, list[tuple[str | None, ...]]] = {}
    runs: list[int] = []
    with pg.connect(app_db, autocommit=True) as conn:
        columns = pg_columns(conn, "app.users")
        users = add_early_users(conn)
        for i in range(8):
            summary = run_export(target, settings, settle=NO_SETTLE)
            runs.append(summary.run_id)
            counts[summary.run_id] = pg_counts(conn)
            users_rows[summary.run_id] = pg_rows(conn, "app.users", columns)
            conn.execute("update app.users set bio = %s where user_id = %s", (f"v{i}", users[i]))
            time.sleep(RETENTION / 4)
        time.sleep(RETENTION)  # the first runs are now well past the retention
        last = run_export(target, settings, settle=NO_SETTLE)
        runs.append(last.run_id)
        counts[last.run_id] = pg_counts(conn)
        users_rows[last.run_id] = pg_rows(conn, "app.users", columns)
        assert last.maintenance is not None and last.maintenance.expired_tags > 0

    pairs = open_tables(target)
    tables = every_table(pairs)
    oldest = snapshots.oldest_readable_run(tables)
    assert oldest is not None and runs[0] < oldest <= last.run_id
    # the genres never changed after the first load: its one tag, the newest, never expires
    genres = pairs["app.genres"].current
    assert tags(genres) == [runs[0]]
    assert genres.metadata.refs[layout.tag(runs[0])].max_ref_age_ms is None
    users_table = pairs["app.users"].current
    assert all(
        users_table.metadata.refs[layout.tag(r)].max_ref_age_ms is not None
        for r in tags(users_table)[:-1]
    )
    con = reader()
    for run_id in [r for r in runs if r >= oldest]:
        for source, pair in pairs.items():
            as_of = snapshots.as_of_run(pair.current, run_id)
            assert as_of is not None, (source, run_id)
            location = pair.current.metadata_location
            assert lake_count(con, location, as_of.snapshot_id) == counts[run_id][source]
        as_of = snapshots.as_of_run(users_table, run_id)
        assert as_of is not None
        found = scan(
            con, users_table.metadata_location, quoted(columns), snapshot_id=as_of.snapshot_id
        )
        assert text_rows(found) == users_rows[run_id], run_id
    # and an expired run says so
    proc = h.run_cli(env, "tables", "--target", target, "--run", str(runs[0]))
    h.assert_refused(proc, f"run {runs[0]} is no longer kept", f"run {oldest}")
