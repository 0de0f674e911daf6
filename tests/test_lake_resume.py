"""A crashed run resumed: nothing committed twice, chunks already in place kept."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from exporter import layout, live, run_export, snapshots
from exporter.chunks import CHUNK_ROWS_VARIABLE
from exporter.pauses import PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE, watermarks
from tests.lake_helpers import (
    add_early_users,
    change_everything,
    every_table,
    local,
    open_tables,
    run_ids,
    verified,
)
from tests.pg_harness import Server


@pytest.mark.parametrize(
    ("load", "step"),
    [
        ("first", "between_commits"),
        ("incremental", "between_commits"),
        ("incremental", "after_commits"),
    ],
)
def test_a_resumed_run_commits_nothing_twice(
    pg: Server, app_db: str, tmp_path: Path, load: str, step: str
) -> None:
    target = str(tmp_path / "lake")
    settings, env = pg.settings(app_db), pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        add_early_users(conn)
        if load == "incremental":
            run_export(target, settings, settle=NO_SETTLE)
            change_everything(conn)
        h.kill_at(env, target, step)
        [(killed,)] = conn.execute(
            "select run_id from etl.export_runs where status = 'pending'"
        ).fetchall()
        # between commits: the first touched table's snapshots are in, the others' are not;
        # after commits: all of them are, and only PostgreSQL's step 4 is missing
        touched = {"app.users", "app.wishlist", "app.ratings", "etl.tombstones"}
        before = every_table(open_tables(target))
        if load == "incremental":
            before = [t for t in before if t.properties[layout.SOURCE_TABLE] in touched]
        tagged = [t for t in before if layout.tag(killed) in t.metadata.refs]
        if step == "between_commits":
            assert 1 <= len(tagged) < len(before)
        else:
            assert len(tagged) == len(before)
        marks = watermarks(conn)

        resumed = run_export(target, settings, settle=NO_SETTLE)
        assert resumed.resumed and resumed.run_id == killed
        status = conn.execute(
            "select status from etl.export_runs where run_id = %s", (killed,)
        ).fetchone()
        assert status == ("committed",)
        changed = {t.table for t in resumed.tables if t.rows or t.deletes}
        assert watermarks(conn) != marks
    if load == "incremental":
        assert changed >= {"app.users", "app.wishlist", "app.ratings", "etl.tombstones"}
        assert "app.genres" not in changed
    pairs = open_tables(target)
    for source, pair in pairs.items():
        for table in (pair.current, pair.changes):
            ids = run_ids(table)
            assert len(ids) == len(set(ids)), (table.name(), ids)  # no run twice
            if load == "first" or source in changed:
                assert ids.count(killed) == 1, (table.name(), ids)
                snapshot = snapshots.run_snapshot(table, killed)
                assert snapshot is not None
                summary = snapshot.summary.additional_properties if snapshot.summary else {}
                assert summary[layout.RUN_ID] == str(killed)
            else:  # unchanged: no commit, no tag
                assert killed not in ids and layout.tag(killed) not in table.metadata.refs
    checks = verified(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks.values())


def test_a_first_load_in_chunks_keeps_what_it_wrote(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    env[CHUNK_ROWS_VARIABLE] = "100"
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 550, prefix="many")
        h.add_watching(conn, users[:30])

    # every chunk written pauses briefly; the run is killed once users' first chunk is recorded
    pausing = {**env, PAUSE_VARIABLE: "during_files:0.3"}
    proc = h.spawn_cli(pausing, "run", "--target", target, "--quiet", "--settle", "0")
    try:
        # the run creates every lake table before it writes a file
        h.wait_for_line(proc, "paused at during_files")
        users_table = open_tables(target)["app.users"].current
        chunk = Path(local(users_table.location())) / layout.run_folder(1) / "chunk-00000.parquet"
        first_chunk = None
        for _ in range(200):
            h.wait_for_line(proc, "paused at during_files")
            if first_chunk is not None:
                break  # a pause after the one that saw the chunk: it is recorded by now
            if chunk.exists():
                first_chunk = chunk
        else:
            raise AssertionError("users' first chunk never came")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert first_chunk is not None and first_chunk.exists()
    written = first_chunk.stat().st_mtime_ns
    with pg.connect(app_db) as conn:  # killed part way: not every chunk is recorded
        recorded = conn.execute(
            "select count(*) from etl.export_chunks where table_name = 'app.users'"
            " and files is not null"
        ).fetchone()
    assert recorded is not None and 1 <= recorded[0] < 6

    resumed = h.run_cli(env, "run", "--target", target, "--json", "--settle", "0")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed"] and summary["run_id"] == 1
    by_table = {t["table"]: t for t in summary["tables"]}
    assert by_table["app.users"]["rows"] == 550
    assert 1 <= by_table["app.users"]["kept_chunks"] < 6  # 550 rows: six chunks
    assert first_chunk.stat().st_mtime_ns == written  # kept, not written again

    pairs = open_tables(target)
    for table in (pairs["app.users"].current, pairs["app.users"].changes):
        files = live.live_files(table).data
        assert len(files) >= 6, table.name()  # 550 rows, at most 100 a file
        assert all(0 < f.record_count <= 100 for f in files), [f.record_count for f in files]
        assert sum(f.record_count for f in files) == 550
        assert len({f.file_path for f in files}) == len(files)
    current_files = live.live_files(pairs["app.users"].current).data
    assert str(first_chunk) in {local(f.file_path) for f in current_files}
    checks = verified(target, pg, app_db)
    assert checks["app.users"].lake_rows == checks["app.users"].compared == 550


def test_chunks_stay_bounded_when_keys_have_gaps(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys are not dense (deleted users, sequences that jumped): a chunk still holds at most
    the configured number of rows."""
    target = str(tmp_path / "lake")
    monkeypatch.setenv(CHUNK_ROWS_VARIABLE, "100")
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 150, prefix="dense")
        conn.execute("select setval('app.users_id_seq', 100000)")
        h.add_users(conn, 150, prefix="far")
    run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    pair = open_tables(target)["app.users"]
    for table in (pair.current, pair.changes):
        files = live.live_files(table).data
        assert sum(f.record_count for f in files) == 300
        assert all(f.record_count <= 100 for f in files), [f.record_count for f in files]
    verified(target, pg, app_db)


@pytest.mark.slow
def test_a_large_first_load_is_cut_from_a_sample_and_stays_bounded(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3M rows in chunks of 1M: the cut points come from a sample of the table's pages, aimed
    at 80% of the bound (four chunks, where ranking every key would make three), and no chunk
    passes the bound."""
    target = str(tmp_path / "lake")
    monkeypatch.setenv(CHUNK_ROWS_VARIABLE, "1000000")
    with pg.connect(app_db, autocommit=True) as conn:
        conn.execute("create table app.wide_probe (probe_id bigint primary key)")
        conn.execute("insert into app.wide_probe select g from generate_series(1, 3000000) g")
        conn.execute("analyze app.wide_probe")
        conn.execute("grant select on app.wide_probe to animedb_exporter")
        h.list_for_export(conn, "app.wide_probe", "probe_id")
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        chunks = conn.execute(
            "select count(*) from etl.export_chunks where table_name = 'app.wide_probe'"
        ).fetchone()
    assert chunks == (4,)
    pair = open_tables(target)["app.wide_probe"]
    for table in pair.tables:
        files = live.live_files(table).data
        assert sum(f.record_count for f in files) == 3_000_000
        assert all(f.record_count <= 1_000_000 for f in files), [f.record_count for f in files]
    verified(target, pg, app_db)
