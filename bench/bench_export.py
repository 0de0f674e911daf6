"""`make bench-export`: the exporter against other ways of moving the same PostgreSQL table to
Parquet, side by side in one run, each in its own process (time and peak memory); then the time
of a 1k-row delta as the table grows 100x.

Runs on the project's database settings (the embedded server by default) in a scratch database
`animedb_bench`, which it builds with dbt (fixture seeds) and fills with generated tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from animedb import db
from animedb import dbt as dbt_runner

REPO = Path(__file__).resolve().parent.parent
DATABASE = "animedb_bench"
TABLE = "bench.events"


def _settings(base: db.Settings) -> db.Settings:
    return db.Settings(base.host, base.port, base.user, base.password, DATABASE, base.embedded)


def prepare(base: db.Settings, rows: int, delta_sizes: list[int]) -> None:
    """A fresh database built by dbt, plus bench.events (rows) and bench.events_<n> tables."""
    with psycopg.connect(base.conninfo(dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    settings = _settings(base)
    project = Path(tempfile.mkdtemp(prefix="animedb-bench-dbt-"))
    sys.path.insert(0, str(REPO))
    from tests.pg_harness import make_dbt_project

    make_dbt_project(project)
    result = dbt_runner.run(["build", "--quiet"], settings, project_dir=project, capture=True)
    if result.returncode != 0:
        raise SystemExit(f"dbt failed:\n{result.stdout[-3000:]}")
    shutil.rmtree(project, ignore_errors=True)
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("create schema bench")
        for name, count in [("events", rows)] + [(f"events_{n}", n) for n in delta_sizes]:
            started = time.monotonic()
            conn.execute(
                sql.SQL(
                    "create table bench.{} as select g::bigint as event_id,"
                    " (timestamptz '2026-01-01' + g * interval '1 millisecond') as modified_date,"
                    " (g % 100000)::bigint as user_id, md5(g::text) as payload,"
                    " ((g % 1000)::numeric / 7)::numeric(12, 2) as amount, (g % 7 = 0) as flag"
                    " from generate_series(1, {}) g"
                ).format(sql.Identifier(name), sql.Literal(count))
            )
            conn.execute(
                sql.SQL("alter table bench.{} add primary key (event_id)").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(
                sql.SQL("create index on bench.{} (modified_date)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("vacuum analyze bench.{}").format(sql.Identifier(name)))
            print(
                f"  bench.{name}: {count:,} rows in {time.monotonic() - started:.1f} s", flush=True
            )
        conn.execute("grant usage on schema bench to animedb_exporter")
        conn.execute("grant select on all tables in schema bench to animedb_exporter")


def register_only(settings: db.Settings, table: str) -> None:
    """Make `table` the one exported table, with a fresh watermark and no runs."""
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("delete from etl.watermarks")
        conn.execute("delete from etl.exported_tables")
        conn.execute("delete from etl.export_runs")
        conn.execute(
            "insert into etl.exported_tables (table_name, load_type, key_column, cursor_column)"
            " values (%s, 'modified', 'event_id', 'modified_date')",
            (table,),
        )


# --- the cases, each run in a child process --------------------------------------------------


def case_protocol(settings: db.Settings, out: Path, table: str) -> int:
    register_only(settings, table)
    return run_export_here(settings, out)


def case_duckdb(settings: db.Settings, out: Path, table: str) -> int:
    """DuckDB as anyone would use it: load the extension, attach, COPY; its default settings."""
    import duckdb
    import duckdb_extension_postgres_scanner  # type: ignore[import-untyped]

    from exporter.duck import extension_file

    con = duckdb.connect()
    con.execute(f"LOAD '{extension_file(duckdb_extension_postgres_scanner, 'postgres_scanner')}'")
    con.execute(f"ATTACH '{settings.conninfo()}' AS pg (TYPE postgres, READ_ONLY)")
    schema, name = table.split(".")
    row = con.execute(
        f'COPY (SELECT * FROM pg."{schema}"."{name}") TO \'{out / "x.parquet"}\''
        " (FORMAT parquet, COMPRESSION zstd)"
    ).fetchone()
    return int(row[0]) if row else 0


def case_copy_drain(settings: db.Settings, out: Path, table: str) -> int:
    size = 0
    query = f"copy (select * from {table}) to stdout (format binary)"
    with (
        psycopg.connect(settings.conninfo()) as conn,
        conn.cursor() as cur,
        cur.copy(query) as copy,
    ):
        for block in copy:
            size += len(block)
    return size


def case_dlt(settings: db.Settings, out: Path, table: str) -> int:
    import dlt
    from dlt.sources.sql_database import sql_table

    schema, name = table.split(".")
    url = f"postgresql+psycopg2://{settings.user}@/{settings.dbname}?host={settings.host}&port={settings.port}"
    source = sql_table(credentials=url, schema=schema, table=name, backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(str(out / "dlt")),
        dataset_name="bench",
        pipelines_dir=str(out / "pipelines"),
    )
    info = pipeline.run(source, loader_file_format="parquet")
    return len(info.loads_ids)


def case_pandas(settings: db.Settings, out: Path, table: str) -> int:
    import pandas as pd
    import sqlalchemy

    url = f"postgresql+psycopg2://{settings.user}@/{settings.dbname}?host={settings.host}&port={settings.port}"
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(f"select * from {table}", conn)
    frame.to_parquet(out / "x.parquet")
    return len(frame)


def case_delta(settings: db.Settings, out: Path, table: str) -> int:
    """Three rounds of: move 1k rows of a table exported before (by the protocol case), then
    export the delta; the median export time is reported (the first read after a bulk load
    also pays for setting hint bits, which has nothing to do with the table's size)."""
    times, rows = [], 0
    for round_ in range(3):
        with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
            row = conn.execute(f"select count(*) from {table}").fetchone()
            step = max(int(row[0]) // 1000, 1) if row else 1
            conn.execute(
                f"update {table} set modified_date = now(), payload = 'moved {round_}'"
                f" where event_id % {step} = {round_}"
            )
        started = time.monotonic()
        rows = run_export_here(settings, out)
        times.append(time.monotonic() - started)
    print(json.dumps({"export_seconds": statistics.median(times)}), flush=True)
    return rows


def run_export_here(settings: db.Settings, out: Path) -> int:
    from exporter import run_export

    return run_export(str(out), settings, settle=dt.timedelta(0)).rows


CASES = {
    "protocol": case_protocol,
    "duckdb": case_duckdb,
    "copy_drain": case_copy_drain,
    "dlt": case_dlt,
    "pandas": case_pandas,
    "delta": case_delta,
}


def child(case: str, table: str) -> None:
    settings = _settings(db.resolve())
    out = Path(tempfile.mkdtemp(prefix=f"animedb-bench-{case}-"))
    try:
        started = time.monotonic()
        rows = CASES[case](settings, out, table)
        seconds = time.monotonic() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"case": case, "seconds": seconds, "rows": rows, "peak_mb": peak_mb}), flush=True
    )


def measure(case: str, table: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_export", "--child", case, "--table", table],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--skip-prepare", action="store_true", help="reuse animedb_bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--table", default=TABLE, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.table)
        return

    base = db.resolve()
    print(f"database: {base.describe()} / {DATABASE}")
    if not args.skip_prepare:
        print("preparing tables ...", flush=True)
        prepare(base, args.rows, [args.small, args.large])

    results = {
        case: measure(case, TABLE) for case in ("protocol", "duckdb", "copy_drain", "dlt", "pandas")
    }
    ours = results["protocol"]["seconds"]
    print(f"\nfull export of {args.rows:,} rows ({TABLE}), each case in its own process")
    print(f"{'case':<12} {'seconds':>8} {'rows/s':>12} {'peak MB':>8}   ours vs it")
    for case, r in results.items():
        rate = args.rows / r["seconds"]
        ratio = r["seconds"] / ours
        note = "(cost of the protocol over bare DuckDB)" if case == "duckdb" else ""
        if case == "duckdb":
            print(
                f"{case:<12} {r['seconds']:8.2f} {rate:12,.0f} {r['peak_mb']:8.0f}   "
                f"protocol costs {ours / r['seconds'] - 1:+.1%} {note}"
            )
        else:
            print(
                f"{case:<12} {r['seconds']:8.2f} {rate:12,.0f} {r['peak_mb']:8.0f}   {ratio:.2f}x"
            )

    fulls, deltas = {}, {}
    for n in (args.small, args.large):
        fulls[n] = measure("protocol", f"bench.events_{n}")
        deltas[n] = measure("delta", f"bench.events_{n}")
    small, large = deltas[args.small], deltas[args.large]
    for r in (small, large):
        r["seconds"] = r["export_seconds"]  # the deltas' exports alone, not the updates
    print(f"\ntable grown {args.large // args.small}x: full export, then a 1k-row delta")
    heads = ("full s", "full MB", "delta s", "delta MB")
    print(f"{'table rows':>12} " + " ".join(f"{h:>8}" for h in heads) + f" {'delta rows':>10}")
    for n in (args.small, args.large):
        f, d = fulls[n], deltas[n]
        print(
            f"{n:>12,} {f['seconds']:8.2f} {f['peak_mb']:8.0f} {d['seconds']:8.3f}"
            f" {d['peak_mb']:8.0f} {d['rows']:>10,}"
        )
    print(
        f"delta time large/small: {large['seconds'] / small['seconds']:.2f}x;"
        f" delta peak memory large/small: {large['peak_mb'] / small['peak_mb']:.2f}x;"
        f" full-export peak memory large/small:"
        f" {fulls[args.large]['peak_mb'] / fulls[args.small]['peak_mb']:.2f}x"
    )


if __name__ == "__main__":
    main()
