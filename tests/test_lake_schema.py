"""Schema evolution: the lake tables follow the source's columns (what changes values too is in
test_lake_source_changes.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from exporter import layout, run_export
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    field_types,
    open_tables,
    own_table,
    reader,
    scan,
    verified,
)
from tests.pg_harness import Server


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
    # a type change that rewrites the table (integer to bigint) is read again in full: the
    # change log holds the first version twice
    for location in (pair.current.metadata_location, pair.changes.metadata_location):
        rows = scan(con, location, "probe_id, n, amount, code")
        assert sorted(set(rows)) == [
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
    # the current state is rewritten with the column null, as the source no longer has it; the
    # change log keeps the values it had
    rows = scan(con, pair.current.metadata_location, "probe_id, kept, gone")
    assert sorted(rows) == [(1, "a", None), (2, "b", None), (3, "c", None)]
    rows = scan(con, pair.changes.metadata_location, "probe_id, gone", "gone is not null")
    assert rows == [(1, "old value")]
    for table in (pair.current, pair.changes):
        assert "gone" in field_types(table), table.name()
        old = table.metadata.refs[layout.tag(first.run_id)].snapshot_id
        rows = scan(con, table.metadata_location, "probe_id, gone", snapshot_id=old)
        assert sorted(rows) == [(1, "old value"), (2, None)]
