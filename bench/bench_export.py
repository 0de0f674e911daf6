"""`make bench-export`: the exporter's Iceberg runs against the other ways of doing the same work,
side by side in one run, each case in its own process (wall time and peak RSS):

1. a full export of a 2M-row table against bare DuckDB `COPY` of it to Parquet;
2. a 1k-row delta (500 updates spread over the whole key range, 500 inserts) into tables of 100k
   and 10M rows: the incremental run, split into its change-log append and its current-state
   merge, and how flat both stay as the table grows 100x;
3. the same delta merged by a naive full rewrite of the current table and by dlt's Iceberg
   merge (`table_format="iceberg"`, `write_disposition="merge"`) into the same table.
Each case runs --rounds times (default 5; each delta round a new delta on the state the last
round left) and the tables give medians. The exporter's steps are timed through its own
observer (Progress.step, bench/observe.py), as the CLI sees them. Every result is checked
against PostgreSQL with DuckDB's own Iceberg reader; a wrong one is printed loudly and fails
the benchmark. The tables are printed in Markdown and written, with every number behind them,
to bench/out/.

It runs on the project's database settings (the embedded server by default), in a scratch
database `animedb_bench` that it builds with dbt (fixture seeds) and fills with generated tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from animedb import REPO, db
from animedb import dbt as dbt_runner
from bench.observe import CHANGE_LOG_STEPS, CURRENT_STEPS, Phases, peak_mb, rss_kb

OUT = REPO / "bench" / "out"
DATABASE = "animedb_bench"
FULL_TABLE = "bench.events"
KEY = "event_id"
UPDATES, INSERTS = 500, 500
CASE_TIMEOUT = 900  # seconds; one stuck case must not hold the whole benchmark
# the aims of issue 9, each with the way it is judged
AIM_FULL = 1.15  # exporter full export / DuckDB COPY, at most
AIM_FLAT = 1.5  # 10M / 100k, time and memory of the delta run, at most
AIM_REWRITE = 0.2  # exporter merge / full rewrite, at most
AIM_DLT = 3.0  # dlt merge / exporter merge, at least
AIM_MERGE_MB = 300  # exporter's delta run at the large size, peak RSS, at most


def _settings(base: db.Settings) -> db.Settings:
    return db.Settings(base.host, base.port, base.user, base.password, DATABASE, base.embedded)


# --- the database ----------------------------------------------------------------------------


def _size_table(rows: int) -> str:
    return f"bench.events_{rows}"


def _generate(conn: psycopg.Connection[Any], table: str, rows: int) -> None:
    """`rows` rows of a table that looks like an application table: bigint key, timestamptz
    cursor (indexed), a foreign-key-like column, text, numeric and boolean."""
    schema, name = table.split(".")
    ident = sql.Identifier(schema, name)
    started = time.monotonic()
    conn.execute(sql.SQL("drop table if exists {}").format(ident))
    conn.execute(
        sql.SQL(
            "create table {} as select g::bigint as event_id,"
            " (timestamptz '2026-01-01' + g * interval '1 millisecond') as modified_date,"
            " (g % 100000)::bigint as user_id, md5(g::text) as payload,"
            " ((g % 1000)::numeric / 7)::numeric(12, 2) as amount, (g % 7 = 0) as flag"
            " from generate_series(1, {}) g"
        ).format(ident, sql.Literal(rows))
    )
    conn.execute(sql.SQL("alter table {} add primary key (event_id)").format(ident))
    conn.execute(sql.SQL("create index on {} (modified_date)").format(ident))
    conn.execute(sql.SQL("vacuum analyze {}").format(ident))
    print(f"  {table}: {rows:,} rows in {time.monotonic() - started:.1f} s", flush=True)


def prepare(base: db.Settings, full_rows: int, sizes: list[int]) -> None:
    """A fresh database built by dbt, plus the generated tables."""
    with psycopg.connect(base.conninfo(dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    settings = _settings(base)
    project = Path(tempfile.mkdtemp(prefix="animedb-bench-dbt-"))
    from tests.pg_harness import make_dbt_project  # run as `python -m bench.bench_export`

    make_dbt_project(project)
    started = time.monotonic()
    result = dbt_runner.run(["build", "--quiet"], settings, project_dir=project, capture=True)
    if result.returncode != 0:
        raise SystemExit(f"dbt failed:\n{result.stdout[-3000:]}")
    shutil.rmtree(project, ignore_errors=True)
    print(f"  dbt build: {time.monotonic() - started:.1f} s", flush=True)
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("create schema bench")
        for table, rows in [(FULL_TABLE, full_rows)] + [(_size_table(n), n) for n in sizes]:
            _generate(conn, table, rows)
        conn.execute("grant usage on schema bench to animedb_exporter")
        conn.execute("grant select on all tables in schema bench to animedb_exporter")


def reset(settings: db.Settings, table: str, rows: int) -> None:
    """Undo the deltas of an earlier run (so that --skip-prepare starts from the generated
    table); a table that is missing or of another size is generated again."""
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        found = conn.execute("select to_regclass(%s)", (table,)).fetchone()
        if found and found[0] is not None:
            conn.execute(f"delete from {table} where event_id > %s", (rows,))
            conn.execute(
                f"update {table} set payload = md5(event_id::text),"
                " modified_date = timestamptz '2026-01-01' + event_id * interval '1 millisecond'"
                " where modified_date >= timestamptz '2026-01-01' + %s * interval '1 millisecond'",
                (rows + 1,),
            )
            row = conn.execute(f"select count(*) from {table}").fetchone()
            if row and row[0] == rows:
                return
        _generate(conn, table, rows)
        conn.execute(f"grant select on {table} to animedb_exporter")


def register_only(settings: db.Settings, table: str) -> None:
    """Make `table` the one exported table, with no watermark (a full load) and no runs."""
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("delete from etl.watermarks")
        conn.execute("delete from etl.exported_tables")
        conn.execute("delete from etl.export_runs")
        conn.execute(
            "insert into etl.exported_tables (table_name, load_type, key_column, cursor_column)"
            " values (%s, 'modified', 'event_id', 'modified_date')",
            (table,),
        )


def update_keys(rows: int, round_: int) -> list[int]:
    """UPDATES keys spread evenly over 1..rows (every data file of the table gets some),
    different ones in each round."""
    return [int((i + 0.5) * rows / UPDATES) + 1 + round_ for i in range(UPDATES)]


def apply_delta(settings: db.Settings, table: str, rows: int, round_: int) -> str:
    """The 1k-row delta of a round, in one transaction: UPDATES spread updates (new payload,
    modified_date bumped) and INSERTS new keys. Its start time, which every delta row carries."""
    with psycopg.connect(settings.conninfo()) as conn:
        row = conn.execute("select now()").fetchone()
        assert row is not None
        conn.execute(
            f"update {table} set modified_date = now(), payload = 'updated ' || event_id"
            " where event_id = any(%s)",
            (update_keys(rows, round_),),
        )
        conn.execute(
            f"insert into {table} select g, now(), g %% 100000, 'inserted ' || g,"
            " ((g %% 1000)::numeric / 7)::numeric(12, 2), g %% 7 = 0"
            " from generate_series(%s::bigint, %s::bigint) g",
            (rows + round_ * INSERTS + 1, rows + (round_ + 1) * INSERTS),
        )
    return str(row[0].isoformat())


# What a result is checked by, the same in PostgreSQL and in the lake.
FINGERPRINT = (
    "select count(*), count(distinct event_id), sum(event_id), sum(amount),"
    " sum(length(payload)), sum(user_id), max(modified_date) from {}"
)


def fingerprint_pg(settings: db.Settings, table: str) -> list[Any]:
    with psycopg.connect(settings.conninfo()) as conn:
        row = conn.execute(FINGERPRINT.format(table)).fetchone()
    assert row is not None
    return _normal(list(row))


def _normal(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, dt.datetime):
            out.append(v.astimezone(dt.UTC).isoformat())
        elif v is None:
            out.append(None)
        else:
            out.append(str(int(v)) if float(v) == int(v) else f"{float(v):.2f}")
    return out


# --- the lake, read by DuckDB's own Iceberg reader --------------------------------------------


def lake_tables(target: str) -> dict[str, Any]:
    """The exporter's two tables of the (single) exported table in a lake."""
    from exporter import catalog
    from exporter.storage import open_storage

    pairs = catalog.pairs(catalog.open_lake(open_storage(target)))
    if len(pairs) != 1:
        raise SystemExit(f"{target} holds {len(pairs)} exported tables, not 1")
    return {"current": pairs[0].current, "changes": pairs[0].changes}


def iceberg_reader() -> Any:
    from exporter import duck

    con = duck.connect()
    duck.load_iceberg(con)
    return con


def fingerprint_lake(con: Any, relation: str) -> list[Any]:
    row = con.execute(FINGERPRINT.format(relation)).fetchone()
    return _normal(list(row))


def check_table(
    settings: db.Settings, table: str, relation: str, delta_since: str | None
) -> list[str]:
    """What is wrong with a lake table that should equal `table` in PostgreSQL (empty: right):
    the same fingerprint (rows, distinct keys, sums, newest change) and, after a delta, the
    same values for every delta row."""
    problems = []
    con = iceberg_reader()
    lake_print = fingerprint_lake(con, relation)
    pg_print = fingerprint_pg(settings, table)
    if lake_print != pg_print:
        problems.append(f"fingerprint {lake_print} != PostgreSQL's {pg_print}")
    if delta_since is not None:
        with psycopg.connect(settings.conninfo()) as conn:
            want = {
                int(k): str(p)
                for k, p in conn.execute(
                    f"select event_id, payload from {table} where modified_date >= %s",
                    (delta_since,),
                ).fetchall()
            }
        keys = ",".join(map(str, sorted(want))) or "NULL"
        got = dict(
            con.execute(
                f"select event_id, payload from {relation} where event_id in ({keys})"
            ).fetchall()
        )
        wrong = [k for k in want if got.get(k) != want[k]]
        if len(want) != UPDATES + INSERTS:
            problems.append(f"PostgreSQL has {len(want)} delta rows, not {UPDATES + INSERTS}")
        if wrong:
            problems.append(
                f"{len(wrong)} of {len(want)} delta rows differ, e.g. key {wrong[0]}: "
                f"{got.get(wrong[0])!r} instead of {want[wrong[0]]!r}"
            )
    con.close()
    return problems


# the exporter's own columns in its current-state table, which the source does not have
RUN_COLUMNS = "_run_id, _exported_at"


def _scan(metadata_location: str) -> str:
    return "iceberg_scan('" + metadata_location.removeprefix("file://").replace("'", "''") + "')"


# --- measuring, in the child process ---------------------------------------------------------


def snapshot_summary(table: Any) -> dict[str, str]:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    keep = (
        "operation",
        "added-data-files",
        "added-records",
        "added-delete-files",
        "added-position-deletes",
        "total-data-files",
        "total-delete-files",
        "total-records",
        "total-position-deletes",
    )
    summary = {"operation": str(snapshot.summary.operation.value)}
    summary.update({k: v for k, v in snapshot.summary.additional_properties.items() if k in keep})
    return summary


# --- the cases, each in a child process ------------------------------------------------------


def case_export(settings: db.Settings, p: dict[str, Any]) -> dict[str, Any]:
    """One exporter run (a full load if `register`, else the next incremental run), its phases,
    and its result checked with DuckDB's Iceberg reader against PostgreSQL."""
    from exporter import run_export

    if p.get("register"):
        register_only(settings, p["table"])
        shutil.rmtree(p["target"], ignore_errors=True)
    phases = Phases()
    with phases:
        started = time.monotonic()
        summary = run_export(p["target"], settings, settle=dt.timedelta(0), progress=phases)
        seconds = time.monotonic() - started
    peak = peak_mb()
    tables = lake_tables(p["target"])
    result: dict[str, Any] = {
        "seconds": seconds,
        "peak_mb": peak,
        "rows": summary.rows,
        "run_id": summary.run_id,
        "summary": summary.to_json(),
        "phases": {n: round(s, 3) for n, s in sorted(phases.seconds.items())},
        "phase_peak_mb": {n: round(k / 1024, 1) for n, k in sorted(phases.peak_kb.items())},
        "snapshots": {role: snapshot_summary(t) for role, t in tables.items()},
        "metadata": {role: t.metadata_location for role, t in tables.items()},
    }
    for group, steps in (("changes", CHANGE_LOG_STEPS), ("current", CURRENT_STEPS)):
        result[f"{group}_seconds"], result[f"{group}_peak_mb"] = phases.group(steps)
    result["other_seconds"] = seconds - result["changes_seconds"] - result["current_seconds"]
    since = p.get("since")
    problems = check_table(settings, p["table"], _scan(tables["current"].metadata_location), since)
    expected = p["expect_rows"]
    if summary.rows != expected:
        problems.append(f"the run exported {summary.rows} row versions, not {expected}")
    con = iceberg_reader()
    row = con.execute(
        f"select count(*) from {_scan(tables['changes'].metadata_location)}"
        f" where _run_id = {summary.run_id}"
    ).fetchone()
    con.close()
    if not row or row[0] != expected:
        problems.append(f"the change log has {row} rows of run {summary.run_id}, not {expected}")
    result["problems"] = problems
    return result


def case_duckdb_copy(settings: db.Settings, p: dict[str, Any]) -> dict[str, Any]:
    """DuckDB as anyone would use it: the postgres extension with its defaults (a parallel
    ctid-range scan), one COPY of the whole table to a zstd Parquet file."""
    import duckdb
    import duckdb_extension_postgres_scanner  # type: ignore[import-untyped]

    from exporter.duck import extension_file

    out = Path(p["work"]) / "duckdb-copy"
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    con = duckdb.connect()
    con.execute(f"LOAD '{extension_file(duckdb_extension_postgres_scanner, 'postgres_scanner')}'")
    con.execute(f"ATTACH '{settings.conninfo()}' AS pg (TYPE postgres, READ_ONLY)")
    schema, name = p["table"].split(".")
    row = con.execute(
        f'COPY (SELECT * FROM pg."{schema}"."{name}") TO \'{out / "x.parquet"}\''
        " (FORMAT parquet, COMPRESSION zstd)"
    ).fetchone()
    seconds = time.monotonic() - started
    rows = int(row[0]) if row else 0
    shutil.rmtree(out, ignore_errors=True)
    problems = [] if rows == p["expect_rows"] else [f"{rows} rows, not {p['expect_rows']}"]
    return {"seconds": seconds, "peak_mb": peak_mb(), "rows": rows, "problems": problems}


def _delta_query(table: str, since: str) -> str:
    """The delta, read by PostgreSQL from the cursor's index (postgres_query: sent as it is)."""
    text = f"select * from {table} where modified_date >= '{since}'"
    return "postgres_query('pg', '" + text.replace("'", "''") + "')"


def case_full_rewrite(settings: db.Settings, p: dict[str, Any]) -> dict[str, Any]:
    """The naive merge: DuckDB reads the previous current state (DuckDB's iceberg_scan of the
    exporter's table as the full load left it) and the delta from PostgreSQL, and writes the
    whole new table as Parquet files (no Iceberg commit, so a lower bound of a real rewrite)."""
    from exporter import duck

    out = Path(p["work"]) / "rewrite"
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    con = duck.connect()
    duck.load_iceberg(con)
    duck.attach_postgres(con, settings, role=None)
    con.execute(f"create temp table delta as select * from {_delta_query(p['table'], p['since'])}")
    row = con.execute(
        f"COPY (select * exclude ({RUN_COLUMNS}) from {_scan(p['previous'])}"
        f" where {KEY} not in (select {KEY} from delta)"
        f" union all select * from delta) TO '{out}'"
        " (FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '128MB')"
    ).fetchone()
    seconds = time.monotonic() - started
    peak = peak_mb()
    rows = int(row[0]) if row else 0
    problems = check_table(settings, p["table"], f"read_parquet('{out}/*.parquet')", p["since"])
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "peak_mb": peak, "rows": rows, "problems": problems}


def _dlt_pipeline(p: dict[str, Any]) -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name=f"bench_{p['rows']}",
        destination=dlt.destinations.filesystem(p["dlt_dir"]),
        dataset_name="bench",
        pipelines_dir=str(Path(p["dlt_dir"]) / ".pipelines"),
    )


def _dlt_resource(data: Any, disposition: Any) -> Any:
    import dlt

    return dlt.resource(
        data,
        name="events",
        table_format="iceberg",
        write_disposition=disposition,
        primary_key=KEY,
    )


def _dlt_metadata(p: dict[str, Any]) -> str:
    found = sorted((Path(p["dlt_dir"]) / "bench" / "events" / "metadata").glob("*.metadata.json"))
    if not found:
        raise SystemExit(f"dlt wrote no Iceberg table under {p['dlt_dir']}")
    return str(max(found, key=lambda f: int(f.name.split("-")[0])))


def _dlt_steps(pipeline: Any) -> dict[str, float]:
    trace = pipeline.last_trace
    return {
        s.step: (s.finished_at - s.started_at).total_seconds()
        for s in trace.steps
        if s.finished_at is not None
    }


def case_dlt_append(settings: db.Settings, p: dict[str, Any]) -> dict[str, Any]:
    """dlt's Iceberg table of the same rows, loaded with `append` (its merge cannot make a
    large initial load in reasonable time): the exporter's full-load Parquet files, as Arrow
    batches of 1M rows, are the source. Setup for the merge, reported for reference."""
    shutil.rmtree(p["dlt_dir"], ignore_errors=True)
    con = iceberg_reader()
    reader = con.execute(
        f"select * exclude ({RUN_COLUMNS}) from {_scan(p['previous'])}"
    ).fetch_record_batch(1_000_000)

    def batches() -> Iterator[Any]:
        import pyarrow as pa

        for batch in reader:
            yield pa.Table.from_batches([batch])

    pipeline = _dlt_pipeline(p)
    started = time.monotonic()
    pipeline.run(_dlt_resource(batches(), "append"), loader_file_format="parquet")
    seconds = time.monotonic() - started
    peak = peak_mb()
    con.close()
    problems = check_table(settings, p["table"], _scan(_dlt_metadata(p)), None)
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "steps": _dlt_steps(pipeline),
        "problems": problems,
    }


def case_dlt_merge(settings: db.Settings, p: dict[str, Any]) -> dict[str, Any]:
    """dlt's Iceberg merge (upsert on event_id, the strategy dlt's filesystem destination has
    for Iceberg) of the delta, read from PostgreSQL by DuckDB as an Arrow table, into dlt's
    table of the same rows."""
    from exporter import duck

    started = time.monotonic()
    con = duck.connect()
    duck.attach_postgres(con, settings, role=None)
    delta = con.execute(f"select * from {_delta_query(p['table'], p['since'])}").to_arrow_table()
    con.close()
    pipeline = _dlt_pipeline(p)
    pipeline.run(
        _dlt_resource(delta, {"disposition": "merge", "strategy": "upsert"}),
        loader_file_format="parquet",
    )
    seconds = time.monotonic() - started
    peak = peak_mb()
    problems = check_table(settings, p["table"], _scan(_dlt_metadata(p)), p["since"])
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "rows": delta.num_rows,
        "steps": _dlt_steps(pipeline),
        "problems": problems,
    }


CASES: dict[str, Callable[[db.Settings, dict[str, Any]], dict[str, Any]]] = {
    "export": case_export,
    "duckdb_copy": case_duckdb_copy,
    "full_rewrite": case_full_rewrite,
    "dlt_append": case_dlt_append,
    "dlt_merge": case_dlt_merge,
}
# what a case imports, loaded before its clock starts: module loading is not the work measured
# (a warm Lambda or a long-lived worker has them loaded; a cold CLI run pays ~0.3-1 s more)
_DUCK = ["duckdb", "exporter.duck", "duckdb_extension_postgres_scanner"]
_DLT = [
    "dlt",
    "dlt.common.libs.pyiceberg",
    "dlt.destinations",
    "dlt.destinations.impl.filesystem.filesystem",
    "dlt.sources",
    "pyiceberg.catalog.sql",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "requests",
    "fsspec.implementations.local",
    "pyarrow",
]
IMPORTS = {
    "export": [
        *_DUCK,
        "duckdb_extension_httpfs",
        "exporter.run",
        "exporter.fileio",
        "pyiceberg.table",
        "pyiceberg.catalog.sql",
        "pyiceberg.avro.decoder_fast",
        "sqlalchemy.dialects.sqlite",
        "botocore.exceptions",
    ],
    "duckdb_copy": _DUCK,
    "full_rewrite": [*_DUCK, "duckdb_extension_iceberg", "duckdb_extension_avro"],
    "dlt_append": [*_DLT, *_DUCK],
    "dlt_merge": [*_DLT, *_DUCK],
}


class _NoPandas:
    """An import finder that says pandas is not installed. DuckDB imports pandas, when it is
    there, on the first statement with parameters (half a second, 80 MB); no case needs it,
    and only the bench's own dependencies bring it into this environment."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def child(case: str, params: dict[str, Any]) -> None:
    import importlib
    import logging

    sys.meta_path.insert(0, _NoPandas)
    logging.getLogger("dlt").setLevel(logging.ERROR)  # dlt's hint warnings are not results
    for module in IMPORTS[case]:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    settings = _settings(db.resolve())
    floor = rss_kb() / 1024
    result = CASES[case](settings, params)
    result["floor_mb"] = floor
    print("RESULT " + json.dumps(result, default=str), flush=True)


def measure(case: str, label: str, **params: Any) -> dict[str, Any]:
    """Run one case in a fresh process; its result, or {"error": ...} if it failed."""
    print(f"  {label} ...", end="", flush=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_export", "--child", case, json.dumps(params)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=CASE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        print(f" TIMED OUT after {CASE_TIMEOUT} s", flush=True)
        return {"error": f"timed out after {CASE_TIMEOUT} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        text = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        error = next(
            (ln for ln in reversed(text) if ln.strip() and not ln.startswith(" ")), text[-1]
        )
        print(f" FAILED: {error}", flush=True)
        log = OUT / f"failed-{label.replace(' ', '_').replace('/', '_')}.log"
        log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        return {"error": error.strip(), "log": str(log)}
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    print(f" {result['seconds']:.2f} s, peak {result['peak_mb']:.0f} MB", flush=True)
    for problem in result.get("problems", []):
        print(f"  !!! CHECK FAILED ({label}): {problem}", flush=True)
    return result


# --- the report ------------------------------------------------------------------------------


def _s(r: dict[str, Any], key: str = "seconds") -> str:
    return f"{r[key]:.2f}" if key in r else "n/a"


def _mb(r: dict[str, Any], key: str = "peak_mb") -> str:
    return f"{r[key]:.0f}" if key in r else "n/a"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt_ratio(value: float | None, aim: str, ok: bool | None) -> str:
    if value is None:
        return "n/a"
    mark = "" if ok is None else (" ✓" if ok else " ✗")
    return f"{value:.2f}x ({aim}){mark}"


def _checked(r: dict[str, Any]) -> str:
    if "error" in r:
        return "failed: " + str(r["error"])[:120]
    return "ok" if not r.get("problems") else "WRONG: " + "; ".join(r["problems"])


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def report(results: dict[str, Any], full_rows: int, sizes: list[int], rounds: int) -> str:
    lines: list[str] = []
    ours, bare = results["full"]["export"], results["full"]["duckdb_copy"]
    ratio = _ratio(ours.get("seconds"), bare.get("seconds"))
    lines += [
        f"### 1. Full export of {_size(full_rows)} rows (`{FULL_TABLE}`), median of {rounds}"
        " runs each",
        "",
        "| case | seconds | rows/s | peak RSS MB | check |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, r in (("exporter, Iceberg run", ours), ("bare DuckDB `COPY` to Parquet", bare)):
        rate = f"{full_rows / r['seconds']:,.0f}" if "seconds" in r else "n/a"
        lines.append(f"| {label} | {_s(r)} | {rate} | {_mb(r)} | {_checked(r)} |")
    ok = ratio <= AIM_FULL if ratio is not None else None
    lines += [
        "",
        f"exporter / DuckDB COPY: **{_fmt_ratio(ratio, f'aim ≤ {AIM_FULL}', ok)}**",
    ]
    if "phases" in ours:
        lines.append("exporter's time by step: " + _phase_text(ours))
    small, large = sizes
    runs = {n: results["sizes"][str(n)] for n in sizes}
    lines += [
        "",
        f"### 2. A 1k-row delta ({UPDATES} spread updates + {INSERTS} inserts),"
        f" table grown {large // small}x, median of {rounds} rounds",
        "",
        f"| exporter's incremental run | {_size(small)} | {_size(large)} |"
        f" {_size(large)}/{_size(small)} |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows_spec = [
        ("whole run, s", "seconds", "s", AIM_FLAT),
        ("change-log append (log file + commit), s", "changes_seconds", "s", AIM_FLAT),
        (
            "current-state merge (data file + position deletes + commit), s",
            "current_seconds",
            "s",
            AIM_FLAT,
        ),
        ("rest (bounds, catalog, watermarks), s", "other_seconds", "s", None),
        ("peak RSS of the run, MB", "peak_mb", "mb", AIM_FLAT),
        ("peak RSS during the change-log steps, MB", "changes_peak_mb", "mb", AIM_FLAT),
        ("peak RSS during the merge steps, MB", "current_peak_mb", "mb", AIM_FLAT),
        ("process RSS before the run (Python + libraries), MB", "floor_mb", "mb", None),
    ]
    for label, key, kind, aim in rows_spec:
        a, b = runs[small]["delta"].get(key), runs[large]["delta"].get(key)
        ratio = _ratio(b, a)
        ok = (ratio <= aim) if (aim is not None and ratio is not None) else None
        fmt = (lambda v: f"{v:.2f}") if kind == "s" else (lambda v: f"{v:.0f}")
        cell_a = fmt(a) if a is not None else "n/a"
        cell_b = fmt(b) if b is not None else "n/a"
        aim_text = f"aim ≤ {aim}" if aim is not None else "for reference"
        lines.append(f"| {label} | {cell_a} | {cell_b} | {_fmt_ratio(ratio, aim_text, ok)} |")
    for n in sizes:
        lines.append(
            f"| full load of the {_size(n)} table, s / peak MB (for reference) |"
            f" {_s(runs[n]['full'])} / {_mb(runs[n]['full'])} | | |"
            if n == small
            else f"| full load of the {_size(n)} table, s / peak MB (for reference) | |"
            f" {_s(runs[n]['full'])} / {_mb(runs[n]['full'])} | |"
        )
    lines += ["", "Checks, snapshots and steps of the exporter's runs:", ""]
    for n in sizes:
        f = runs[n]["full"]
        lines.append(f"- full load of {_size(n)}: check {_checked(f)}; steps: {_phase_text(f)}")
    for n in sizes:
        d = runs[n]["delta"]
        snaps = d.get("snapshots", {})
        cur, chg = snaps.get("current", {}), snaps.get("changes", {})
        lines.append(
            f"- delta into {_size(n)}: check {_checked(d)}; current state:"
            f" {cur.get('operation', '?')},"
            f" +{cur.get('added-data-files', 0)} data file ({cur.get('added-records', 0)} rows),"
            f" +{cur.get('added-delete-files', 0)} delete file"
            f" ({cur.get('added-position-deletes', 0)} positions), now"
            f" {cur.get('total-data-files', '?')} data + {cur.get('total-delete-files', '?')}"
            f" delete files; change log: {chg.get('operation', '?')},"
            f" +{chg.get('added-records', 0)} rows; steps: {_phase_text(d)}"
        )
    lines += [
        "",
        "### 3. Merging the delta: the exporter against the baselines (each run in its own"
        f" process, median of {rounds} rounds)",
        "",
        "| table | exporter run s / MB | its merge part s | full rewrite s / MB |"
        " dlt merge s / MB | exporter / rewrite | dlt / exporter |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for n in sizes:
        d, rw, dm = runs[n]["delta"], runs[n]["full_rewrite"], runs[n]["dlt_merge"]
        to_rewrite = _ratio(d.get("seconds"), rw.get("seconds"))
        merge_to_rewrite = _ratio(d.get("current_seconds"), rw.get("seconds"))
        dlt_ratio = _ratio(dm.get("seconds"), d.get("seconds"))
        dlt_merge_ratio = _ratio(dm.get("seconds"), d.get("current_seconds"))
        rewrite_cell = _fmt_ratio(
            to_rewrite, f"aim ≤ {AIM_REWRITE}", to_rewrite <= AIM_REWRITE if to_rewrite else None
        )
        if merge_to_rewrite is not None:
            rewrite_cell += f"; merge part {merge_to_rewrite:.2f}x"
        dlt_cell = _fmt_ratio(
            dlt_ratio, f"aim ≥ {AIM_DLT}", dlt_ratio >= AIM_DLT if dlt_ratio else None
        )
        if dlt_merge_ratio is not None:
            dlt_cell += f"; vs merge part {dlt_merge_ratio:.1f}x"
        if "error" in dm:
            dlt_cell = "dlt failed: " + str(dm["error"])[:200]
        lines.append(
            f"| {_size(n)} | {_s(d)} / {_mb(d)} | {_s(d, 'current_seconds')} |"
            f" {_s(rw)} / {_mb(rw)} | {_s(dm)} / {_mb(dm)} | {rewrite_cell} | {dlt_cell} |"
        )
    d = runs[large]["delta"]
    peak = d.get("peak_mb")
    mark = "" if peak is None else (" ✓" if peak <= AIM_MERGE_MB else " ✗")
    lines += [
        "",
        f"peak RSS of the exporter's delta run at {_size(large)}: **{_mb(d)} MB**"
        f" (aim ≤ {AIM_MERGE_MB} MB){mark}",
        "",
        "Checks of the baselines: "
        + "; ".join(
            f"{name} {_size(n)} {_checked(runs[n][key])}"
            for n in sizes
            for name, key in (("rewrite", "full_rewrite"), ("dlt", "dlt_merge"))
        ),
        "dlt setup (append of the full table, not compared): "
        + "; ".join(
            f"{_size(n)} {_s(runs[n]['dlt_append'])} s / {_mb(runs[n]['dlt_append'])} MB"
            for n in sizes
        ),
        "",
        LEGEND,
    ]
    return "\n".join(lines)


LEGEND = """What is measured: each case runs in a fresh process; seconds are wall time from the call
to its return with the case's modules already imported; peak RSS is the process's high-water
mark (ru_maxrss), taken before the result is checked. The exporter's steps are timed through its
own step events (exclusive time, innermost step counts) and a thread sampling RSS every 5 ms:
change-log append = the window's files (PostgreSQL read + Parquet, and the current state's
file made from it, less `_deleted`) + the log's commit; current-state merge = position deletes
(key scan of the live files that may hold a touched key, one delete file per data file) + its
commit; rest = bounds, catalog, DuckDB setup,
watermarks, maintenance. Full
rewrite = DuckDB reads the previous current state (iceberg_scan of the exporter's table) and the
delta (from PostgreSQL, by the cursor index) and writes the whole new table as zstd Parquet files
(no Iceberg commit: a lower bound of a real rewrite). dlt merge = dlt 1.x, filesystem
destination, table_format="iceberg", write_disposition merge/upsert on event_id, of the same
delta (read by DuckDB as Arrow), into dlt's own Iceberg table of the same rows (loaded first
with append from the exporter's full-load files). Every result is checked against PostgreSQL
with DuckDB's iceberg_scan: row count, distinct keys, sums, newest change, and the exact values
of every delta row."""


def _phase_text(r: dict[str, Any]) -> str:
    phases = r.get("phases", {})
    if not phases:
        return "n/a"
    shown = sorted(phases.items(), key=lambda kv: -kv[1])
    rest = max(r["seconds"] - sum(phases.values()), 0.0)  # medians need not add up
    parts = [f"{name} {seconds:.2f}" for name, seconds in shown if seconds >= 0.01]
    return ", ".join([*parts, f"untimed {rest:.2f}"]) + " (s, median of each)"


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the full export")
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5, help="runs of each case (medians)")
    parser.add_argument("--skip-prepare", action="store_true", help="reuse animedb_bench")
    parser.add_argument("--skip-dlt", action="store_true", help="leave dlt's cases out")
    parser.add_argument("--keep", action="store_true", help="keep the lakes (path printed)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return

    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = db.resolve()
    settings = _settings(base)
    sizes = [args.small, args.large]
    print(f"database: {base.describe()} / {DATABASE}", flush=True)
    if not args.skip_prepare:
        print("preparing tables ...", flush=True)
        prepare(base, args.rows, sizes)
    reset(settings, FULL_TABLE, args.rows)
    work = Path(tempfile.mkdtemp(prefix="animedb-bench-export-"))
    results: dict[str, Any] = {"full": {}, "sizes": {}}
    try:
        print(f"1. full export of {args.rows:,} rows, {args.rounds} rounds", flush=True)
        exports, copies = [], []
        for round_ in range(args.rounds):
            target = str(work / "lake-full")
            exports.append(
                measure(
                    "export",
                    f"exporter full export #{round_ + 1}",
                    table=FULL_TABLE,
                    target=target,
                    register=True,
                    expect_rows=args.rows,
                )
            )
            shutil.rmtree(target, ignore_errors=True)
            copies.append(
                measure(
                    "duckdb_copy",
                    f"bare DuckDB COPY #{round_ + 1}",
                    table=FULL_TABLE,
                    work=str(work),
                    expect_rows=args.rows,
                )
            )
        results["full"] = {"export": median_of(exports), "duckdb_copy": median_of(copies)}
        for n in sizes:
            print(f"2./3. a 1k-row delta into {n:,} rows, {args.rounds} rounds", flush=True)
            results["sizes"][str(n)] = run_size(settings, work, n, args.rounds, args.skip_dlt)
    finally:
        if args.keep:
            print(f"lakes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report(results, args.rows, sizes, args.rounds)
    total = time.monotonic() - started
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (OUT / "bench_export.md").write_text(text + "\n")
    (OUT / "bench_export.json").write_text(
        json.dumps(
            {
                "when": stamp,
                "seconds": total,
                "database": base.describe(),
                "rows": args.rows,
                "sizes": sizes,
                "results": results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print("\n" + text)
    print(f"\n(whole benchmark {total / 60:.1f} min; tables and numbers in {OUT}/bench_export.*)")
    failed = [
        label
        for label, r in _all_results(results)
        if r.get("problems") or ("error" in r and not label.startswith("dlt"))
    ]
    if failed:
        print("!!! CHECK FAILED: " + ", ".join(failed), flush=True)
        raise SystemExit(1)


def _all_results(results: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for case, r in results["full"].items():
        yield f"{case} full", r
    for n, cases in results["sizes"].items():
        for case, r in cases.items():
            yield f"{case} {n}", r


def run_size(
    settings: db.Settings, work: Path, n: int, rounds: int, skip_dlt: bool
) -> dict[str, Any]:
    """Full load and dlt's copy of it; then rounds of: a delta, the exporter's incremental run
    and the two baselines, each from the state the previous round left."""
    table = _size_table(n)
    reset(settings, table, n)
    target = str(work / f"lake-{n}")
    dlt_dir = str(work / f"dlt-{n}")
    out: dict[str, Any] = {}
    out["full"] = measure(
        "export",
        f"exporter full load {_size(n)}",
        table=table,
        target=target,
        register=True,
        expect_rows=n,
    )
    previous = out["full"].get("metadata", {}).get("current")
    if skip_dlt:
        out["dlt_append"] = {"error": "skipped (--skip-dlt)"}
    else:
        out["dlt_append"] = measure(
            "dlt_append",
            f"dlt append {_size(n)} (setup)",
            table=table,
            previous=previous,
            dlt_dir=dlt_dir,
            rows=n,
        )
    runs: dict[str, list[dict[str, Any]]] = {"delta": [], "full_rewrite": [], "dlt_merge": []}
    for round_ in range(rounds):
        since = apply_delta(settings, table, n, round_)
        label = f"{_size(n)} #{round_ + 1}"
        delta = measure(
            "export",
            f"exporter delta run {label}",
            table=table,
            target=target,
            since=since,
            expect_rows=UPDATES + INSERTS,
        )
        runs["delta"].append(delta)
        runs["full_rewrite"].append(
            measure(
                "full_rewrite",
                f"full rewrite {label}",
                table=table,
                previous=previous,
                since=since,
                work=str(work),
            )
        )
        if "error" in out["dlt_append"]:
            runs["dlt_merge"].append({"error": f"no dlt table: {out['dlt_append']['error']}"})
        else:
            runs["dlt_merge"].append(
                measure(
                    "dlt_merge",
                    f"dlt merge {label}",
                    table=table,
                    since=since,
                    dlt_dir=dlt_dir,
                    rows=n,
                )
            )
        # the next round's rewrite starts from the current state this round left
        previous = delta.get("metadata", {}).get("current", previous)
    out.update({case: median_of(results) for case, results in runs.items()})
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(dlt_dir, ignore_errors=True)
    return out


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for several runs of a case: the median of each number on its own (and of
    each step's), the last run's other fields, every run's problems, and the runs' times."""
    done = [r for r in runs if "error" not in r]
    problems = [f"run {i + 1}: {p}" for i, r in enumerate(runs) for p in r.get("problems", [])]
    errors = [f"run {i + 1} failed: {r['error']}" for i, r in enumerate(runs) if "error" in r]
    if not done:  # every run failed: the case failed, with the last run's error
        return {**runs[-1], "problems": problems}
    problems += errors  # some runs failed and some did not: the medians are of the latter
    out = dict(done[-1])
    for key, value in done[-1].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in done if key in r)
        elif isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values()):
            names = {name for r in done for name in r.get(key, {})}
            out[key] = {
                name: statistics.median(r[key].get(name, 0) for r in done) for name in names
            }
    out["problems"] = problems
    out["runs"] = [
        {"seconds": r.get("seconds"), "peak_mb": r.get("peak_mb"), "error": r.get("error")}
        for r in runs
    ]
    return out


if __name__ == "__main__":
    main()
