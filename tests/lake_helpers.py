"""Reading the lake as other engines do (DuckDB's own Iceberg reader, pyiceberg's metadata), and
the activity the lake tests make in PostgreSQL: what every test of the lake shares."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from pyiceberg.table import Table

from exporter import catalog, duck, layout, snapshots
from exporter import verify as verify_module
from exporter.storage import open_storage
from tests import exporter_helpers as h
from tests.pg_harness import Server


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
    con = duck.connect(s3=open_storage(target).s3_access() if target else None)
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


def open_lake(target: str, namespace: str | None = None) -> catalog.Lake:
    return catalog.open_lake(open_storage(target), namespace=namespace)


def open_tables(target: str, namespace: str | None = None) -> dict[str, catalog.Pair]:
    """pyiceberg's view of the lake: each source table's two Iceberg tables."""
    return {p.source: p for p in catalog.pairs(open_lake(target, namespace))}


def every_table(pairs: dict[str, catalog.Pair]) -> list[Table]:
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
    first (maintenance's rewrites name a job instead: they bring no rows)."""
    found = []
    for snapshot in table.snapshots():
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        if layout.RUN_ID in summary:
            found.append(int(summary[layout.RUN_ID]))
        else:
            assert layout.MAINTENANCE_ID in summary, (table.name(), snapshot.snapshot_id)
    return found


def tags(table: Table) -> list[int]:
    """The runs tagged in a table."""
    return snapshots.tagged_runs(table)


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
