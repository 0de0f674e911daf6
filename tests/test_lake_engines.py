"""The lake as four engines read it: DuckDB's iceberg_scan, pyiceberg, polars' native reader and
daft read every table of the namespace, the current states exactly as PostgreSQL has them, the
change logs and an older run's snapshot exactly as DuckDB (the judge) reads them; after a first
load, updates and deletes, a maintenance pass that compacted, and a column added to a source.

How polars chooses its reader (polars 2.2, polars/io/iceberg/_dataset.py,
IcebergScanResolver._to_dataset_scan_impl): with the polars_iceberg plugin installed it plans
and reads natively through the plugin (POLARS_ICEBERG_PLANNER chooses; these tests pin it to
pyiceberg, the path described here). Otherwise pyiceberg plans the files and polars reads them
with its own Parquet reader unless it finds a reason not to: a data file that is not Parquet, a
delete file that is not a position delete, a Puffin footer it cannot read, two deletion vectors
of one data file, or a Parquet position-delete file it cannot tie to exactly one data file. It
ties one by the manifest entry's `referenced_data_file` (an Iceberg v3 field: pyiceberg's
DataFile of a v2 manifest, as ours are, has none), or else by the delete file's lower and upper
bounds of the `file_path` column (field id 2147483546) being equal (`_referenced_data_file`); a
delete file so tied to another data file than the one pyiceberg paired it with is passed over.
Given a reason, the scan falls back to pyiceberg's reader and says so only in the verbose log
(POLARS_VERBOSE=1: "fallback to python[pyiceberg] scan: <reason>"), unless
`reader_override="native"` (or POLARS_ICEBERG_READER_OVERRIDE=native) was given: then the
collect raises ComputeError "iceberg reader_override='native' failed: <reason>". The tests pass
reader_override="native", and check that the verbose log names the native scan_parquet().

daft 0.7 plans with pyiceberg too and hands each data file, with the paths of the position-delete
files pyiceberg paired it with, to its own Parquet reader, which keeps the positions that name
that data file: a delete file of several data files is fine. It reads a data file through a map
of the scan schema's field ids; a data file holding a column the schema lacks, before columns it
has, fails with "failed to fill whole buffer" (pyiceberg and DuckDB skip such a column).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import daft
import polars as pl
import pytest
from pyiceberg.table import Table

from exporter import layout, live, run_export, snapshots
from exporter.catalog import Pair
from exporter.maintenance import MIN_INPUT_FILES, MaintenanceSettings, maintain_target
from tests import exporter_helpers as h
from tests.exporter_helpers import NO_SETTLE
from tests.lake_helpers import (
    add_early_users,
    as_text,
    change_everything,
    local,
    open_lake,
    open_tables,
    pg_columns,
    quoted,
    reader,
)
from tests.pg_harness import Server

ENGINES = ("duckdb", "pyiceberg", "polars", "daft")
DATABASE = "animedb_lake_engines"

Row = tuple[str | None, ...]


class Frame(NamedTuple):
    """What an engine read (or PostgreSQL holds): its column names, and its rows (`texts`)."""

    columns: list[str]
    rows: list[Row]


@dataclass(frozen=True)
class Lake:
    target: str
    pairs: dict[str, Pair]  # by source table
    then: int  # the older run every engine reads the lake as of
    now_rows: dict[str, Frame]  # every exported table in PostgreSQL after the last run
    then_rows: dict[str, Frame]  # and after run `then`


def postgres(conn: h.Conn) -> dict[str, Frame]:
    """Every exported table as PostgreSQL has it now: its columns and rows."""
    found = {}
    for (name,) in conn.execute("select table_name from etl.exported_tables").fetchall():
        columns = pg_columns(conn, str(name))
        rows = conn.execute(f"select {quoted(columns)} from {name}").fetchall()
        found[str(name)] = Frame(columns, texts(rows))
    return found


@pytest.fixture(scope="module")
def lake(pg: Server, built_template: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake of several runs: a first load; inserts, updates and deletes; MIN_INPUT_FILES
    small runs; `maintain`, which compacts the current states and the change logs those runs
    left small files in; then a column added to app.users, and more updates and deletes on top
    of the compacted files; then a rename and a replaced type. The runs do no maintenance of
    their own: the pass is `maintain`."""
    pg.create_database(DATABASE, template=built_template)
    target = str(tmp_path_factory.mktemp("engines") / "lake")
    settings = pg.settings(DATABASE)
    runs: list[int] = []

    def export() -> None:
        summary = run_export(
            target,
            settings,
            settle=NO_SETTLE,
            maintenance_settings=MaintenanceSettings(enabled=False),
        )
        runs.append(summary.run_id)

    with pg.connect(DATABASE, autocommit=True) as conn:
        early = add_early_users(conn)
        export()
        change_everything(conn)
        export()
        then, then_rows = runs[-1], postgres(conn)
        for i in range(MIN_INPUT_FILES):
            conn.execute("update app.users set bio = %s where user_id = %s", (f"v{i}", early[i]))
            conn.execute(
                "update app.ratings set score = %s where user_id = %s", (i % 10 + 1, early[i % 6])
            )
            h.add_users(conn, 1, prefix=f"small{i}")
            export()
        result = maintain_target(target, settings)
        assert result.rewritten_files > 0, result
        conn.execute("alter table app.users add column note text")
        conn.execute(
            "update app.users set note = 'note of ' || username where user_id = any(%s)",
            (early[:4],),
        )
        conn.execute("delete from app.ratings where user_id = %s", (early[1],))
        conn.execute("delete from app.wishlist where user_id = %s", (early[1],))
        export()
        # a rename (the same field, history kept) and a type Iceberg cannot promote (a new
        # field under the name, the old one kept as score_before_run_<id>; anime resynced)
        conn.execute("alter table app.users rename column bio to about")
        conn.execute("alter table app.anime alter column score type numeric(5,1)")
        conn.execute("update app.users set about = 'renamed' where user_id = %s", (early[5],))
        export()
        now_rows = postgres(conn)

    pairs = open_tables(target)
    assert set(pairs) == set(now_rows)
    # what the engines are asked to read: compacted files of both kinds of table, and a current
    # state whose newest deletes lie on top of compacted files
    for source in ("app.users", "app.ratings"):
        for table in pairs[source].tables:
            assert any(
                layout.MAINTENANCE_ID in s.summary.additional_properties
                for s in table.snapshots()
                if s.summary is not None
            ), table.name()
    users = live.live_files(pairs["app.users"].current)
    assert users.deletes and any("/rewrite-" in f.file_path for f in users.data)
    return Lake(target, pairs, then, now_rows, then_rows)


class Readers:
    """Each engine's read of a table (as of a snapshot, or its current one)."""

    def __init__(self, drain: Callable[[], str]) -> None:
        self.con = reader()
        self.drain = drain  # what the process wrote to stderr since the last call

    def read(self, engine: str, table: Table, snapshot_id: int | None = None) -> Frame:
        columns: list[str]
        rows: list[tuple[object, ...]]
        if engine == "duckdb":
            path = local(table.metadata_location).replace("'", "''")
            version = f", snapshot_from_id = {snapshot_id}" if snapshot_id is not None else ""
            cursor = self.con.execute(f"select * from iceberg_scan('{path}'{version})")
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        elif engine == "pyiceberg":
            arrow = table.scan(snapshot_id=snapshot_id).to_arrow()
            columns = arrow.column_names
            rows = [tuple(r.values()) for r in arrow.to_pylist()]
        elif engine == "polars":
            self.drain()
            frame = pl.scan_iceberg(
                table, snapshot_id=snapshot_id, reader_override="native"
            ).collect()
            log = [line for line in self.drain().splitlines() if "IcebergScanResolver" in line]
            assert any("native scan_parquet()" in line for line in log), log
            assert not any("fallback" in line for line in log), log
            columns, rows = frame.columns, frame.rows()
        elif engine == "daft":
            df = daft.read_iceberg(table, snapshot_id=snapshot_id)
            data = df.to_pydict()
            columns = df.column_names
            rows = list(zip(*(data[c] for c in columns), strict=True))
        else:
            raise ValueError(engine)
        return Frame(columns, texts(rows))


# the Python types a value may come as, from psycopg and from every engine alike: a number
# read as a float, a timestamptz without its time zone (as_text refuses it) or a decimal with
# another scale does not compare equal
KINDS = (
    (bool, "bool"),
    (int, "int"),
    (Decimal, "decimal"),
    (dt.datetime, "timestamptz"),
    (dt.date, "date"),
    (str, "str"),
)


def typed_text(value: object) -> str | None:
    """A value as its kind and its text (lake_helpers.as_text): `decimal:8.50`."""
    if value is None:
        return None
    for kind, name in KINDS:
        if isinstance(value, kind):
            return f"{name}:{as_text(value)}"
    raise AssertionError(f"a value of type {type(value).__name__}: {value!r}")


def texts(rows: list[tuple[object, ...]]) -> list[Row]:
    """The rows with typed_text of every value, sorted."""
    return sorted((tuple(typed_text(v) for v in row) for row in rows), key=repr)


def project(frame: Frame, columns: list[str]) -> list[Row]:
    where = [frame.columns.index(c) for c in columns]
    return sorted((tuple(row[i] for i in where) for row in frame.rows), key=repr)


def difference(found: list[Row], expected: list[Row]) -> str | None:
    """None when the rows are the same, else a short account of how they differ."""
    if found == expected:
        return None
    missing = list((Counter(expected) - Counter(found)).elements())
    unexpected = list((Counter(found) - Counter(expected)).elements())
    return (
        f"{len(found)} rows, expected {len(expected)}; missing {len(missing)}: {missing[:2]};"
        f" unexpected {len(unexpected)}: {unexpected[:2]}"
    )


def schema_columns(table: Table, snapshot_id: int | None = None) -> list[str]:
    """The column names of the table's schema (as of a snapshot)."""
    if snapshot_id is None:
        schema = table.schema()
    else:
        snapshot = table.snapshot_by_id(snapshot_id)
        assert snapshot is not None and snapshot.schema_id is not None
        schema = table.schemas()[snapshot.schema_id]
    return [f.name for f in schema.fields]


def each_table(
    check: Callable[[str, Table], str | None], tables: list[tuple[str, Table]]
) -> dict[str, str]:
    """check(name, table) for every table, whatever the others do; the problems by table."""
    problems = {}
    for name, table in tables:
        try:
            problem = check(name, table)
        except Exception as exc:  # an engine that cannot read a table: say which, go on
            problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if problem:
            problems[name] = problem
    return problems


def report(engine: str, what: str, problems: dict[str, str]) -> str:
    lines = [f"{engine} misreads {len(problems)} {what}:"]
    lines += [f"  {name}: {problem}" for name, problem in sorted(problems.items())]
    return "\n".join(lines)


@pytest.fixture
def readers(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Readers]:
    monkeypatch.setenv("POLARS_VERBOSE", "1")  # the log says which reader polars chose
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # see the module's text
    monkeypatch.delenv("POLARS_ICEBERG_READER_OVERRIDE", raising=False)
    # daft warns of a full scan of every change log (partitioned by day, read whole here)
    caplog.set_level(logging.ERROR, logger="daft.io.iceberg.iceberg_scan")

    def drain() -> str:
        return capfd.readouterr().err

    yield Readers(drain)
    drain()  # polars' own verbose lines are no part of a failure's report


def test_the_tables_read_are_all_of_the_namespace(lake: Lake) -> None:
    found = open_lake(lake.target).table_names()
    assert found == {t.name()[-1] for p in lake.pairs.values() for t in p.tables}
    assert len(found) == 2 * len(lake.now_rows)


def test_duckdb_the_judge_agrees_with_postgres(lake: Lake, readers: Readers) -> None:
    """The judge judged: DuckDB's current states are PostgreSQL's rows, and so is the newest
    version of each key in its change logs, unless that version is a delete."""

    def check(source: str, current: Table) -> str | None:
        expected = lake.now_rows[source]
        found = readers.read("duckdb", current)
        problem = difference(project(found, expected.columns), expected.rows)
        if problem:
            return f"current state: {problem}"
        key = current.properties[layout.KEY_COLUMN]
        path = local(lake.pairs[source].changes.metadata_location).replace("'", "''")
        newest = readers.con.execute(
            f"select {quoted(expected.columns)}, _deleted, _run_id, _exported_at"
            f" from iceberg_scan('{path}')"
            f' qualify row_number() over (partition by "{key}" order by _run_id desc) = 1'
        ).fetchall()
        assert all(r[-1] is not None and r[-2] is not None for r in newest)
        live_rows = texts([r[:-3] for r in newest if not r[-3]])
        problem = difference(live_rows, expected.rows)
        return f"change log's newest versions: {problem}" if problem else None

    problems = each_table(check, [(s, p.current) for s, p in sorted(lake.pairs.items())])
    assert not problems, report("duckdb", "tables", problems)


@pytest.mark.parametrize("engine", ENGINES)
def test_current_states_are_postgres_rows(lake: Lake, readers: Readers, engine: str) -> None:
    """Every current state: the source's columns exactly as PostgreSQL has them, and every
    column (the lake's own _run_id and _exported_at too) as DuckDB reads it."""

    def check(source: str, table: Table) -> str | None:
        found = readers.read(engine, table)
        if found.columns != schema_columns(table):
            return f"columns {found.columns}, expected {schema_columns(table)}"
        expected = lake.now_rows[source]
        problem = difference(project(found, expected.columns), expected.rows)
        if problem:
            return f"against PostgreSQL: {problem}"
        if engine != "duckdb":
            problem = difference(found.rows, readers.read("duckdb", table).rows)
        return f"against DuckDB: {problem}" if problem else None

    problems = each_table(check, [(s, p.current) for s, p in sorted(lake.pairs.items())])
    assert not problems, report(engine, "current-state tables", problems)


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "duckdb"])
def test_change_logs_are_what_duckdb_reads(lake: Lake, readers: Readers, engine: str) -> None:
    """Every change log, every row and column (_run_id, _deleted, _exported_at too), as
    DuckDB reads it."""

    def check(_: str, table: Table) -> str | None:
        found = readers.read(engine, table)
        judge = readers.read("duckdb", table)
        if found.columns != judge.columns or found.columns != schema_columns(table):
            return f"columns {found.columns}, DuckDB's {judge.columns}"
        problem = difference(found.rows, judge.rows)
        return f"against DuckDB: {problem}" if problem else None

    problems = each_table(check, [(s, p.changes) for s, p in sorted(lake.pairs.items())])
    assert not problems, report(engine, "change logs", problems)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_table_as_of_an_older_run(lake: Lake, readers: Readers, engine: str) -> None:
    """Time travel to the snapshot of an older run's tag (before the compaction and the new
    column) in every table: the current states as PostgreSQL had them then, with that run's
    schema, and every table exactly as DuckDB reads that snapshot."""

    def check(name: str, table: Table) -> str | None:
        snapshot = snapshots.as_of_run(table, lake.then)
        assert snapshot is not None, (name, lake.then)
        found = readers.read(engine, table, snapshot.snapshot_id)
        expected_columns = schema_columns(table, snapshot.snapshot_id)
        if found.columns != expected_columns:
            return f"columns {found.columns}, expected {expected_columns}"
        source = table.properties[layout.SOURCE_TABLE]
        if table is lake.pairs[source].current:
            expected = lake.then_rows[source]
            problem = difference(project(found, expected.columns), expected.rows)
            if problem:
                return f"against PostgreSQL as of run {lake.then}: {problem}"
        if engine != "duckdb":
            judge = readers.read("duckdb", table, snapshot.snapshot_id)
            problem = difference(found.rows, judge.rows)
            if problem:
                return f"against DuckDB: {problem}"
        return None

    tables = [(".".join(t.name()), t) for _, p in sorted(lake.pairs.items()) for t in p.tables]
    problems = each_table(check, tables)
    assert not problems, report(engine, f"tables as of run {lake.then}", problems)
