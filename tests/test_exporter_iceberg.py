"""The lake as Iceberg tables, judged by engines that are not the exporter: DuckDB's own Iceberg
reader and pyiceberg's metadata, against a real PostgreSQL, a local folder and moto's S3 + Glue."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from pyiceberg.table import Table

from animedb import files as animedb_files
from exporter import duck, iceberg, lake, run_export
from exporter import verify as verify_module
from exporter.run import CHUNK_ROWS_VARIABLE, PAUSE_VARIABLE
from tests import exporter_helpers as h
from tests import s3_harness
from tests.exporter_helpers import NO_SETTLE, watermarks
from tests.pg_harness import Server

# --- reading the lake as another engine does -----------------------------------------------------


def lake_tables(
    env: dict[str, str], target: str, namespace: str | None = None
) -> dict[str, dict[str, Any]]:
    """`exporter tables --json`, by source table."""
    where = ("--namespace", namespace) if namespace else ()
    proc = h.run_cli(env, "tables", "--target", target, *where, "--json")
    assert proc.returncode == 0, proc.stderr
    return {item["source"]: item for item in json.loads(proc.stdout)}


def local(location: str) -> str:
    """A location as DuckDB and the file system take it: a local path without file://, or the
    s3:// location."""
    return location.removeprefix("file://")


def reader(target: str | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with its own Iceberg reader (and, for an s3:// target, S3 access)."""
    con = duck.connect(s3=lake.open_lake(target).s3_access() if target else None)
    duck.load_iceberg(con)
    return con


def as_text(value: object) -> str | None:
    """One spelling per value, whichever engine returned it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, value
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def text_rows(rows: list[tuple[object, ...]]) -> list[tuple[str | None, ...]]:
    return sorted((tuple(as_text(v) for v in row) for row in rows), key=repr)


def pg_columns(conn: h.Conn, table: str) -> list[str]:
    schema, _, name = table.partition(".")
    rows = conn.execute(
        "select column_name from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, name),
    ).fetchall()
    return [str(r[0]) for r in rows]


def pg_rows(conn: h.Conn, table: str, columns: list[str]) -> list[tuple[str | None, ...]]:
    select = ", ".join(f'"{c}"' for c in columns)
    return text_rows(conn.execute(f"select {select} from {table}").fetchall())


def scan(
    con: duckdb.DuckDBPyConnection,
    metadata_location: str,
    select: str = "*",
    where: str = "true",
    snapshot_id: int | None = None,
) -> list[tuple[object, ...]]:
    path = local(metadata_location).replace("'", "''")
    version = f", snapshot_from_id = {snapshot_id}" if snapshot_id is not None else ""
    return con.execute(
        f"select {select} from iceberg_scan('{path}'{version}) where {where}"
    ).fetchall()


def lake_rows(
    con: duckdb.DuckDBPyConnection, metadata_location: str, columns: list[str]
) -> list[tuple[str | None, ...]]:
    return text_rows(scan(con, metadata_location, quoted(columns)))


def quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def lake_count(
    con: duckdb.DuckDBPyConnection, metadata_location: str, snapshot_id: int | None = None
) -> int:
    [(count,)] = scan(con, metadata_location, "count(*)", snapshot_id=snapshot_id)
    return int(str(count))


def verified(target: str, server: Server, dbname: str) -> dict[str, verify_module.TableCheck]:
    return {c.table: c for c in h.assert_exact(target, server, dbname)}


def add_early_users(conn: h.Conn) -> list[int]:
    """The users early_1 to early_10, the first six watching and rating Trigun: what
    change_everything changes."""
    early = h.add_users(conn, 10, prefix="early")
    h.add_watching(conn, early[:6])
    return early


def change_everything(conn: h.Conn) -> dict[str, Any]:
    """Inserts, updates and deletes in users, wishlist and ratings; what was deleted."""
    new = h.add_users(conn, 3, prefix="late")
    conn.execute("update app.users set bio = 'changed' where username = 'early_1'")
    conn.execute("update app.users set bio = bio where username = 'early_2'")  # not a change
    old = h.ids(
        conn, "select user_id from app.users where username in ('early_3', 'early_4') order by 1"
    )
    ratings = h.ids(
        conn, "delete from app.ratings where user_id = any(%s) returning rating_id", (old,)
    )
    wishlist = h.ids(
        conn, "delete from app.wishlist where user_id = any(%s) returning wishlist_id", (old,)
    )
    h.add_watching(conn, new[:1], mal_id=1, score=10)
    conn.execute(
        "update app.wishlist set episodes_watched = episodes_watched + 1"
        " where user_id = (select user_id from app.users where username = 'early_5')"
    )
    return {"app.ratings": set(ratings), "app.wishlist": set(wishlist)}


def open_tables(target: str, namespace: str | None = None) -> dict[str, iceberg.Pair]:
    """pyiceberg's view of the lake: each source table's two Iceberg tables."""
    house = iceberg.open_house(lake.open_lake(target), namespace=namespace)
    return {p.source: p for p in iceberg.pairs(house)}


def every_table(pairs: dict[str, iceberg.Pair]) -> list[Table]:
    return [t for p in pairs.values() for t in (p.current, p.changes)]


def pg_counts(conn: h.Conn) -> dict[str, int]:
    names = [str(r[0]) for r in conn.execute("select table_name from etl.exported_tables")]
    counts: dict[str, int] = {}
    for name in names:
        row = conn.execute(f"select count(*) from {name}").fetchone()
        assert row is not None
        counts[name] = int(row[0])
    return counts


def run_ids(table: Table) -> list[int]:
    """The run id in the summary of each of the table's snapshots that brought data, oldest
    first (a compaction names its run too, but only rewrites what is there)."""
    found = []
    for snapshot in table.snapshots():
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        assert iceberg.RUN_ID in summary, (table.name(), snapshot.snapshot_id)
        if iceberg.COMPACTED_BY not in summary:
            found.append(int(summary[iceberg.RUN_ID]))
    return found


def refs_of_every_table(target: str) -> dict[str, dict[str, int]]:
    return {
        ".".join(t.name()): {name: ref.snapshot_id for name, ref in t.metadata.refs.items()}
        for t in every_table(open_tables(target))
    }


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def own_table(conn: h.Conn, name: str, columns: str) -> None:
    """A table of the test's own, exported as an id table."""
    conn.execute(f"create table app.{name} (probe_id bigint primary key, {columns})")
    conn.execute(f"grant select on app.{name} to animedb_exporter")
    h.list_for_export(conn, f"app.{name}", "probe_id")


def field_types(table: Table) -> dict[str, str]:
    return {f.name: str(f.field_type) for f in table.schema().fields}


def flip_bytes(path: Path) -> None:
    """The same size, other bytes: only a checksum tells."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 8):
        data[i] ^= 0xFF
    size = path.stat().st_size
    path.write_bytes(bytes(data))
    assert path.stat().st_size == size


# --- 1. an independent reader agrees with PostgreSQL and with verify -----------------------------


def test_duckdb_reads_every_table_as_postgres_has_it(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    settings, env = pg.settings(app_db), pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        add_early_users(conn)
        first = run_export(target, settings, settle=NO_SETTLE)
        deleted = change_everything(conn)
        second = run_export(target, settings, settle=NO_SETTLE)
        assert second.run_id == first.run_id + 1 and not second.resumed

        listed = lake_tables(env, target)
        exported = {
            str(r[0]) for r in conn.execute("select table_name from etl.exported_tables").fetchall()
        }
        assert set(listed) == exported
        checks = verified(target, pg, app_db)
        con = reader()
        for source, item in sorted(listed.items()):
            relname = source.split(".")[1]
            assert item["current"]["identifier"] == f"animedb.{relname}"
            assert item["changes"]["identifier"] == f"animedb.{relname}_changes"
            location = item["current"]["metadata_location"]
            assert lake_count(con, location) == checks[source].lake_rows, source
            assert checks[source].lake_rows == checks[source].compared, source
            # every column of every row, as PostgreSQL has it (no writer since the run)
            columns = pg_columns(conn, source)
            assert lake_rows(con, location, columns) == pg_rows(conn, source, columns), source
        committed = set(
            h.ids(conn, "select run_id from etl.export_runs where status = 'committed'")
        )
        assert committed == {first.run_id, second.run_id}

        # the change log: deletes as rows with _deleted, every row naming its run
        for source, keys in deleted.items():
            assert keys, source
            key = "rating_id" if source == "app.ratings" else "wishlist_id"
            log = listed[source]["changes"]["metadata_location"]
            rows = scan(con, log, f'"{key}", _run_id', where="_deleted")
            assert {int(str(k)) for k, _ in rows} == keys
            assert {int(str(r)) for _, r in rows} == {second.run_id}
            runs = scan(con, log, "distinct _run_id")
            assert {int(str(r)) for (r,) in runs} == committed
            assert not scan(con, log, "*", where="_deleted is null or _run_id is null")
        started = {
            str(run): as_text(at)
            for run, at in conn.execute(
                "select run_id, started_at from etl.export_runs where status = 'committed'"
            ).fetchall()
        }
        users_log = listed["app.users"]["changes"]["metadata_location"]
        stamps = scan(con, users_log, "distinct _run_id, _exported_at")
        assert {str(r): as_text(at) for r, at in stamps} == started  # the run and its start
        by_run = {
            int(str(run)): int(str(count))
            for run, count in scan(con, users_log, "_run_id, count(*)", where="true group by 1")
        }
        assert by_run == {first.run_id: 10, second.run_id: 4}  # 3 new, early_1 changed
        changed = scan(con, users_log, "bio, _run_id", where="username = 'early_1'")
        assert sorted(changed, key=repr) == sorted(
            [(None, first.run_id), ("changed", second.run_id)], key=repr
        )


# --- 2. the lake as of run N ---------------------------------------------------------------------


ACTIVITY = ("app.users", "app.wishlist", "app.ratings")


def test_time_travel_to_any_run(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    counts: dict[int, dict[str, int]] = {}  # run -> table -> rows PostgreSQL had
    rows: dict[int, dict[str, list[tuple[str | None, ...]]]] = {}  # run -> table -> rows
    runs: list[int] = []
    shipped: dict[int, dict[str, int]] = {}  # run -> table -> versions and deletes it brought
    with pg.connect(app_db, autocommit=True) as conn:
        columns = {t: pg_columns(conn, t) for t in ACTIVITY}

        def export() -> None:
            summary = run_export(target, settings, settle=NO_SETTLE)
            runs.append(summary.run_id)
            shipped[summary.run_id] = {t.table: t.rows + t.deletes for t in summary.tables}
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
    for table in every_table(pairs):
        refs = table.metadata.refs
        tags = {name for name, ref in refs.items() if ref.snapshot_ref_type == "tag"}
        assert tags == {iceberg.tag(r) for r in runs}, table.name()
        for run_id in runs:
            assert table.snapshot_by_id(refs[iceberg.tag(run_id)].snapshot_id), table.name()
    con = reader()
    for source, pair in pairs.items():
        location = pair.current.metadata_location
        for run_id in runs:
            snapshot_id = pair.current.metadata.refs[iceberg.tag(run_id)].snapshot_id
            assert lake_count(con, location, snapshot_id) == counts[run_id][source], (
                source,
                run_id,
            )
            if source in ACTIVITY:  # every row, every column, as of that run
                found = scan(con, location, quoted(columns[source]), snapshot_id=snapshot_id)
                assert text_rows(found) == rows[run_id][source], (source, run_id)
            # the change log as of run N: what runs 1..N brought, and nothing after
            log = pair.changes
            log_snapshot = log.metadata.refs[iceberg.tag(run_id)].snapshot_id
            expected = sum(shipped[r][source] for r in runs if r <= run_id)
            assert lake_count(con, log.metadata_location, log_snapshot) == expected, source
            found_runs = scan(
                con, log.metadata_location, "distinct _run_id", snapshot_id=log_snapshot
            )
            assert {int(str(r)) for (r,) in found_runs} <= {r for r in runs if r <= run_id}
    # the users table as of run 1: the ten early users, none of the later ones, bio unchanged
    users = pairs["app.users"].current
    first = users.metadata.refs[iceberg.tag(runs[0])].snapshot_id
    found = scan(con, users.metadata_location, "username, bio", snapshot_id=first)
    assert sorted(found) == sorted((f"early_{i}", None) for i in range(1, 11))


# --- 3. a resumed run commits nothing twice ------------------------------------------------------


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
        # between commits: the first table's snapshots are in, the others' are not; after
        # commits: all of them are, and only PostgreSQL's step 4 is missing
        before = every_table(open_tables(target))
        tagged = [t for t in before if iceberg.tag(killed) in t.metadata.refs]
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
            ref = table.metadata.refs[iceberg.tag(killed)]
            if load == "first" or source in changed:
                assert ids.count(killed) == 1, (table.name(), ids)
                snapshot = iceberg.run_snapshot(table, killed)
                assert snapshot is not None
                summary = snapshot.summary.additional_properties if snapshot.summary else {}
                assert summary[iceberg.RUN_ID] == str(killed)
            else:  # unchanged: the tag marks the snapshot the table already had
                assert killed not in ids and ref.snapshot_id == table.metadata.current_snapshot_id
    checks = verified(target, pg, app_db)
    assert all(c.duplicates == 0 for c in checks.values())


# --- 4. a first load in chunks, resumed chunk by chunk -------------------------------------------


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
        chunk = Path(local(users_table.location())) / iceberg.run_folder(1) / "chunk-00000.parquet"
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
    assert not (first_chunk.parent / "chunk-00005.parquet").exists()  # killed part way

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
        files = iceberg.live_files(table).data
        assert len(files) >= 6, table.name()  # 550 rows, at most 100 a file
        assert all(0 < f.record_count <= 100 for f in files), [f.record_count for f in files]
        assert sum(f.record_count for f in files) == 550
        assert len({f.file_path for f in files}) == len(files)
    current_files = iceberg.live_files(pairs["app.users"].current).data
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
        files = iceberg.live_files(table).data
        assert sum(f.record_count for f in files) == 300
        assert all(f.record_count <= 100 for f in files), [f.record_count for f in files]
    verified(target, pg, app_db)


# --- 5. schema evolution -------------------------------------------------------------------------


def test_an_added_column_appears_in_both_lake_tables(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        early = h.add_users(conn, 6, prefix="early")
        first = run_export(target, settings, settle=NO_SETTLE)
        conn.execute("alter table app.users add column nickname text")
        conn.execute(
            "update app.users set nickname = 'nick ' || username where user_id = any(%s)",
            (early[:2],),
        )
        second = run_export(target, settings, settle=NO_SETTLE)
        assert {t.table: t.rows for t in second.tables}["app.users"] == 2
        verified(target, pg, app_db)
    pair = open_tables(target)["app.users"]
    for table in (pair.current, pair.changes):
        assert field_types(table).get("nickname") == "string", table.name()
    con = reader()
    current = scan(con, pair.current.metadata_location, "user_id, nickname")
    assert sorted(current) == sorted(
        [(u, f"nick early_{i}" if i <= 2 else None) for i, u in enumerate(early, start=1)]
    )
    log = scan(con, pair.changes.metadata_location, "_run_id, user_id, nickname")
    assert sorted(log) == sorted(
        [(first.run_id, u, None) for u in early]
        + [(second.run_id, u, f"nick early_{i}") for i, u in enumerate(early[:2], start=1)]
    )


def test_widened_types_follow_the_source(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        own_table(conn, "widen_probe", "n integer, amount numeric(10,2), code varchar(5)")
        conn.execute("insert into app.widen_probe values (1, 7, 12345678.91, 'abcde')")
        users = h.add_users(conn, 3)  # and a table whose rows change: old versions get deleted
        run_export(target, settings, settle=NO_SETTLE)
        before = open_tables(target)["app.widen_probe"]
        assert field_types(before.current) == {
            "probe_id": "long",
            "n": "int",
            "amount": "decimal(10, 2)",
            "code": "string",
            "_run_id": "long",  # the run that brought each version
            "_exported_at": "timestamptz",
        }
        conn.execute("alter table app.widen_probe alter column n type bigint")
        conn.execute("alter table app.widen_probe alter column amount type numeric(14,2)")
        conn.execute("alter table app.widen_probe alter column code type text")
        conn.execute(
            "insert into app.widen_probe values (2, 9000000000, 123456789012.34, 'longer than five')"
        )
        conn.execute("alter table app.users alter column birth_year type bigint")
        conn.execute("update app.users set birth_year = 2001 where user_id = %s", (users[0],))
        run_export(target, settings, settle=NO_SETTLE)
        verified(target, pg, app_db)
        years = conn.execute("select user_id, birth_year from app.users").fetchall()
    con = reader()
    users_pair = open_tables(target)["app.users"]
    for table in (users_pair.current, users_pair.changes):
        assert field_types(table)["birth_year"] == "long", table.name()
    found = scan(con, users_pair.current.metadata_location, "user_id, birth_year")
    assert sorted(found) == sorted(years) and (users[0], 2001) in found
    pair = open_tables(target)["app.widen_probe"]
    for table in (pair.current, pair.changes):
        types = field_types(table)
        assert types["n"] == "long" and types["amount"] == "decimal(14, 2)", table.name()
        assert types["code"] == "string"
        # promoted in place: the same field ids, so old files stay readable
        ids = {f.name: f.field_id for f in table.schema().fields}
        old = before.current if table is pair.current else before.changes
        assert ids == {f.name: f.field_id for f in old.schema().fields}
    for location in (pair.current.metadata_location, pair.changes.metadata_location):
        rows = scan(con, location, "probe_id, n, amount, code")
        assert sorted(rows) == [
            (1, 7, Decimal("12345678.91"), "abcde"),
            (2, 9000000000, Decimal("123456789012.34"), "longer than five"),
        ]


def test_a_dropped_column_stays_in_the_lake(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        own_table(conn, "drop_probe", "kept text, gone text")
        conn.execute("insert into app.drop_probe values (1, 'a', 'old value'), (2, 'b', null)")
        first = run_export(target, settings, settle=NO_SETTLE)
        conn.execute("alter table app.drop_probe drop column gone")
        conn.execute("insert into app.drop_probe values (3, 'c')")
        run_export(target, settings, settle=NO_SETTLE)
        verified(target, pg, app_db)
    pair = open_tables(target)["app.drop_probe"]
    con = reader()
    for table in (pair.current, pair.changes):
        assert "gone" in field_types(table), table.name()
        rows = scan(con, table.metadata_location, "probe_id, kept, gone")
        assert sorted(rows) == [(1, "a", "old value"), (2, "b", None), (3, "c", None)]
        old = table.metadata.refs[iceberg.tag(first.run_id)].snapshot_id
        rows = scan(con, table.metadata_location, "probe_id, gone", snapshot_id=old)
        assert sorted(rows) == [(1, "old value"), (2, None)]


def test_an_inexpressible_change_stops_the_run_before_any_commit(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        own_table(conn, "narrow_probe", "c text")
        conn.execute("insert into app.narrow_probe values (1, '10'), (2, '20')")
        h.add_users(conn, 3)
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        conn.execute("alter table app.narrow_probe alter column c type integer using c::integer")
        conn.execute("insert into app.narrow_probe values (3, 30)")
        h.add_users(conn, 2, prefix="later")  # other tables have news too: none is committed
        refs = refs_of_every_table(target)
        marks = watermarks(conn)
        runs = conn.execute("select run_id, status from etl.export_runs order by 1").fetchall()

        proc = h.run_cli(env, "run", "--target", target, "--settle", "0")
        h.assert_refused(proc, "app.narrow_probe.c")

        assert refs_of_every_table(target) == refs
        assert watermarks(conn) == marks
        assert (
            conn.execute("select run_id, status from etl.export_runs order by 1").fetchall() == runs
        )  # the run never started
    pair = open_tables(target)["app.narrow_probe"]
    assert field_types(pair.current)["c"] == "string"


# --- 6. targets of their own ---------------------------------------------------------------------


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
        lake.open_lake(a).uri: {run_a2.run_id},
        lake.open_lake(b).uri: {run_b.run_id},
    }
    assert run_a1.run_id < run_b.run_id < run_a2.run_id
    # each lake has exactly its own runs
    for target, runs in ((a, {run_a1.run_id, run_a2.run_id}), (b, {run_b.run_id})):
        for table in every_table(open_tables(target)):
            assert set(table.metadata.refs) == {iceberg.tag(r) for r in runs} | {"main"}


# --- 7. the lake belongs to one database ---------------------------------------------------------


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


def test_metadata_files_are_readable_by_other_users(
    pg: Server, app_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another engine may read the lake as another user: the metadata files the exporter
    writes get the umask's mode, not the owner-only one of a temporary file."""
    monkeypatch.setattr(animedb_files, "_UMASK", 0o022)
    target = tmp_path / "lake"
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 3)
    run_export(str(target), pg.settings(app_db), settle=NO_SETTLE)
    metadata = [p for p in target.rglob("*") if p.is_file() and p.parent.name == "metadata"]
    assert any(p.name.endswith(".metadata.json") for p in metadata)
    assert any(p.name.endswith(".avro") for p in metadata)
    unreadable = [str(p) for p in metadata if p.stat().st_mode & 0o044 != 0o044]
    assert not unreadable


# --- 8. damage is named, never a traceback -------------------------------------------------------


def test_corrupted_metadata_is_named(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        h.add_users(conn, 5)
    run_export(target, pg.settings(app_db), settle=NO_SETTLE)
    metadata = Path(local(lake_tables(env, target)["app.genres"]["current"]["metadata_location"]))
    assert metadata.is_file()
    metadata.write_text("{ this is not the metadata of any table")

    proc = h.run_cli(env, "verify", "--target", target)
    line = h.assert_refused(proc)
    assert "animedb.genres" in line or str(metadata) in line, line
    proc = h.run_cli(env, "report", "--target", target, "--output", str(tmp_path / "r.html"))
    line = h.assert_refused(proc)
    assert "animedb.genres" in line or str(metadata) in line, line
    assert not (tmp_path / "r.html").exists()
    proc = h.run_cli(env, "run", "--target", target, "--settle", "0")
    line = h.assert_refused(proc)
    assert "animedb.genres" in line or str(metadata) in line, line


def test_tampered_files_are_named(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = str(tmp_path / "lake")
    env = pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 20)
        h.add_watching(conn, users[:10])
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'new' where user_id = %s", (users[0],))
        run_export(target, pg.settings(app_db), settle=NO_SETTLE)  # a position-delete file
    assert h.run_cli(env, "verify", "--target", target).returncode == 0
    pairs = open_tables(target)
    users_files = iceberg.live_files(pairs["app.users"].current)
    assert len(users_files.data) == 2 and len(users_files.deletes) == 1

    def first_file(table: Table) -> Path:
        return Path(local(iceberg.live_files(table).data[0].file_path))

    damaged = {
        "flipped": Path(local(users_files.data[0].file_path)),
        "flipped delete file": Path(local(users_files.deletes[0].file_path)),
        "truncated": first_file(pairs["app.wishlist"].changes),
        "missing": first_file(pairs["app.ratings"].current),
    }
    for how, path in damaged.items():
        original = path.read_bytes()
        if how.startswith("flipped"):
            flip_bytes(path)
        elif how == "truncated":
            path.write_bytes(original[: len(original) // 2])
        else:
            path.unlink()
        proc = h.run_cli(env, "verify", "--target", target)
        line = h.assert_refused(proc, str(path))
        if how == "missing":
            assert "missing" in line
        path.write_bytes(original)  # one damage at a time: each is named by itself
    assert h.run_cli(env, "verify", "--target", target).returncode == 0


# --- 9. S3 and the Glue Data Catalog -------------------------------------------------------------


def test_s3_with_the_glue_catalog(
    pg: Server, app_db: str, s3: s3_harness.S3Endpoint, s3_target: str
) -> None:
    namespace = s3.namespace  # Glue is one per moto server: the s3 fixture's keeps tests apart
    settings, env = pg.settings(app_db), pg.env(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        add_early_users(conn)
        first = run_export(s3_target, settings, settle=NO_SETTLE, namespace=namespace)
        assert first.catalog == "animedb" and first.namespace == namespace
        change_everything(conn)
        second = run_export(s3_target, settings, settle=NO_SETTLE, namespace=namespace)
        assert {t.table: t.rows for t in second.tables}["app.users"] == 4
        checks = {
            c.table: c for c in verify_module.verify(s3_target, settings, namespace=namespace)
        }
        assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
        assert checks["app.users"].lake_rows == 13

        listed = lake_tables(env, s3_target, namespace)
        prefix = s3_target.rstrip("/") + "/"
        for item in listed.values():
            for role in ("current", "changes"):
                assert item[role]["metadata_location"].startswith(prefix), item
                assert item[role]["identifier"].startswith(f"{namespace}.")

        house = iceberg.open_house(lake.open_lake(s3_target), namespace=namespace)
        glue = s3.service("glue")
        for source, item in listed.items():
            for role in ("current", "changes"):
                name = item[role]["identifier"].split(".", 1)[1]
                parameters = glue.get_table(DatabaseName=namespace, Name=name)["Table"][
                    "Parameters"
                ]
                assert parameters["table_type"] == "ICEBERG", (source, parameters)
                location = house.catalog.load_table(item[role]["identifier"]).metadata_location
                assert (
                    parameters["metadata_location"] == location == item[role]["metadata_location"]
                )

        # and DuckDB reads the tables straight from S3
        con = reader(s3_target)
        columns = pg_columns(conn, "app.users")
        users = listed["app.users"]["current"]["metadata_location"]
        assert lake_rows(con, users, columns) == pg_rows(conn, "app.users", columns)


# --- 10. the plain-Parquet layout of earlier versions --------------------------------------------


def test_a_lake_of_the_old_layout_is_refused(pg: Server, app_db: str, tmp_path: Path) -> None:
    target = tmp_path / "lake"
    (target / "_manifests").mkdir(parents=True)
    (target / "_manifests" / "000000000001.json").write_text('{"run_id": 1, "tables": {}}')
    before = file_hashes(target)

    proc = h.run_cli(pg.env(app_db), "run", "--target", str(target), "--settle", "0")
    line = h.assert_refused(proc, "_manifests")
    assert "new" in line and "target" in line

    assert file_hashes(target) == before
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == [
        Path("_manifests"),
        Path("_manifests/000000000001.json"),
    ]
    assert not (target / iceberg.LOCAL_CATALOG_FILE).exists()
    with pg.connect(app_db) as conn:
        assert conn.execute("select count(*) from etl.export_runs").fetchone() == (0,)


def test_the_current_state_is_compacted_when_deletes_pile_up(
    pg: Server, app_db: str, tmp_path: Path
) -> None:
    """Updates leave deleted positions behind; once they are a third of what readers scan,
    the run rewrites the current state, and older runs stay readable by their tags."""
    target = str(tmp_path / "lake")
    settings = pg.settings(app_db)
    with pg.connect(app_db, autocommit=True) as conn:
        users = h.add_users(conn, 60, prefix="compact")
        run_export(target, settings, settle=NO_SETTLE)
        conn.execute("update app.users set bio = 'one' where user_id = any(%s)", (users[:20],))
        second = run_export(target, settings, settle=NO_SETTLE)
        house = iceberg.open_house(lake.open_lake(target))
        table = house.catalog.load_table("animedb.users")
        assert iceberg.live_files(table).deletes  # 20 of 80 stored rows deleted: not yet
        conn.execute("update app.users set bio = 'two' where user_id = any(%s)", (users[:30],))
        third = run_export(target, settings, settle=NO_SETTLE)
        row = conn.execute("select count(*) from app.users").fetchone()
        assert row is not None
        count = int(row[0])
    table.refresh()
    files = iceberg.live_files(table)
    assert not files.deletes and files.data
    assert all(f"/data/compact-run-{third.run_id:012d}/" in f.file_path for f in files.data)
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    summary = snapshot.summary.additional_properties
    assert summary[iceberg.COMPACTED_BY] == str(third.run_id)
    assert int(summary["total-records"]) == count
    assert summary.get("total-position-deletes", "0") == "0"
    checks = h.assert_exact(target, pg, app_db)
    assert {c.table: c for c in checks}["app.users"].lake_rows == count
    con = duck.connect()
    duck.load_iceberg(con)
    metadata = table.metadata_location.removeprefix("file://")
    now = con.execute(
        f"select count(*), count(*) filter (where bio = 'two') from iceberg_scan('{metadata}')"
    ).fetchone()
    assert now == (count, 30)
    before = table.metadata.refs[iceberg.tag(second.run_id)].snapshot_id
    then = con.execute(
        f"select count(*) filter (where bio = 'one') from iceberg_scan('{metadata}',"
        f" snapshot_from_id = {before})"
    ).fetchone()
    assert then == (20,)
