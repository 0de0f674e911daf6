"""Maintenance keeps the lake's cost on its data, not its age: small files compacted, deleted
rows rewritten away, history expired after the retention, files nothing needs swept after the
orphan age, metadata and manifests bounded; on by default in every run, and on demand with
`animedb export maintain` (with a dry run). Time travel within the retention stays exact."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from pathlib import Path

import duckdb
import pytest
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.typedef import Record

from exporter import deletefiles, layout, live, maintenance, run_export, snapshots
from exporter.chunks import CHUNK_ROWS_VARIABLE
from exporter.maintenance import (
    MAINTENANCE_VARIABLE,
    MIN_INPUT_FILES,
    ORPHAN_AGE_VARIABLE,
    RETENTION_VARIABLE,
    TARGET_FILE_VARIABLE,
    MaintenanceSettings,
    maintain_target,
)
from exporter.pauses import PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    every_table,
    lake_count,
    local,
    open_tables,
    own_table,
    reader,
    scan,
    tags,
)
from tests.pg_harness import Server


def short_clock(monkeypatch: pytest.MonkeyPatch, retention: str, orphan_age: str) -> dict[str, str]:
    """Retention and orphan age of seconds, for this process and the commands it starts."""
    values = {RETENTION_VARIABLE: retention, ORPHAN_AGE_VARIABLE: orphan_age}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def age(path: Path, seconds: float) -> None:
    """Make a file look `seconds` old."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_change_log_small_files_are_compacted(pg: Server, app_db: str, tmp_path: Path) -> None:
    """Every run adds a small file to each changed log; once a day's partition has
    MIN_INPUT_FILES of them, they become one, and older runs still read as they were."""
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    runs = []
    with pg.connect(app_db, autocommit=True) as conn:
        for i in range(MIN_INPUT_FILES + 2):
            h.add_users(conn, 2, prefix=f"r{i}")
            runs.append(run_export(target, settings, settle=NO_SETTLE))
    log = open_tables(target)["app.users"].changes
    files = live.live_files(log).data
    assert len(files) <= 3, [f.file_path for f in files]  # not one a run
    assert sum(f.record_count for f in files) == 2 * len(runs)
    rewrites = [
        s
        for s in log.snapshots()
        if s.summary is not None and layout.MAINTENANCE_ID in s.summary.additional_properties
    ]
    assert rewrites, "no rewrite of the change log"
    con = reader()
    for i, run in enumerate(runs):
        as_of = snapshots.as_of_run(log, run.run_id)
        assert as_of is not None
        assert lake_count(con, log.metadata_location, as_of.snapshot_id) == 2 * (i + 1)
    h.assert_exact(target, pg, app_db)


def test_the_current_state_is_compacted_when_deletes_pile_up(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """Updates leave deleted positions behind; once a file has a third of its rows deleted, it
    is rewritten from its live rows and the delete files go, while older runs stay readable by
    their tags."""
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 60, prefix="compact")
        run_export(target, settings, settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'one' where user_id = any(%s)", (users[:20],))
        second = run_export(target, settings, settle=NO_SETTLE)
        table = open_tables(target)["app.users"].current
        assert live.live_files(table).deletes  # 20 of 80 stored rows deleted: not yet
        conn.execute("update app.users set bio = 'two' where user_id = any(%s)", (users[:30],))
        third = run_export(target, settings, settle=NO_SETTLE)
        row = conn.execute("select count(*) from app.users").fetchone()
        assert row is not None
        count = int(row[0])
    assert third.maintenance is not None and third.maintenance.rewritten_files >= 2
    table.refresh()
    files = live.live_files(table)
    assert not files.deletes and files.data
    assert sum(f.record_count for f in files.data) == count
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    summary = snapshot.summary.additional_properties
    assert layout.MAINTENANCE_ID in summary
    assert int(summary["total-records"]) == count
    assert summary.get("total-position-deletes", "0") == "0"
    checks = h.assert_exact(target, pg, app_db)
    assert {c.table: c for c in checks}["app.users"].lake_rows == count
    con = reader()
    now = scan(con, table.metadata_location, "count(*), count(*) filter (where bio = 'two')")
    assert now == [(count, 30)]
    before = table.metadata.refs[layout.tag(second.run_id)].snapshot_id
    then = scan(
        con,
        table.metadata_location,
        "count(*) filter (where bio = 'one')",
        snapshot_id=before,
    )
    assert then == [(20,)]


def test_the_lake_stays_flat_once_the_retention_is_full(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small runs with a retention of seconds: the snapshots, metadata files, manifests
    and files of every table stop growing with the runs, and every file left is one a retained
    snapshot needs."""
    short_clock(monkeypatch, "3s", "2s")
    target = tmp_path / "lake"
    settings = pg.settings(app_db)
    counts = []
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 40, prefix="flat")
        h.add_watching(conn, users[:20])
        for i in range(30):
            conn.execute(
                "update app.users set bio = %s where user_id = any(%s)", (f"v{i}", users[i : i + 3])
            )
            h.add_users(conn, 1, prefix=f"n{i}")
            run_export(str(target), settings, settle=NO_SETTLE)
            counts.append(len(files_in(target)))
            time.sleep(0.3)
        time.sleep(2.5)  # past the orphan age
        proc = h.run_cli(pg.env(app_db), "maintain", "--target", str(target), "--json")
        assert proc.returncode == 0, proc.stderr
    # flat once the window is full (a saw: files pile up between two sweeps), not growing
    assert statistics.fmean(counts[-10:]) <= 1.1 * statistics.fmean(counts[10:20]), counts
    pairs = open_tables(str(target))
    for table in every_table(pairs):
        metadata = table.metadata
        assert len(metadata.snapshots) <= 12, (table.name(), len(metadata.snapshots))
        assert len(metadata.metadata_log) <= layout.PREVIOUS_VERSIONS_KEPT
        snapshot = table.current_snapshot()
        if snapshot is not None:
            manifests = snapshot.manifests(table.io)
            assert len(manifests) <= 2 * layout.MANIFESTS_TO_MERGE, table.name()
        folder = Path(local(table.location()))
        needed = {local(p) for p in maintenance.referenced(table)}
        stray = [str(p) for p in files_in(folder) if str(p) not in needed]
        assert not stray, stray
    h.assert_exact(str(target), pg, app_db)


def test_maintain_lists_what_a_dry_run_would_delete_and_then_deletes_it(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**h.exporter_env(pg, app_db), MAINTENANCE_VARIABLE: "off"}
    monkeypatch.setenv(MAINTENANCE_VARIABLE, "off")
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5)
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    users = open_tables(target)["app.users"].current
    folder = Path(local(users.location()))
    orphan = folder / "data" / "left-behind.parquet"
    orphan.write_bytes(b"a file of a write that never committed")
    young = folder / "data" / "in-flight.parquet"
    young.write_bytes(b"a file of a commit still to come")
    age(orphan, 7200)
    before = files_in(Path(target))

    proc = h.run_cli(
        env, "maintain", "--target", target, "--dry-run", "--orphan-age", "1h", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dry_run"] and result["would_remove"] == [str(orphan)]
    assert files_in(Path(target)) == before  # nothing changed
    # the table, for a person: every location whole, whatever the terminal's width
    proc = h.run_cli(env, "maintain", "--target", target, "--dry-run", "--orphan-age", "1h")
    assert proc.returncode == 0, proc.stderr
    assert str(orphan) in proc.stdout.splitlines()

    proc = h.run_cli(env, "maintain", "--target", target, "--orphan-age", "1h", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed_files"] == 1
    assert not orphan.exists() and young.exists()
    h.assert_exact(target, pg, app_db)


def test_the_sweep_keeps_a_pending_runs_files(pg: Server, app_db: str, tmp_path: Path) -> None:
    """A killed run's files are in no snapshot yet; the run that resumes it needs them, so the
    sweep leaves them, however old."""
    target = str(tmp_path / "lake")
    env = h.exporter_env(pg, app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5)
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        h.add_users(conn, 3, prefix="pending")
        h.kill_at(env, target, "after_files")
    users = open_tables(target)["app.users"]
    written = [
        p
        for table in users.tables
        for p in files_in(Path(local(table.location())) / layout.run_folder(2))
    ]
    assert written
    for path in written:
        age(path, 7 * 24 * 3600)
    proc = h.run_cli(env, "maintain", "--target", target, "--orphan-age", "1s", "--json")
    assert proc.returncode == 0, proc.stderr
    assert all(p.exists() for p in written)
    resumed = run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    assert resumed.resumed and resumed.run_id == 2
    assert {t.table: t.kept_chunks for t in resumed.tables}["app.users"] == 1
    h.assert_exact(target, pg, app_db)


def test_maintenance_off_leaves_the_lake_to_other_tools(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_clock(monkeypatch, "1s", "1s")
    monkeypatch.setenv(MAINTENANCE_VARIABLE, "off")
    target = str(tmp_path / "lake")
    with pg.connect(app_db, autocommit=True) as conn:
        for i in range(MIN_INPUT_FILES + 2):
            h.add_users(conn, 1, prefix=f"off{i}")
            summary = run_export(target, pg.settings(app_db), settle=NO_SETTLE)
            assert summary.maintenance is None
            time.sleep(0.2)
    log = open_tables(target)["app.users"].changes
    assert len(log.metadata.snapshots) == MIN_INPUT_FILES + 2  # one a run, none expired
    assert len(tags(log)) == MIN_INPUT_FILES + 2
    assert len(live.live_files(log).data) == MIN_INPUT_FILES + 2  # none compacted
    h.assert_exact(target, pg, app_db)


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        (RETENTION_VARIABLE, "soon", "is not a duration"),
        (ORPHAN_AGE_VARIABLE, "0s", "must be longer than zero"),
        (TARGET_FILE_VARIABLE, "0", "is not a file size"),
        (MAINTENANCE_VARIABLE, "sometimes", "use on or off"),
    ],
)
def test_a_bad_maintenance_setting_is_one_line(
    pg: Server, app_db: str, tmp_path: Path, variable: str, value: str, needle: str
) -> None:
    env = {**h.exporter_env(pg, app_db), variable: value}
    target = str(tmp_path / "lake")
    for command in ("run", "maintain"):
        proc = h.run_cli(env, command, "--target", target)
        h.assert_refused(proc, variable, needle)
    assert not Path(target).exists() or not any(Path(target).rglob("*.parquet"))


def test_a_bad_maintain_flag_is_one_line(tmp_path: Path) -> None:
    proc = h.run_cli(h.clean_env(), "maintain", "--target", str(tmp_path), "--retention", "0")
    assert proc.returncode == 2
    h.assert_one_clear_line(proc.stderr, "--retention")


def test_maintain_where_there_is_no_lake_is_one_line(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    proc = h.run_cli(h.exporter_env(pg, app_db), "maintain", "--target", str(missing))
    h.assert_refused(proc, str(missing), "holds no lake")
    assert not missing.exists()


def test_a_rewrite_that_meets_new_deletes_waits_for_its_next_turn(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`maintain` reads a current-state file with many deleted rows and writes its live rows
    anew; before it commits, a run deletes more rows of that file. Committing the rewrite then
    would bring those rows back: it is dropped instead, its files deleted, and the next turn
    does it right."""
    monkeypatch.setenv(MAINTENANCE_VARIABLE, "off")  # the runs leave the lake to `maintain`
    target = str(tmp_path / "lake")
    env = {**h.exporter_env(pg, app_db), MAINTENANCE_VARIABLE: "off"}
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 60, prefix="meet")
        run_export(target, settings, settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'half' where user_id = any(%s)", (users[:30],))
        run_export(target, settings, settle=NO_SETTLE)  # the first file: half its rows deleted

        slow = h.spawn_cli(
            {**env, PAUSE_VARIABLE: "after_rewrite_files:6"}, "maintain", "--target", target
        )
        h.wait_for_line(slow, "paused at after_rewrite_files")
        conn.execute(
            "update app.users set bio = 'meanwhile' where user_id = any(%s)", (users[40:50],)
        )
        run_export(target, settings, settle=NO_SETTLE)  # deletes rows of the file being rewritten
        out, err = slow.communicate(timeout=120)
        assert slow.returncode == 0, err
    assert "another writer changed it" in out  # the rewrite waits, and says why
    h.assert_exact(target, pg, app_db)
    users_table = open_tables(target)["app.users"].current
    rewrites = list((Path(local(users_table.location())) / "data").glob("rewrite-*/*"))
    assert not rewrites  # the dropped rewrite's files are gone
    proc = h.run_cli(env, "maintain", "--target", target, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rewritten_files"] >= 2
    checks = {c.table: c for c in h.assert_exact(target, pg, app_db)}
    assert checks["app.users"].lake_rows == 60


@pytest.mark.slow
def test_a_first_loads_chunks_are_not_compacted(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A narrow table's first load comes in chunks of many rows and few bytes: they are the
    table's files, not small ones, and the run does not rewrite the table it has just loaded
    (a sort of all of it). The same files as a run's deltas would be compacted."""
    chunk = 2 * maintenance.SMALL_ROWS
    monkeypatch.setenv(CHUNK_ROWS_VARIABLE, str(chunk))
    target = str(tmp_path / "lake")
    rows = MIN_INPUT_FILES * chunk
    with pg.connect(app_db, autocommit=True) as conn:
        own_table(conn, "narrow_probe", "v int")
        conn.execute(
            "insert into app.narrow_probe select i, i %% 7 from generate_series(1, %s) i", (rows,)
        )
        summary = run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    assert summary.maintenance is not None
    assert summary.maintenance.rewritten_files == 0
    pair = open_tables(target)["app.narrow_probe"]
    for table in pair.tables:
        files = live.live_files(table).data
        assert len(files) >= MIN_INPUT_FILES, table.name()
        assert all(f.file_size_in_bytes < maintenance.SMALL_SHARE * 128 * 2**20 for f in files)
        assert lake_count(reader(), table.metadata_location) == rows


def test_delete_files_naming_several_data_files_become_one_per_data_file(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """A delete file of an earlier version (or another engine) names several data files:
    maintenance merges the deletes into one file per data file, the same rows deleted."""
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    off = MaintenanceSettings(enabled=False)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 4, prefix="a")
        run_export(target, settings, settle=NO_SETTLE, maintenance_settings=off)
        h.add_users(conn, 4, prefix="b")
        run_export(target, settings, settle=NO_SETTLE, maintenance_settings=off)
    users = open_tables(target)["app.users"].current
    paths = sorted(f.file_path for f in live.live_files(users).data)
    assert len(paths) == 2
    # one delete file naming the first row of each data file, with no bounds: as written before
    staged = tmp_path / "wide-deletes.parquet"
    con = duckdb.connect()
    rows = ", ".join(f"('{p}', 0::BIGINT)" for p in paths)
    con.execute(
        f"copy (select * from (values {rows}) v(file_path, pos) order by 1, 2) to '{staged}'"
        f" (format parquet, field_ids {{'file_path': {layout.FILE_PATH_ID},"
        f" 'pos': {layout.POS_ID}}})"
    )
    location = f"{users.location()}/data/wide-deletes.parquet"
    shutil.copy(staged, location.removeprefix("file://"))
    wide = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=2,
        file_size_in_bytes=staged.stat().st_size,
    )
    snapshots.commit(
        users,
        lambda _: snapshots.Change({}, deletes=[wide]),
        marker=snapshots.Marker.job("wide-deletes"),
        since_ms=snapshots.now_ms(),
        retention_ms=7 * 24 * 3600 * 1000,
    )
    before = lake_count(reader(), users.metadata_location)
    assert before == 6

    maintain_target(target, settings)

    users = open_tables(target)["app.users"].current
    deletes = live.live_files(users).deletes
    assert sorted(deletefiles.referenced(d) or "" for d in deletes) == paths
    assert lake_count(reader(), users.metadata_location) == before
