"""`make bench-aging`: what a lake's age costs. N rounds (default 1,000) of one small generator
tick (about 30 changed rows) and one export run to each of two lakes of the same database, side
by side: one with maintenance as shipped, on a short retention so that the retention window
fills during the benchmark (default 10 minutes: the 7 days of production would take a week),
and one with maintenance off (what every run cost before maintenance existed, bar the
per-table commits it no longer makes). At the end a young lake is made from the same database
(a first load, then a few rounds) and all three take the same deltas.

Measured for each run, in a process of its own (the exporter imported before the clock starts,
so that import time, constant, does not hide what age costs): CPU time (user + system, all
threads), wall time and peak RSS; at checkpoints, each lake's files and bytes, the size of the
newest metadata file of its largest table, DuckDB's own `count(*)` over its largest change log
(seconds) and `verify` (CPU seconds, and whether the lake is exact against PostgreSQL). The
aims (issue 15): a run's CPU in the last 10% of rounds at most 1.2x the first 10%; the aged lake
against the young one on the same deltas, run CPU and verify CPU each at most 1.2x; files and
bytes flat once the retention window is full; every checkpoint exact. The slope of run CPU over
rounds is extrapolated to a year of runs every 5 minutes (105,120 runs).

It runs on the project's database settings (the embedded server by default), in a scratch
database `animedb_aging` that it builds with dbt from the committed seeds, and lakes under
bench/out/aging/. Tables in Markdown on stdout, every number in bench/out/aging.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from animedb import REPO, db
from animedb import dbt as dbt_runner

OUT = REPO / "bench" / "out"
LAKES = OUT / "aging"
DATABASE = "animedb_aging"
RUNS_A_YEAR = 365 * 24 * 12  # one run every 5 minutes
AIM = 1.2
COUNTED = "ratings_changes"  # the change log DuckDB counts at each checkpoint
# one small tick: about 30 changed rows (users, wishlist entries, ratings)
TICK = {
    "new_users": 1,
    "active_users": 12,
    "profile_edits": 1,
    "wishlist_adds": 10,
    "progressions": 8,
    "ratings": 6,
    "rerates": 2,
    "removals": 1,
}


# --- the children: one run, or one verify, in a process of its own --------------------------


def child(command: str, target: str) -> None:
    """Import the exporter, then time one run (or verify) of `target` and print its numbers."""
    import datetime as dt
    import resource

    import pyiceberg.catalog.sql  # noqa: F401 - imported before the clock, as the exporter's own
    import sqlalchemy.orm  # noqa: F401

    from bench.observe import Phases
    from exporter import run_export
    from exporter.verify import verify

    settings = _settings(db.resolve())
    started_cpu, started = time.process_time(), time.monotonic()
    result: dict[str, Any] = {}
    if command == "run":
        phases = Phases()
        summary = run_export(target, settings, settle=dt.timedelta(0), progress=phases)
        result["rows"] = summary.rows + sum(t.deletes for t in summary.tables)
        result["committed_tables"] = sum(t.committed for t in summary.tables)
        result["maintenance"] = summary.maintenance.to_json() if summary.maintenance else None
        result["steps"] = {k: round(v, 4) for k, v in phases.seconds.items()}
    else:
        checks = verify(target, settings)
        result["exact"] = all(c.ok for c in checks)
    result["cpu"] = time.process_time() - started_cpu
    result["wall"] = time.monotonic() - started
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _settings(base: db.Settings) -> db.Settings:
    return db.Settings(base.host, base.port, base.user, base.password, DATABASE, base.embedded)


def measure(command: str, target: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_aging", "--child", command, target],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{command} {target} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --- the database and the activity ----------------------------------------------------------


def prepare(base: db.Settings) -> None:
    """A fresh database built by dbt from the committed seeds."""
    with psycopg.connect(base.conninfo(dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    started = time.monotonic()
    result = dbt_runner.run(["build", "--quiet"], _settings(base), capture=True)
    if result.returncode != 0:
        raise SystemExit(f"dbt failed:\n{result.stdout[-3000:]}")
    print(f"  dbt build: {time.monotonic() - started:.1f} s", flush=True)


def tick(settings: db.Settings, seed: int) -> int:
    from generators import TickConfig, run_tick

    return run_tick(TickConfig(**TICK, seed=seed), settings).rows


# --- the lakes ---------------------------------------------------------------------------------


@dataclass
class Lake:
    name: str
    target: Path
    env: dict[str, str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


def lake_facts(target: Path) -> dict[str, Any]:
    """Files and bytes, the newest metadata file of the largest table, and DuckDB's count over
    the largest change log (timed)."""
    from exporter import catalog, duck
    from exporter.storage import open_storage

    files = [p for p in target.rglob("*") if p.is_file()]
    facts: dict[str, Any] = {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "metadata_bytes": sum(p.stat().st_size for p in files if p.parent.name == "metadata"),
    }
    lake = catalog.open_lake(open_storage(str(target)))
    tables = {catalog.table_name(t): t for p in catalog.pairs(lake) for t in p.tables}
    # the largest metadata file: the table whose history costs the most to read and commit
    sizes = {name: Path(t.metadata_location).stat().st_size for name, t in tables.items()}
    largest = max(sizes, key=lambda name: sizes[name])
    facts["largest_table"] = largest
    facts["largest_metadata_bytes"] = sizes[largest]
    facts["snapshots_of_largest"] = len(tables[largest].metadata.snapshots)
    # the change log that grows most (ratings: every tick adds to it)
    log = tables[f"{lake.namespace}.{COUNTED}"]
    con = duck.connect()
    duck.load_iceberg(con)
    started = time.monotonic()
    row = con.execute(f"select count(*) from iceberg_scan({duck.quote(log.metadata_location)})")
    count = row.fetchone()
    facts["count_seconds"] = time.monotonic() - started
    facts["count_rows"] = int(count[0]) if count else 0
    con.close()
    return facts


def checkpoint(lake: Lake, round_: int) -> dict[str, Any]:
    verify = measure("verify", str(lake.target), lake.env)
    point = {"round": round_, **lake_facts(lake.target), "verify_cpu": verify["cpu"]}
    point["exact"] = verify["exact"]
    lake.checkpoints.append(point)
    return point


# --- the report ---------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    if len(xs) < 2:
        return 0.0
    mx, my = _mean(xs), _mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def _ok(value: float, aim: float = AIM) -> str:
    return f"{value:.2f}x {'ok' if value <= aim else 'MISSED'}"


def report(lakes: dict[str, Lake], rounds: int, young_rounds: int, args: Any) -> str:
    aged, bare, young = lakes["maintained"], lakes["unmaintained"], lakes["young"]
    tenth = max(1, rounds // 10)
    lines = [
        f"## Aging: {rounds} rounds of a small tick and a run; retention {args.retention},"
        f" orphan age {args.orphan_age}",
        "",
        "Per-run CPU seconds (process CPU after imports, all threads), mean over the window:",
        "",
        "| lake | first 10% | last 10% | last / first | slope ms/run | a year (105,120 runs) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    results: dict[str, Any] = {}
    for lake in (aged, bare):
        cpu = [r["cpu"] for r in lake.runs[:rounds]]
        first, last = _mean(cpu[:tenth]), _mean(cpu[-tenth:])
        # the slope once the retention window is full (the second half of the rounds)
        half = rounds // 2
        slope = _slope(list(range(half, rounds)), cpu[half:rounds])
        year = last + slope * (RUNS_A_YEAR - rounds)
        results[lake.name] = {"first": first, "last": last, "slope_s": slope, "year_s": year}
        ratio = _ratio(last, first)
        mark = _ok(ratio) if lake is aged else f"{ratio:.2f}x"
        lines.append(
            f"| {lake.name} | {first:.3f} | {last:.3f} | {mark} | {slope * 1000:+.3f} |"
            f" {year:,.1f} s |"
        )
    lines += [
        "",
        "Checkpoints (files and bytes of the whole lake; the largest table's newest metadata file;"
        " DuckDB count(*) over the largest change log; verify CPU; exact against PostgreSQL):",
        "",
        "| round | lake | files | MB | metadata MB | largest metadata KB | snapshots | count s |"
        " verify CPU s | exact |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i in range(len(aged.checkpoints)):
        for lake in (aged, bare):
            c = lake.checkpoints[i]
            lines.append(
                f"| {c['round']} | {lake.name} | {c['files']:,} | {c['bytes'] / 1e6:.2f} |"
                f" {c['metadata_bytes'] / 1e6:.2f} | {c['largest_metadata_bytes'] / 1e3:.1f} |"
                f" {c['snapshots_of_largest']} | {c['count_seconds']:.3f} |"
                f" {c['verify_cpu']:.2f} | {'yes' if c['exact'] else 'NO'} |"
            )
    same = slice(rounds, rounds + young_rounds)
    aged_cpu = _mean([r["cpu"] for r in aged.runs[same]])
    young_cpu = _mean([r["cpu"] for r in young.runs[1:]])
    bare_cpu = _mean([r["cpu"] for r in bare.runs[same]])
    verify_aged, verify_young = (
        aged.checkpoints[-1]["verify_cpu"],
        young.checkpoints[-1]["verify_cpu"],
    )
    mid, end = aged.checkpoints[len(aged.checkpoints) // 2], aged.checkpoints[-1]
    bare_mid, bare_end = bare.checkpoints[len(bare.checkpoints) // 2], bare.checkpoints[-1]
    exact = all(c["exact"] for lake in lakes.values() for c in lake.checkpoints)
    results["young"] = {
        "aged_run_cpu": aged_cpu,
        "young_run_cpu": young_cpu,
        "unmaintained_run_cpu": bare_cpu,
        "aged_verify_cpu": verify_aged,
        "young_verify_cpu": verify_young,
    }
    lines += [
        "",
        f"The same {young_rounds} deltas into the aged lakes and a young one (first load, then"
        " these rounds):",
        "",
        "| measure | aged (maintained) | young | aged / young | unmaintained |"
        " unmaintained / young |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| run CPU s | {aged_cpu:.3f} | {young_cpu:.3f} | {_ok(_ratio(aged_cpu, young_cpu))} |"
        f" {bare_cpu:.3f} | {_ratio(bare_cpu, young_cpu):.2f}x |",
        f"| verify CPU s | {verify_aged:.2f} | {verify_young:.2f} |"
        f" {_ok(_ratio(verify_aged, verify_young))} | {bare.checkpoints[-1]['verify_cpu']:.2f} |"
        f" {_ratio(bare.checkpoints[-1]['verify_cpu'], verify_young):.2f}x |",
        "",
        f"Flat once the window is full (maintained lake, round {mid['round']} -> {end['round']}):"
        f" files {_ratio(end['files'], mid['files']):.2f}x, bytes"
        f" {_ratio(end['bytes'], mid['bytes']):.2f}x (data grows with the rows; the"
        f" unmaintained lake: files {_ratio(bare_end['files'], bare_mid['files']):.2f}x)."
        f" Every checkpoint exact: {exact}.",
    ]
    (OUT / "aging.json").write_text(
        json.dumps(
            {
                "rounds": rounds,
                "args": vars(args),
                "results": results,
                "lakes": {
                    name: {"runs": lake.runs, "checkpoints": lake.checkpoints}
                    for name, lake in lakes.items()
                },
            },
            indent=1,
        )
    )
    return "\n".join(lines)


# --- the benchmark -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--young-rounds", type=int, default=10)
    parser.add_argument("--retention", default="10m", help="the maintained lake's retention")
    parser.add_argument("--orphan-age", default="2m", help="the maintained lake's orphan age")
    parser.add_argument("--child", nargs=2, metavar=("COMMAND", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.rounds < 10:
        parser.error("--rounds must be at least 10")
    base = db.resolve()
    settings = _settings(base)
    print(f"preparing {DATABASE} on {base.describe()}", flush=True)
    prepare(base)
    shutil.rmtree(LAKES, ignore_errors=True)
    LAKES.mkdir(parents=True)
    maintained = {
        "ANIMEDB_LAKE_RETENTION": args.retention,
        "ANIMEDB_LAKE_ORPHAN_AGE": args.orphan_age,
    }
    lakes = {
        "maintained": Lake("maintained", LAKES / "maintained", maintained),
        "unmaintained": Lake(
            "unmaintained", LAKES / "unmaintained", {"ANIMEDB_LAKE_MAINTENANCE": "off"}
        ),
        "young": Lake("young", LAKES / "young", maintained),
    }
    aged = [lakes["maintained"], lakes["unmaintained"]]
    for lake in aged:
        measure("run", str(lake.target), lake.env)  # the first load, not a round
    every = max(1, args.rounds // args.checkpoints)
    started = time.monotonic()
    for round_ in range(1, args.rounds + 1):
        changed = tick(settings, seed=round_)
        for lake in aged:
            lake.runs.append(
                {"round": round_, "ticked": changed, **measure("run", str(lake.target), lake.env)}
            )
        if round_ % every == 0 or round_ == args.rounds:
            for lake in aged:
                checkpoint(lake, round_)
            a, b = (lake.runs[-1] for lake in aged)
            print(
                f"  round {round_}: run CPU {a['cpu']:.2f} / {b['cpu']:.2f} s,"
                f" files {aged[0].checkpoints[-1]['files']} / {aged[1].checkpoints[-1]['files']},"
                f" {time.monotonic() - started:.0f} s so far",
                flush=True,
            )
    young = lakes["young"]
    young.runs.append(measure("run", str(young.target), young.env))  # its first load
    for k in range(args.young_rounds):
        tick(settings, seed=args.rounds + 1 + k)
        for lake in (*aged, young):
            lake.runs.append(
                {"round": args.rounds + 1 + k, **measure("run", str(lake.target), lake.env)}
            )
    for lake in (*aged, young):
        checkpoint(lake, args.rounds + args.young_rounds)
    print(report(lakes, args.rounds, args.young_rounds, args))


if __name__ == "__main__":
    main()
